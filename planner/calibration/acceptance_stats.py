"""Acceptance statistics shared by the server readers: Beta intervals and alpha from A / D.

Counts come from vLLM counters or llama.cpp outputs; every conversion of a draft acceptance
rate into the per-token alpha goes through ``planner.speedup.alpha_from_acceptance_rate``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.calibration.schema import ModelIdentity
from planner.catalog.lookup import model_name
from planner.speedup import accepted_length_pmf, alpha_from_acceptance_rate

__all__ = ["LEVEL", "MAX_COUNT", "ModelArg", "RateFit", "beta_interval", "fit_from_rate", "geometric_round_variance",
           "model_identity", "one_line"]

LEVEL = 0.95  # credible level of every alpha interval written here
# Prometheus values are doubles: above 2^53 a counter no longer counts exactly, and no server
# drafts 9e15 tokens. The same bound keeps llama.cpp counts inside int64 for numpy.
MAX_COUNT = 2**53

ModelArg = str | ModelIdentity


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def model_identity(model: ModelArg | None) -> ModelIdentity | None:
    if model is None or isinstance(model, ModelIdentity):
        return model
    return ModelIdentity(id=model_name(model))  # as the plans name it: Hub id as typed, folder absolute


def beta_interval(successes: float, failures: float, level: float = LEVEL) -> tuple[float, float]:
    """Equal-tailed ``level`` interval of Beta(successes + 1, failures + 1), the uniform-prior posterior.

    One-sided when either count is 0 (as ``planner.speedup.alpha_mle``), so the interval always
    holds the point estimate successes / (successes + failures). Counts may be fractional
    (effective counts after a design effect).
    """
    from scipy.stats import beta  # here, not at module top: importing the planner stays fast

    posterior = beta(successes + 1, failures + 1)
    if failures == 0:
        return float(posterior.ppf(1 - level)), 1.0
    if successes == 0:
        return 0.0, float(posterior.ppf(level))
    tail = (1 - level) / 2
    low, high = float(posterior.ppf(tail)), float(posterior.ppf(1 - tail))
    point = successes / (successes + failures)
    # With fractional counts near 0 the mode can sit outside the central interval; keep it inside.
    return min(low, point), max(high, point)


def geometric_round_variance(alpha: float, k: int) -> float:
    """Variance of the accepted-token count of one round under the i.i.d. model, tokens^2."""
    pmf = accepted_length_pmf(alpha, k)  # P(L = i), i = 1..k+1; accepted = L - 1
    accepted = np.arange(k + 1)
    mean = float(pmf @ accepted)
    return max(float(pmf @ accepted**2) - mean**2, 0.0)


@dataclass(frozen=True)
class RateFit:
    """alpha from A / D with its interval; ``design_effect`` is Var(A) over the binomial variance."""

    rate: float
    alpha: float
    alpha_low: float
    alpha_high: float
    design_effect: float


def fit_from_rate(accepted: int, proposed: int, k: int, rounds: float | None, round_var: float | None) -> RateFit:
    """Per-token alpha whose predicted draft acceptance rate at k equals the observed A / D.

    The interval is a Beta interval on the rate with A and D shrunk by the design effect
    S Var(a) / (D r (1 - r)): tokens of one round are not independent trials (a rejection ends
    the round), so A of D varies more than a binomial count would. ``round_var`` is the
    variance of the accepted count per round (observed, or the i.i.d. model's when None);
    the design effect is floored at 1, so the interval is never narrower than the binomial one.
    Both ends map through alpha_from_acceptance_rate, which is increasing.
    """
    rate = accepted / proposed
    alpha = float(alpha_from_acceptance_rate(rate, k))
    deff = 1.0
    if 0 < accepted < proposed:
        steps = rounds if rounds else proposed / k
        var = round_var if round_var is not None else geometric_round_variance(alpha, k)
        deff = max(1.0, steps * var / (proposed * rate * (1 - rate)))
    low, high = beta_interval(accepted / deff, (proposed - accepted) / deff)
    alpha_low = min(float(alpha_from_acceptance_rate(low, k)), alpha)
    alpha_high = max(float(alpha_from_acceptance_rate(high, k)), alpha)
    return RateFit(rate, alpha, alpha_low, alpha_high, deff)

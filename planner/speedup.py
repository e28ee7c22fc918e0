"""The speculative-decoding math of DESIGN.md section 2: accepted lengths, speedup, acceptance rates.

Model: each round the draft proposes k tokens; each is accepted with probability alpha
independently of the others (the i.i.d. model of Leviathan et al. 2023 and Chen et al. 2023),
the target keeps the accepted prefix and adds one token of its own, so a round commits
L in 1..k+1 tokens. Costs are in units of one target decode step t_T: per-token draft cost
c = t_D / t_T and verification cost r = t_V(k+1) / t_T.

Every formula broadcasts over all its array arguments. The formulas trust their inputs (the
planner checks them once at its edges with ``check_alpha`` / ``check_k``); the conversions and
the estimator, which take numbers from users and servers, check their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from planner.errors import SpecplanError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = [
    "SpeedupInputError",
    "SpeedupBreakdown",
    "check_alpha",
    "check_k",
    "accepted_length_pmf",
    "expected_accepted_length",
    "expected_accepted_length_positional",
    "speedup",
    "speedup_breakdown",
    "seed_formula_speedup",
    "break_even_alpha",
    "best_k",
    "per_position_acceptance",
    "acceptance_rate_from_alpha",
    "alpha_from_acceptance_rate",
    "alpha_mle",
    "root_of_increasing",
]

K_MAX = 64  # no engine proposes longer chains; larger k is almost surely a typo
_BISECTION_STEPS = 60  # 2**-60 ~ 1e-18: below float resolution on [0, 1]


class SpeedupInputError(SpecplanError, ValueError):
    """An acceptance probability, rate, k or round count out of range (one-line message)."""


def _scalar_or_array(x: np.ndarray) -> np.ndarray:
    """0-d arrays become numpy scalars so scalar calls give scalars back."""
    return np.asarray(x)[()]


def _first_bad(values: np.ndarray, ok: np.ndarray) -> float:
    return float(values[~ok].flat[0])


def check_alpha(alpha: ArrayLike, name: str = "alpha") -> np.ndarray:
    """Return ``alpha`` as floats, or raise if any value lies outside [0, 1] (NaN included)."""
    a = np.asarray(alpha, dtype=float)
    ok = (a >= 0) & (a <= 1)
    if not ok.all():
        raise SpeedupInputError(f"{name} must be in [0, 1] (got {_first_bad(a, ok)!r})")
    return a


def check_k(k: ArrayLike, k_max: int | None = K_MAX) -> np.ndarray:
    """Return ``k`` as integers, or raise unless every value is a whole number in 1..k_max.

    ``k_max=None`` checks only k >= 1 (observed rounds, where the engine chose k).
    """
    raw = np.asarray(k)
    if raw.dtype.kind not in "iu":
        whole = np.isfinite(raw) & (raw == np.round(raw)) if raw.dtype.kind == "f" else np.zeros(raw.shape, bool)
        if not whole.all():
            raise SpeedupInputError(f"k must be a whole number (got {np.asarray(raw[~whole].flat[0]).item()!r})")
    ks = raw.astype(np.int64)
    ok = (ks >= 1) & (ks <= (k_max if k_max is not None else ks))
    if not ok.all():
        bound = f"between 1 and {k_max}" if k_max is not None else "at least 1"
        raise SpeedupInputError(f"k must be {bound} (got {int(ks[~ok].flat[0])})")
    return ks


def _geometric_sum(alpha: ArrayLike, n: ArrayLike) -> np.ndarray:
    """1 + alpha + ... + alpha^(n-1), exactly n at alpha = 1 and accurate next to it.

    expm1/log keep 1 - alpha^n accurate when alpha is within 1e-12 of 1, where the plain
    difference loses most of its digits; 1 - alpha itself is exact there (Sterbenz).
    """
    a = np.asarray(alpha, dtype=float)
    n = np.asarray(n)
    gap = 1.0 - a
    safe_gap = np.where(gap == 0, 1.0, gap)
    with np.errstate(divide="ignore"):  # log(0) = -inf makes 0^n = 0 exactly, as wanted
        closed = -np.expm1(n * np.log(a)) / safe_gap
    # Rounding can step an ulp past the true bounds 1..n (n = 1 gave 1 + 2e-16); clip it back.
    return np.where(gap == 0, n * 1.0, np.clip(closed, 1.0, n))


def accepted_length_pmf(alpha: ArrayLike, k: int) -> np.ndarray:
    """P(L = i) for i = 1..k+1 along the last axis: tokens committed in one round.

    Truncated geometric: alpha^(i-1) (1 - alpha) for i <= k, alpha^k for i = k+1 (all drafts kept).
    Unit: probability; sums to 1 over the last axis.
    """
    a = np.asarray(alpha, dtype=float)[..., None]
    first_k = a ** np.arange(k) * (1.0 - a)
    return np.concatenate([first_k, a**k], axis=-1)


def expected_accepted_length(alpha: ArrayLike, k: ArrayLike) -> np.ndarray:
    """E[L] = (1 - alpha^(k+1)) / (1 - alpha), the mean tokens committed per round.

    Unit: tokens per round, between 1 (alpha = 0) and k+1 (alpha = 1).
    Leviathan et al. 2023, eq. (1); Chen et al. 2023.
    """
    return _scalar_or_array(_geometric_sum(alpha, np.asarray(k) + 1))


def expected_accepted_length_positional(alphas: ArrayLike) -> np.ndarray:
    """E[L] = 1 + sum_i prod_{j<=i} alpha_j for per-position acceptance (last axis = position).

    alpha_i is the probability that draft i is accepted given drafts 1..i-1 were; use this
    form whenever a calibration measured acceptance per position. Unit: tokens per round.
    """
    a = np.asarray(alphas, dtype=float)
    return _scalar_or_array(1.0 + np.cumprod(a, axis=-1).sum(axis=-1))


def speedup(alpha: ArrayLike, k: ArrayLike, c: ArrayLike, r: ArrayLike = 1.0) -> np.ndarray:
    """S = E[L] / (k c + r): tokens per unit of target decode time, relative to plain decoding.

    Unit: dimensionless ratio (S > 1 pays). c is the per-token draft cost t_D / t_T, so a round
    costs k c + r target steps. With r = 1 this is Leviathan et al. 2023, Theorem 3.8.
    """
    k = np.asarray(k)
    return _scalar_or_array(_geometric_sum(alpha, k + 1) / (k * np.asarray(c, dtype=float) + r))


def seed_formula_speedup(alpha: ArrayLike, k: ArrayLike, c_round: ArrayLike) -> np.ndarray:
    """(1 + alpha + ... + alpha^k) / (1 + c_round), the seed's formula, for comparison only.

    Unit: dimensionless ratio. Here c_round is the WHOLE drafting cost of a round in target
    steps, not a per-token cost: it equals ``speedup(alpha, k, c_round / k, r=1)``, so a
    per-token c converts as c_round = k c.
    """
    return _scalar_or_array(_geometric_sum(alpha, np.asarray(k) + 1) / (1.0 + np.asarray(c_round, dtype=float)))


def break_even_alpha(c: ArrayLike, r: ArrayLike = 1.0) -> np.ndarray:
    """The alpha at which k = 1 speculation gains nothing: (1 + alpha) / (c + r) = 1.

    Unit: probability, clipped to [0, 1]; 1 means k = 1 never pays, even with perfect
    acceptance. With r > 1 a longer k can pay below this alpha (its verification cost is
    shared by more tokens), so use ``best_k`` for the overall verdict.
    """
    return _scalar_or_array(np.clip(np.asarray(c, dtype=float) + r - 1.0, 0.0, 1.0))


def best_k(
    alpha: ArrayLike, c: ArrayLike, r_of_k: ArrayLike = 1.0, k_max: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """(k_best, S_best): the k in 1..k_max with the largest speedup, for every configuration.

    ``r_of_k`` is a scalar or has r(1)..r(k_max) on its last axis (leading axes broadcast with
    alpha and c; give a per-configuration scalar r the shape (..., 1)). Ties go to the smaller k,
    the cheaper one. S_best < 1 says not to speculate. Units: tokens, dimensionless ratio.
    """
    check_k(k_max)
    r = np.asarray(r_of_k, dtype=float)
    if r.ndim and r.shape[-1] not in (1, k_max):
        raise SpeedupInputError(f"r_of_k needs k_max = {k_max} values on its last axis (got {r.shape[-1]})")
    ks = np.arange(1, k_max + 1)
    a = np.asarray(alpha, dtype=float)[..., None]
    s = _geometric_sum(a, ks + 1) / (ks * np.asarray(c, dtype=float)[..., None] + r)
    best = np.argmax(s, axis=-1)
    s_best = np.take_along_axis(s, best[..., None], axis=-1)[..., 0]
    return _scalar_or_array(best + 1), _scalar_or_array(s_best)


def per_position_acceptance(alpha: ArrayLike, k: int) -> np.ndarray:
    """P(draft i is accepted) = alpha^i for i = 1..k along the last axis (unconditional).

    Unit: probability. Compare with per-position counts from a probe or server metrics.
    """
    return np.asarray(alpha, dtype=float)[..., None] ** np.arange(1, k + 1)


def acceptance_rate_from_alpha(alpha: ArrayLike, k: ArrayLike) -> np.ndarray:
    """The "draft acceptance rate" servers report (accepted / proposed) implied by per-token alpha.

    Unit: dimensionless ratio, (E[L] - 1) / k = alpha (1 - alpha^k) / ((1 - alpha) k) <= alpha.
    vLLM's spec-decode metrics report this rate, not alpha; never feed one where the other goes.
    """
    a = np.asarray(alpha, dtype=float)
    k = np.asarray(k)
    # alpha * (1 + ... + alpha^(k-1)) rather than E[L] - 1: no cancellation for small alpha.
    return _scalar_or_array(a * _geometric_sum(a, k) / k)


def alpha_from_acceptance_rate(rate: ArrayLike, k: ArrayLike) -> np.ndarray:
    """Per-token alpha from a server's draft acceptance rate (inverse of acceptance_rate_from_alpha).

    Unit: probability. The rate rises monotonically with alpha, so a vectorised bisection on
    [0, 1] inverts it to float precision; rates 0 and 1 map to exactly 0 and 1.
    """
    target = check_alpha(rate, name="acceptance rate")
    k = check_k(k)
    shape = np.broadcast_shapes(target.shape, k.shape)
    lo, hi = np.zeros(shape), np.ones(shape)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        below = acceptance_rate_from_alpha(mid, k) < target
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    alpha = np.where(target == 0, 0.0, np.where(target == 1, 1.0, 0.5 * (lo + hi)))
    return _scalar_or_array(alpha)


def _check_rounds(accepted: ArrayLike, proposed: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Broadcast observed rounds and check 0 <= a_i <= k_i, k_i >= 1, whole numbers."""
    a, k = np.broadcast_arrays(np.asarray(accepted), np.asarray(proposed))
    if a.size == 0:
        raise SpeedupInputError("alpha_mle needs at least one observed round")
    k = check_k(k, k_max=None)
    if a.dtype.kind not in "iu" and not np.all(a == np.round(a)):
        raise SpeedupInputError("accepted token counts must be whole numbers")
    a = a.astype(np.int64)
    ok = (a >= 0) & (a <= k)
    if not ok.all():
        i = np.flatnonzero(~ok.ravel())[0]
        raise SpeedupInputError(
            f"accepted must be between 0 and proposed (got {a.ravel()[i]} accepted of {k.ravel()[i]})"
        )
    return a, k


def alpha_mle(
    accepted: ArrayLike, proposed: ArrayLike, level: float = 0.95
) -> tuple[float, float, float]:
    """(alpha_hat, low, high): maximum-likelihood alpha from observed rounds and a credible interval.

    Round i accepted a_i of k_i drafts. The likelihood is alpha^A (1 - alpha)^R with
    A = sum a_i and R = #{a_i < k_i} (rounds that ended on a rejection), so alpha_hat = A / (A + R),
    and the interval is the equal-tailed ``level`` interval of the Beta(A + 1, R + 1) posterior
    (uniform prior). When A or R is 0 the interval is one-sided, so it still holds alpha_hat.
    Unit: probability.
    """
    if not 0 < level < 1:
        raise SpeedupInputError(f"level must be strictly between 0 and 1 (got {level!r})")
    a, k = _check_rounds(accepted, proposed)
    accepted_total, rejections = int(a.sum()), int(np.count_nonzero(a < k))
    alpha_hat = accepted_total / (accepted_total + rejections)
    from scipy.stats import beta  # here, not at module top: importing the planner stays fast

    posterior = beta(accepted_total + 1, rejections + 1)
    if rejections == 0:
        return alpha_hat, float(posterior.ppf(1 - level)), 1.0
    if accepted_total == 0:
        return alpha_hat, 0.0, float(posterior.ppf(level))
    tail = (1 - level) / 2
    return alpha_hat, float(posterior.ppf(tail)), float(posterior.ppf(1 - tail))


@dataclass(frozen=True)
class SpeedupBreakdown:
    """One speedup estimate with its parts, naming per-token c and per-round k*c apart."""

    alpha: float  # per-token acceptance probability
    k: int  # draft tokens proposed per round
    c: float  # per-token draft cost t_D / t_T
    r: float  # verification cost t_V(k+1) / t_T
    mean_accepted_length: float  # E[L], tokens committed per round
    speedup: float  # E[L] / (k c + r), dimensionless
    drafting_overhead: float  # k c, drafting cost per round in target decode steps

    @property
    def round_time(self) -> float:
        """Cost of one round in target decode steps: k c + r."""
        return self.drafting_overhead + self.r


def speedup_breakdown(alpha: float, k: int, c: float, r: float = 1.0) -> SpeedupBreakdown:
    """Speedup of one configuration with its parts; checks alpha, k, c >= 0 and r > 0."""
    a, kk = float(check_alpha(alpha)), int(check_k(k))
    if not (c >= 0 and r > 0):
        raise SpeedupInputError(f"draft cost c must be >= 0 and verification cost r > 0 (got c={c!r}, r={r!r})")
    return SpeedupBreakdown(
        alpha=a,
        k=kk,
        c=float(c),
        r=float(r),
        mean_accepted_length=float(expected_accepted_length(a, kk)),
        speedup=float(speedup(a, kk, c, r)),
        drafting_overhead=kk * float(c),
    )


def root_of_increasing(f, lo: float = 0.0, hi: float = 1.0, xtol: float = 1e-13, max_calls: int = 100) -> float:  # type: ignore[no-untyped-def]
    """x in [lo, hi] with f(x) = 0 for an increasing f with f(lo) < 0 < f(hi) (Illinois regula falsi).

    Superlinear (a dozen calls where bisection to 2^-60 takes 60), and never leaves the bracket,
    so an expensive f (a whole tree priced per call) stays cheap; scipy's brentq does the same
    but importing scipy.optimize costs half a second of every CLI start. Unit: that of x.
    """
    f_lo, f_hi = f(lo), f(hi)
    side = 0
    x = lo
    for _ in range(max_calls):
        x = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        fx = f(x)
        if fx == 0 or hi - lo < xtol:
            return x
        if fx < 0:
            lo, f_lo = x, fx
            if side == -1:
                f_hi /= 2  # Illinois: halve the stale end so the bracket shrinks from both sides
            side = -1
        else:
            hi, f_hi = x, fx
            if side == 1:
                f_lo /= 2
            side = 1
        if abs(hi - lo) < xtol:
            break
    return x

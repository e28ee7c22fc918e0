"""Which per-token acceptance (alpha) a plan uses: the user's, a calibration's, or the prior band.

A measured alpha belongs to the draft format it was measured with; for the same draft in
another format it is moved by the priors' quantization penalty and marked "derived".
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from planner import speedup as sp
from planner.calibration.apply import AppliedCalibration
from planner.calibration.schema import CalibrationFile
from planner.catalog.precisions import WeightFormat
from planner.catalog.schemas import ModelSpec
from planner.draftloop import LoopSpec, alpha_from_loop_counts, engine_loop
from planner.draftloop.convert import alpha_from_mean_length
from planner.errors import SpecplanError
from planner.catalog.tokenizers import cross_tokenizer
from planner.priors import alpha_prior, precision_shift
from planner.priors.uag import uag_round_us

__all__ = ["AlphaChoice", "MeasuredRate", "measured_rate", "plan_loop", "mean_length_by_k", "choose_alpha", "measured_alpha", "measured_precision",
           "calibrated_alpha"]


@dataclass(frozen=True)
class AlphaChoice:
    """The per-token alpha used, its band and where it came from."""

    mid: float
    low: float
    high: float
    source: Literal["user", "prior", "calibration", "derived"]  # derived: measured at another draft precision
    detail: str
    per_position: tuple[float, ...] = ()  # measured P(accept i | 1..i-1), used when acceptance decays
    kappa: float | None = None  # confidence concentration fitted with the alpha (from drafted per round), else None


@dataclass(frozen=True)
class MeasuredRate:
    """A measured accepted / drafted and, when known, the mean drafted tokens per round."""

    rate: float | None  # accepted / drafted, dimensionless (None: only the mean accepted length was given)
    drafted_per_round: float | None  # tokens per round
    source: str  # how it was given, for the plan's detail line
    mean_length: float | None = None  # tokens committed per round, the bonus token included


def measured_rate(acceptance_rate: float | None, drafted_per_round: float | None, drafted: int | None,
                  accepted: int | None, rounds: int | None, mean_length: float | None = None) -> MeasuredRate | None:
    """The rate from --acceptance-rate (+ --drafted-per-round), the counts --drafted/--accepted/--rounds, or
    --mean-accepted-length."""
    if mean_length is not None:
        if any(x is not None for x in (acceptance_rate, drafted_per_round, drafted, accepted, rounds)):
            raise SpecplanError("give --mean-accepted-length alone, or the acceptance rate / counts")
        if not mean_length >= 1:
            raise SpecplanError(f"--mean-accepted-length counts the bonus token: at least 1 (got {mean_length:g})")
        return MeasuredRate(None, None, f"mean accepted length {mean_length:g}", mean_length)
    counts = (drafted, accepted, rounds)
    if any(x is not None for x in counts):
        if acceptance_rate is not None or drafted_per_round is not None:
            raise SpecplanError("give --acceptance-rate (with --drafted-per-round) or the counts --drafted/--accepted/"
                                "--rounds, not both")
        if drafted is None or accepted is None:
            raise SpecplanError("the counts need both --drafted and --accepted (and --rounds for drafted per round)")
        if drafted <= 0 or accepted < 0 or accepted > drafted:
            raise SpecplanError(f"--accepted must be between 0 and --drafted, and --drafted above 0 (got {accepted} "
                                f"of {drafted})")
        if rounds is not None and rounds <= 0:
            raise SpecplanError(f"--rounds must be at least 1 (got {rounds})")
        dpr = None if rounds is None else drafted / rounds
        where = f"{accepted} accepted / {drafted} drafted" + (f" in {rounds} rounds" if rounds else "")
        return MeasuredRate(accepted / drafted, dpr, where)
    if acceptance_rate is None:
        if drafted_per_round is not None:
            raise SpecplanError("--drafted-per-round goes with --acceptance-rate (or give the counts)")
        return None
    sp.check_alpha(acceptance_rate, "acceptance rate")
    return MeasuredRate(acceptance_rate, drafted_per_round, f"accepted/drafted {acceptance_rate:g}")


def mean_length_by_k(choice: AlphaChoice, ks: np.ndarray) -> np.ndarray | None:
    """E[L] for each k from per-position acceptance (last measured rate carried on), or None for geometric."""
    if not choice.per_position:
        return None
    rates = list(choice.per_position) + [choice.per_position[-1]] * max(0, int(ks.max()) - len(choice.per_position))
    return np.array([float(sp.expected_accepted_length_positional(rates[:k])) for k in ks])


def plan_loop(engine: str, server_version: str | None, p_min: float | None,
              applied: AppliedCalibration | None) -> LoopSpec:
    """The engine's draft loop for a plan: --p-min, else the p-min a calibration was measured with, else the engine's."""
    loop = engine_loop(engine, server_version, p_min)
    measured = applied.acceptance.p_min if applied is not None and applied.acceptance is not None else None
    if p_min is None and measured is not None and loop.rule != "fixed":
        loop = replace(loop, p_min=measured)
    return loop


def with_pair_costs(loop: LoopSpec, target: ModelSpec, draft: ModelSpec, k: int) -> LoopSpec:
    """The loop plus what this pair adds to every round: re-tokenisation when the tokenizers differ (UAG)."""
    if not cross_tokenizer(target, draft):
        return loop
    # committed ~ half the drafts plus the bonus token: the window term is small either way.
    return replace(loop, fixed_round_us=loop.fixed_round_us + uag_round_us(k, 1 + k / 2))


def choose_alpha(alpha: float | None, acceptance_rate: float | MeasuredRate | None, k: int | None,
                 target: ModelSpec, draft: ModelSpec, draft_fmt: WeightFormat, task: str,
                 loop: LoopSpec | None = None) -> AlphaChoice:
    """User alpha, user acceptance rate (converted at its k through the engine's loop), or the prior band."""
    user = measured_alpha(alpha, acceptance_rate, k, loop)
    if user is not None:
        return user
    prior = alpha_prior(target, draft, draft_fmt, task)
    return AlphaChoice(prior.mid, prior.low, prior.high, "prior", prior.explanation)


def measured_alpha(alpha: float | None, acceptance_rate: float | MeasuredRate | None, k: int | None,
                   loop: LoopSpec | None = None) -> AlphaChoice | None:
    """The user's --alpha, or a measured rate / mean accepted length converted at its k (None: neither given).

    The same conversions serve a draft model and every other proposer: what the server counts
    (accepted / drafted, tokens per verify step) does not depend on what proposed the tokens.
    """
    if alpha is not None and acceptance_rate is not None:
        raise SpecplanError("give --alpha or --acceptance-rate, not both")
    if alpha is not None:
        a = float(sp.check_alpha(alpha))
        return AlphaChoice(a, a, a, "user", "per-token alpha given with --alpha")
    if acceptance_rate is not None:
        m = acceptance_rate if isinstance(acceptance_rate, MeasuredRate) else MeasuredRate(
            float(sp.check_alpha(acceptance_rate, "acceptance rate")), None, f"accepted/proposed {acceptance_rate:g}")
        if k is None:
            raise SpecplanError("--acceptance-rate is accepted/proposed at some k: give that --k too")
        if m.rate is None:  # a mean accepted length: through the loop when there is one
            a = float(alpha_from_mean_length(loop, m.mean_length or 1.0, k) if loop is not None else
                      sp.alpha_from_acceptance_rate(((m.mean_length or 1.0) - 1.0) / k, k))
            return AlphaChoice(a, a, a, "user", f"{m.source} at k={k} -> per-token alpha {a:.3f}"
                               + (f" ({loop.engine} {loop.line} loop)" if loop is not None else ""))
        if loop is None:
            a = float(sp.alpha_from_acceptance_rate(m.rate, k))
            return AlphaChoice(a, a, a, "user", f"accepted/proposed {m.rate:g} at k={k} -> per-token alpha {a:.3f}")
        fit = alpha_from_loop_counts(loop, m.rate, k, m.drafted_per_round)
        return AlphaChoice(fit.alpha, fit.alpha, fit.alpha, "user", f"{m.source}: {fit.detail}",
                           kappa=fit.kappa if fit.kappa_fitted else None)
    return None


def measured_precision(cal: CalibrationFile | None) -> str | None:
    return cal.draft.precision if cal is not None and cal.draft is not None else None


def calibrated_alpha(applied: AppliedCalibration | None, measured_precision: str | None,
                      fmt: WeightFormat) -> AlphaChoice | None:
    """The measured alpha; for another draft format, moved by the priors' quantization penalty and marked derived."""
    if applied is None or applied.acceptance is None:
        return None
    a = applied.acceptance
    same = measured_precision in (fmt.name, *fmt.aliases) if measured_precision else fmt.bits_per_weight >= 16
    if not same:
        shift = precision_shift(measured_precision, fmt)
        lo, mid, hi = (float(np.clip(x + shift, 0.0, 1.0)) for x in (a.alpha_low, a.alpha, a.alpha_high))
        return AlphaChoice(mid, lo, hi, "derived", f"{a.mode} acceptance {a.alpha:.3f} measured in {applied.path} with a "
                           f"{measured_precision or 'unrecorded (taken as 16-bit)'} draft, moved to {fmt.name} by the "
                           f"priors' quantization penalty ({shift:+.3f}): not measured at {fmt.name}")
    detail = f"{a.mode} acceptance measured in {applied.path}: {a.alpha:.3f}, 95% interval {a.alpha_low:.3f}-{a.alpha_high:.3f}"
    if a.decays_with_position and a.per_position:
        detail += f"; acceptance decays with position ({', '.join(f'{x:.2f}' for x in a.per_position)}): E[L] uses them"
        return AlphaChoice(a.alpha, a.alpha_low, a.alpha_high, "calibration", detail, tuple(a.per_position), a.kappa)
    if a.p_min is not None:
        detail += (f"; measured with p-min {a.p_min:g}" + (f", {a.drafted_per_round:.2f} drafted per round"
                                                           if a.drafted_per_round else "") + ": the plan uses that p-min")
    return AlphaChoice(a.alpha, a.alpha_low, a.alpha_high, "calibration", detail, kappa=a.kappa)

"""Measured acceptance -> the loop model's per-token alpha (and kappa), through the engine's draft loop.

A server's accepted / drafted is not the per-token alpha: under a p-min rule the drafted tokens are
the confident ones (accepted more often than average) and rounds are shorter than n-max. The
conversion inverts the loop model: alpha is the unfiltered acceptance whose loop reproduces the
measured rate; with the drafted tokens per round as well, kappa is fitted too (two figures, two
unknowns), else loops.yaml's kappa is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from planner.draftloop.data import LoopSpec
from planner.draftloop.renewal import loop_round
from planner.draftloop.rounds import round_distribution, round_means
from planner.draftloop.schedules import K_CAP
from planner.errors import SpecplanError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["LoopCounts", "loop_acceptance_rate", "loop_drafted_per_round", "rate_floor", "alpha_from_loop_counts",
           "alpha_from_mean_length"]

_STEPS = 40  # bisection steps inside one grid cell: far below measurement noise
_GRID = 1025  # alpha grid for the last crossing
_LOG_KAPPA = (math.log(0.2), math.log(2000.0))  # kappa range searched (dimensionless)


@dataclass(frozen=True)
class LoopCounts:
    """A measured acceptance read through the loop: the model's figures and how they were found."""

    alpha: float  # per-token (unfiltered) acceptance, probability
    kappa: float  # confidence concentration used (fitted when drafted-per-round was given)
    rate: float  # measured accepted / drafted
    drafted_per_round: float  # measured, or what the model predicts at (alpha, kappa)
    kappa_fitted: bool
    detail: str


def _means(loop: LoopSpec, alpha: ArrayLike, n_max: int, kappa: float) -> tuple[np.ndarray, np.ndarray]:
    """(E[drafted], E[accepted]) per round of the loop, its schedule's chain included (tokens per round)."""
    if loop.schedule == "fixed":
        m = round_means(round_distribution(loop.rule, alpha, n_max, loop.p_min, kappa, loop.n_min))
        return np.asarray(m.drafted), np.asarray(m.accepted)
    lr = loop_round(replace(loop, kappa=kappa, fixed_round_us=0.0), alpha, n_max, 0.0, np.ones(K_CAP + 1), 1.0)
    return np.asarray(lr.drafted), np.asarray(lr.accepted)


def loop_acceptance_rate(loop: LoopSpec, alpha: float, n_max: int, kappa: float | None = None) -> float:
    """accepted / drafted the loop produces at per-token alpha (dimensionless)."""
    d, a = _means(loop, alpha, n_max, loop.kappa if kappa is None else kappa)
    return float(a / d) if float(d) > 0 else 0.0


def loop_drafted_per_round(loop: LoopSpec, alpha: float, n_max: int, kappa: float | None = None) -> float:
    """Mean drafted tokens per round the loop produces (tokens per round)."""
    return float(_means(loop, alpha, n_max, loop.kappa if kappa is None else kappa)[0])


def _rates_on_grid(loop: LoopSpec, n_max: int, kappa: float) -> tuple[np.ndarray, np.ndarray]:
    """accepted/drafted over a grid of alpha in (0, 1) (one broadcast evaluation)."""
    grid = np.linspace(1e-6, 1 - 1e-6, _GRID if loop.schedule == "fixed" else _GRID // 8)
    d, a = _means(loop, grid, n_max, kappa)
    drafts = d > 1e-9  # where nothing is drafted the rate is undefined, not 0
    return grid[drafts], (a / np.where(drafts, d, 1.0))[drafts]


def rate_floor(loop: LoopSpec, n_max: int, kappa: float | None = None) -> float:
    """The lowest accepted/drafted the loop can produce at any alpha (dimensionless).

    Under p-min the drafted tokens are the confident ones, so a low measured rate cannot come
    from a high p-min; the rate is not monotone in alpha there (longer rounds end on a rejection
    more often), which is why the inversion searches a grid.
    """
    rates = _rates_on_grid(loop, n_max, loop.kappa if kappa is None else kappa)[1]
    return float(rates.min()) if rates.size else 1.0


def _alpha_for_rate(loop: LoopSpec, rate: float, n_max: int, kappa: float) -> float:
    """The largest alpha whose loop yields ``rate``: the grid's last crossing, refined by bisection.

    The largest root is the regime of long rounds, where a draft worth planning sits; for a fixed
    rule the rate rises with alpha and the root is unique.
    """
    if rate >= 1:
        return 1.0
    grid, rates = _rates_on_grid(loop, n_max, kappa)
    if grid.size == 0:
        return 0.0
    below = np.flatnonzero(rates < rate)
    if below.size == 0:
        return 0.0 if rate <= 0 else float(grid[0])
    i = int(below[-1])
    if i == grid.size - 1:
        return float(grid[-1])
    lo, hi = float(grid[i]), float(grid[i + 1])
    for _ in range(_STEPS):
        mid = 0.5 * (lo + hi)
        if loop_acceptance_rate(loop, mid, n_max, kappa) < rate:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def alpha_from_loop_counts(loop: LoopSpec, rate: float, n_max: int, drafted_per_round: float | None = None) -> LoopCounts:
    """Per-token alpha (and kappa when ``drafted_per_round`` is given) from a measured accepted/drafted.

    ``rate`` is accepted / drafted (e.g. llama.cpp n_accept / n_drafted), ``n_max`` the engine's
    most drafts per round (the plan's k), ``drafted_per_round`` the mean drafted tokens per round.
    """
    if not 0 <= rate <= 1:
        raise SpecplanError(f"acceptance rate must be between 0 and 1 (got {rate!r})")
    if drafted_per_round is not None and not 0 < drafted_per_round <= n_max:
        raise SpecplanError(f"drafted tokens per round must be above 0 and at most k = {n_max} (the most the "
                            f"engine drafts per round); got {drafted_per_round:g}")
    floor = rate_floor(loop, n_max) if loop.variable_length else 0.0
    if rate < floor - 1e-9 and drafted_per_round is None:
        return _sharper_kappa(loop, rate, n_max, floor)
    if not loop.variable_length or drafted_per_round is None:
        alpha = _alpha_for_rate(loop, rate, n_max, loop.kappa)
        d = loop_drafted_per_round(loop, alpha, n_max)
        if drafted_per_round is not None and abs(drafted_per_round - d) > 0.05 * n_max:
            raise SpecplanError(f"{loop.engine} ({loop.line}) drafts {d:.2f} tokens per round at k = {n_max} with this "
                                f"loop (p-min {loop.p_min:g}), but {drafted_per_round:g} per round was given: check --k "
                                "and --p-min")
        how = "loop model" if loop.variable_length else "fixed-k relation"
        return LoopCounts(alpha, loop.kappa, rate, d, False,
                          f"accepted/drafted {rate:.4g} at k={n_max} -> per-token alpha {alpha:.3f} ({how}, "
                          f"{loop.engine} {loop.line}, p-min {loop.p_min:g}, kappa {loop.kappa:g}); "
                          f"{d:.2f} drafted per round predicted")
    # Fit log kappa so the loop drafts what was measured; alpha follows from the rate at each kappa.
    def drafted_at(log_kappa: float) -> tuple[float, float]:
        kap = math.exp(log_kappa)
        a = _alpha_for_rate(loop, rate, n_max, kap)
        return loop_drafted_per_round(loop, a, n_max, kap), a
    lo, hi = _LOG_KAPPA
    d_lo, _ = drafted_at(lo)
    d_hi, _ = drafted_at(hi)
    increasing = d_hi >= d_lo
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        d_mid, _ = drafted_at(mid)
        if (d_mid < drafted_per_round) == increasing:
            lo = mid
        else:
            hi = mid
    kap = math.exp(0.5 * (lo + hi))
    d, alpha = drafted_at(0.5 * (lo + hi))
    clipped = abs(d - drafted_per_round) > 0.02 * max(drafted_per_round, 1.0)
    note = (f"; the loop cannot draft {drafted_per_round:g} per round at this rate (closest {d:.2f}, kappa at its "
            "search bound)") if clipped else ""
    return LoopCounts(alpha, kap, rate, float(drafted_per_round), not clipped,
                      f"accepted/drafted {rate:.4g} with {drafted_per_round:g} drafted per round at n-max {n_max} -> "
                      f"per-token alpha {alpha:.3f}, confidence kappa {kap:.3g} ({loop.engine} {loop.line} loop, "
                      f"p-min {loop.p_min:g}){note}")


def _sharper_kappa(loop: LoopSpec, rate: float, n_max: int, floor: float) -> LoopCounts:
    """A rate below the loop's floor at the default kappa: the smallest kappa that reaches it.

    Under p-min the drafted tokens are the confident ones; with loops.yaml's kappa they are accepted
    at least ``floor`` of the time. A lower measured rate says the draft's confidence sorts tokens
    less sharply than that (a larger kappa: q closer to alpha everywhere), so kappa is raised just
    enough; beyond the search bound the rate cannot come from this loop at all.
    """
    lo, hi = math.log(loop.kappa), _LOG_KAPPA[1]
    if rate_floor(loop, n_max, math.exp(hi)) > rate + 1e-9:
        raise SpecplanError(f"accepted/drafted {rate:.3g} is below what {loop.engine} ({loop.line}) can measure with "
                            f"p-min {loop.p_min:g} (at least {floor:.3g}: only tokens the draft is sure of are drafted); "
                            "was the run made with another p-min? pass it with --p-min")
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if rate_floor(loop, n_max, math.exp(mid)) > rate:
            lo = mid
        else:
            hi = mid
    kap = math.exp(hi)
    alpha = _alpha_for_rate(loop, rate, n_max, kap)
    d = loop_drafted_per_round(loop, alpha, n_max, kap)
    return LoopCounts(alpha, kap, rate, d, True,
                      f"accepted/drafted {rate:.4g} at k={n_max} is below the {floor:.3g} the {loop.engine} {loop.line} "
                      f"loop gives with p-min {loop.p_min:g} at the default kappa {loop.kappa:g}: the draft's confidence "
                      f"sorts less sharply, kappa raised to {kap:.3g} -> per-token alpha {alpha:.3f}, {d:.2f} drafted "
                      "per round predicted")


def alpha_from_mean_length(loop: LoopSpec, mean_length: float, n_max: int) -> float:
    """Per-token alpha whose loop commits ``mean_length`` tokens per round (the bonus token included).

    The figure Spec-Bench-style sources print (mean accepted tokens per verification). Committed
    tokens rise with alpha under every rule and schedule here, so a bisection inverts it.
    Unit: probability.
    """
    if not 1 <= mean_length <= n_max + 1 + 1e-9 and loop.schedule == "fixed":
        raise SpecplanError(f"mean accepted length must be between 1 and k + 1 = {n_max + 1} (got {mean_length:g})")
    lo, hi = 0.0, 1.0
    for _ in range(_STEPS):
        mid = 0.5 * (lo + hi)
        d, a = _means(loop, mid, n_max, loop.kappa)
        if 1.0 + float(a) < mean_length:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)

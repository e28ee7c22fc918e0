"""One-sentence answers: does speculation pay for this configuration, and what should the user run.

Verdicts are read first and acted on, so they follow two rules:
* a configuration that does not fit is never the answer: when nothing fits, the verdict says so
  before anything else, and a speedup of a row that cannot run is never presented as the result;
* "do not speculate" always says why, from the numbers that decided it (r when verification has
  turned compute-bound, alpha against break-even, or the draft's per-token cost c), and names the
  k that still pays when another k does.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner import speedup as sp

__all__ = ["MIN_WORTHWHILE_SPEEDUP", "COMPUTE_BOUND_R", "Ranked", "pass_verdict", "recommendation_verdict"]

MIN_WORTHWHILE_SPEEDUP = 1.05  # below this, speculation is not worth its memory and complexity
# A verify pass of k+1 tokens that costs this many decode steps has stopped being "free": the
# weights are no longer the only cost, the batch's GEMMs or attention set the pace.
COMPUTE_BOUND_R = 1.3


def _why_not(c: float, r: float, alpha: float, batch: int, verify_bound: str | None) -> str:
    """The number that stops speculation paying here.

    ``verify_bound``: what sets the verify pass's pace ("compute", or an operator such as
    "mlp (compute)"), None when unknown.
    """
    even = float(sp.break_even_alpha(c, r))
    if r > COMPUTE_BOUND_R:
        if verify_bound and "compute" in verify_bound:
            by = "" if verify_bound == "compute" else f", bound by {verify_bound}"
            return f"verification is compute-bound at batch {batch} (r = {r:.2f}{by})"
        return f"verification costs {r:.2f} decode steps at batch {batch}"
    if alpha <= even:
        return f"alpha {alpha:.2f} is below break-even {even:.2f}"
    return f"the draft costs too much (c = {c:.3f} per token)"


def pass_verdict(fits: bool, speedup: float, c: float, r: float, alpha: float, batch: int, k: int | None = None,
                 best_k: int | None = None, best_speedup: float | None = None, verify_bound: str | None = None) -> str:
    """One sentence for one configuration (estimate) or one ranked row (recommend).

    ``best_k``/``best_speedup``: the best k for the same pair, so a k that does not pay can
    point at one that does.
    """
    if not fits:
        return "does not fit: never recommended"
    if speedup >= MIN_WORTHWHILE_SPEEDUP:
        return f"speculation pays: {speedup:.2f}x"
    text = f"do not use speculation: {speedup:.2f}x; {_why_not(c, r, alpha, batch, verify_bound)}"
    if best_k is not None and best_k != k and best_speedup is not None and best_speedup >= MIN_WORTHWHILE_SPEEDUP:
        text += f"; k = {best_k} still pays {best_speedup:.2f}x"
    return text


@dataclass(frozen=True)
class Ranked:
    """What the recommendation verdict needs of one ranked row (draft None = no speculation)."""

    draft: str | None
    draft_precision: str | None
    k: int | None
    gpus: int
    speedup: float
    fits: bool
    c: float | None = None
    r: float | None = None
    alpha: float | None = None
    verify_bound: str | None = None


def recommendation_verdict(rows: list[Ranked], gpu: str, batch: int, nothing_fits: str) -> str:
    """The answer to a recommend question, from its rows in ranked order (best first).

    ``nothing_fits`` is the sentence to give when no row fits (what the target alone needs,
    and the cheapest changes).
    """
    fitting = [row for row in rows if row.fits]
    if not fitting:
        return nothing_fits
    best = fitting[0]
    if best.draft is not None and best.speedup >= MIN_WORTHWHILE_SPEEDUP:
        fmt = f" ({best.draft_precision})" if best.draft_precision else ""
        return f"speculate: {best.draft}{fmt} with k = {best.k} on {best.gpus} x {gpu}, {best.speedup:.2f}x"
    if not any(row.draft is not None for row in rows):
        return "do not use speculation: the catalogue has no smaller draft with the target's token ids"
    drafts = [row for row in fitting if row.draft is not None]
    if not drafts:
        return f"do not use speculation: no draft fits on {best.gpus} x {gpu} beside the target"
    top = max(drafts, key=lambda row: row.speedup)
    why = _why_not(top.c or 0.0, top.r or 1.0, top.alpha or 0.0, batch, top.verify_bound)
    fmt = f" {top.draft_precision}" if top.draft_precision else ""
    return (f"do not use speculation: no proposer reaches {MIN_WORTHWHILE_SPEEDUP:.2f}x at batch {batch} "
            f"(best: {top.draft}{fmt} k = {top.k}, {top.speedup:.2f}x; {why})")

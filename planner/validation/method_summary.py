"""Per-method medians of the head, MTP and lookup rows (issue 12 point 6), beside the draft-model ones.

Per planned method: the rows priced, the median |error| of the speedup with the published acceptance
(tau or an acceptance rate passed in) and from the method prior, and the skips by reason. A prior
whose basis is "tree-bound" (tree-measured tau read without a tree model: an upper bound on a
chain's alpha, planner.priors.methods) prices an upper bound of a chain's speedup, so those rows
are checked one-sided (predicted >= measured) and stay out of the prior median until the tree
model turns such priors into points.
"""

from __future__ import annotations

from typing import Any

from planner.validation.cases import Skip
from planner.validation.medians import median_block, target_row
from planner.validation.methods import PLANNED_METHODS, TREE_REASON
from planner.validation.speculative import SpecCheck

__all__ = ["method_blocks", "method_targets", "TREE_BOUND"]

TREE_BOUND = "tree-bound"


def _one_method(checks: list[SpecCheck], skipped: list[Skip]) -> dict[str, Any]:
    counted = [c for c in checks if c.compared_speedup]
    points = [c for c in counted if c.prior_basis != TREE_BOUND]
    bounds = [c for c in counted if c.prior_basis == TREE_BOUND]
    with_acceptance = [c for c in counted if c.measured is not None]
    reasons: dict[str, int] = {}
    for s in skipped:
        key = TREE_REASON if s.reason.startswith(TREE_REASON) else s.reason
        reasons[key] = reasons.get(key, 0) + 1
    return {
        "priced": len(checks),
        "speedup_measured_acceptance": median_block([c.measured_error for c in with_acceptance],
                                                    [c.roofline_measured_error for c in with_acceptance]),
        "speedup_prior_only": median_block([c.prior_error for c in points], [c.roofline_prior_error for c in points]),
        "prior_upper_bounds": [{"row": c.row, "measured": round(float(c.case.measured_speedup or 0), 4),
                                "predicted": round(c.prior.speedup, 4),
                                "error": None if c.prior_error is None else round(c.prior_error, 4),
                                "within": c.prior.speedup >= float(c.case.measured_speedup or 0)} for c in bounds],
        "skipped": reasons,
    }


def method_blocks(checks: list[SpecCheck], skipped: list[Skip]) -> dict[str, dict[str, Any]]:
    """Every planned method's block, then one per unplanned method the files hold (skips only)."""
    methods = [*PLANNED_METHODS, *sorted({s.method for s in skipped if s.method and s.method not in PLANNED_METHODS})]
    return {m: _one_method([c for c in checks if c.method == m], [s for s in skipped if s.method == m])
            for m in methods}


def method_targets(blocks: dict[str, dict[str, Any]], measured_limit: float, prior_limit: float) -> list[dict[str, Any]]:
    """Issue 12's targets per planned method: published acceptance <= measured_limit, prior <= prior_limit."""
    rows = []
    for m in PLANNED_METHODS:
        b = blocks[m]
        rows.append(target_row(f"{m} speedup with published acceptance median |error|", b["speedup_measured_acceptance"],
                            measured_limit))
        rows.append(target_row(f"{m} prior-only speedup median |error|", b["speedup_prior_only"], prior_limit))
        bounds = b["prior_upper_bounds"]
        if bounds:
            rows.append({"name": f"{m} tree-bound prior: predicted at or above the measured speedup",
                         "value": sum(not u["within"] for u in bounds), "limit": 0, "rows": len(bounds),
                         "met": all(u["within"] for u in bounds)})
    return rows

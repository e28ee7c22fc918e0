"""What every method plan returns (MethodPlan), the settings an export writes, and the plan's warnings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from planner.acceptance import AlphaChoice
from planner.draftloop import LoopSpec
from planner.memory import FitReport, FitRequest
from planner.search import RoundPrices

__all__ = ["MethodPlan", "method_settings", "method_warnings"]


@dataclass(frozen=True)
class MethodPlan:
    """A method's priced plan: what estimate_one folds into its Estimate."""

    report: FitReport
    prices: RoundPrices
    k: int
    alpha: AlphaChoice
    speedup_low: float
    speedup_high: float
    best_k: int
    warnings: tuple[str, ...]
    verdict: str
    loop: LoopSpec
    settings: dict[str, Any]


def method_settings(req: FitRequest, k: int, tree: tuple[int, int, int] | None = None) -> dict[str, Any]:
    """The settings an export writes: method, head, k or the tree shape (steps, topk, draft tokens)."""
    assert req.proposer is not None
    out: dict[str, Any] = {"method": req.proposer.method, "head": req.proposer.name, "k": k}
    if tree is not None:
        out.update(num_steps=tree[0], topk=tree[1], num_draft_tokens=tree[2])
    return out


def method_warnings(req: FitRequest, choice: AlphaChoice, k: int, best: int) -> list[str]:
    out = []
    p = req.proposer
    assert p is not None
    if p.method == "suffix":
        out.append("suffix decoding proposes from earlier outputs too: its acceptance grows with repeated work "
                   "(agents, SQL pipelines); the prior is n-gram lookup's, a floor")
    if p.method in ("ngram", "suffix"):
        out.append(f"{p.method} lookup finds a match only where the output repeats the context: the speedup is an "
                   "average over rounds with and without one (the published figures average the same way)")
    if k > best and choice.mid**k < 0.1:
        out.append(f"k={k} is far above what alpha {choice.mid:.2f} supports (best k here is {best})")
    return out

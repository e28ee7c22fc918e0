"""The best token tree for a plan, where its engine serves trees (SGLang, TensorRT-LLM EAGLE): shape, band, prices.

planner.methods.trees searches (steps, topk, num_draft_tokens) at the plan's batch under the
fitted rank profile (planner/trees/rank_profiles.yaml); this module turns the winner into what a
plan reports: the speedup band from the low/high alpha, and RoundPrices whose c is one head pass
over t_target and r the verify of num_draft_tokens tokens, so estimate's output reads the same
for a tree as for a chain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.acceptance import AlphaChoice
from planner.costmodel import baseline_step_s, pass_cost
from planner.costmodel.proposer_profile import proposer_profile
from planner.draftloop import LoopSpec
from planner.memory import FitRequest
from planner.methods.rounds import MethodProfiles
from planner.methods.trees import best_tree
from planner.search import RoundPrices
from planner.trees import (MeasuredShape, RankProfile, draft_pass_widths, model_from_alpha, sglang_expected_lengths,
                           shape_expected_length, shape_tree)
from planner.trees.acceptance import method_rank_profile

__all__ = ["TreePlan", "serves_trees", "best_tree_plan", "tree_plan_at", "tree_rank_profile"]

# Whose fitted rank profile a method's trees use. MTP layers have no published chain/tree pair: they take
# EAGLE-1/2's split, the smaller tree gain of the two fits (EAGLE-3's training-time test is what lifts its own).
_PRIOR_METHOD = {"eagle": "eagle2", "eagle3": "eagle3", "mtp": "eagle2"}


@dataclass(frozen=True)
class TreePlan:
    """The best tree: (steps, topk, num_draft_tokens), its speedup, band and prices."""

    shape: tuple[int, int, int]
    speedup: float
    band: tuple[float, float]
    prices: RoundPrices


def serves_trees(req: FitRequest) -> bool:
    """True when the plan's engine builds token trees for its method (engines.yaml tree_methods)."""
    return req.proposer is not None and req.proposer.method in req.engine.tree_methods


def tree_rank_profile(method: str) -> RankProfile:
    """The fitted rank profile a method's trees are priced with (EAGLE-1/2 heads: EAGLE-2's fit)."""
    return method_rank_profile(_PRIOR_METHOD.get(method, method))


def _model(method: str, alpha: float):  # type: ignore[no-untyped-def]
    return model_from_alpha(alpha, profile=tree_rank_profile(method))


def _prices(t_target, t_head, verify, mean_length: float, speedup: float, drafted: int,
            passes: int, fixed_s: float, base_s: float) -> RoundPrices:  # type: ignore[no-untyped-def]
    """A tree round as RoundPrices: c is one head pass over the plain decode step (``base_s``, s, as
    the engine runs it without speculation), r the verify over it."""
    t = base_s
    return RoundPrices(
        t_target_s=np.asarray(t), t_draft_s=np.asarray(t_head.total_s), t_verify_s=np.asarray(verify.total_s),
        c=np.asarray(t_head.total_s / t), r=np.asarray(verify.total_s / t),
        mean_accepted_length=np.asarray(mean_length), speedup=np.asarray(speedup),
        target_compute_bound=np.asarray(t_target.bound_by_compute), verify_compute_bound=np.asarray(verify.bound_by_compute),
        draft_compute_bound=np.asarray(t_head.bound_by_compute), passes={"target": t_target, "draft": t_head, "verify": verify},
        drafted_per_round=float(drafted), draft_passes_per_round=float(passes),
        fixed_round_steps=fixed_s / t, acceptance_rate=np.nan)


def best_tree_plan(req: FitRequest, profiles: MethodProfiles, server_version: str | None, choice: AlphaChoice,
                   loop: LoopSpec, context: float) -> TreePlan | None:
    """The tree with the most tokens/s at the plan's batch and mid alpha (None: the engine serves chains only)."""
    if not serves_trees(req) or profiles.proposer is None:
        return None
    assert req.proposer is not None
    tp = req.gpus if req.engine.parallelism == "tensor" else 1

    def head(steps: int):  # type: ignore[no-untyped-def]
        return proposer_profile(req.proposer, req.target, req.precision, req.kv, tp, req.gpu, steps)

    fixed_s = loop.fixed_round_us * 1e-6
    dev, hdev = profiles.device, profiles.proposer_device
    mid = best_tree(profiles.target, head, dev, hdev, req.batch, int(context), _model(req.proposer.method, choice.mid),
                    fixed_s)
    s = mid.shape
    shape = (s.steps, s.topk, s.num_draft_tokens)
    band = tuple(float(sglang_expected_lengths(s.steps, s.topk, _model(req.proposer.method, a))[s.num_draft_tokens - 1])
                 * mid.target_decode_s / s.round_time_s for a in (choice.low, choice.high))
    h = head(s.steps)
    t_head = pass_cost(h, hdev, req.batch, context, 1)
    t_target = pass_cost(profiles.target, dev, req.batch, context, 1)
    verify = pass_cost(profiles.target, dev, req.batch, context, s.num_draft_tokens)
    prices = _prices(t_target, t_head, verify, s.mean_accepted_length, float(mid.speedup), s.num_draft_tokens - 1,
                     s.steps, fixed_s, mid.target_decode_s)
    return TreePlan(shape, float(mid.speedup), (band[0], band[1]), prices)


def tree_plan_at(req: FitRequest, profiles: MethodProfiles, choice: AlphaChoice, loop: LoopSpec, context: float,
                 shape: MeasuredShape) -> TreePlan:
    """One given tree (dynamic, static or a chain) priced at the plan's batch: what a server runs
    when its tree is set by hand (SGLang's flags, EAGLE's tree choices) rather than searched.

    Round seconds = one head pass per level (planner.trees.draft_pass_widths tokens per request
    each) + verify of the tree's tokens + the engine's fixed round time; speedup = E[L] x
    t_target / round, E[L] of the shape under the method's rank profile at each alpha of the band.
    """
    assert req.proposer is not None and profiles.proposer is not None
    tp = req.gpus if req.engine.parallelism == "tensor" else 1
    widths = draft_pass_widths(shape)
    head = proposer_profile(req.proposer, req.target, req.precision, req.kv, tp, req.gpu, len(widths))
    dev, hdev = profiles.device, profiles.proposer_device
    fixed_s = loop.fixed_round_us * 1e-6
    tree = shape_tree(shape)
    n = tree.num_draft_tokens if tree is not None else int(shape.verify_tokens or 0)
    drafts = [pass_cost(head, hdev, req.batch, context, w) for w in widths]
    drafts_s = float(sum(float(d.total_s) for d in drafts))
    t_target = pass_cost(profiles.target, dev, req.batch, context, 1)
    verify = pass_cost(profiles.target, dev, req.batch, context, n)
    round_s = drafts_s + float(verify.total_s) + fixed_s
    profile = tree_rank_profile(req.proposer.method)
    lengths = [shape_expected_length(shape, a, profile) for a in (choice.low, choice.mid, choice.high)]
    base_s = float(baseline_step_s(t_target.total_s, dev))
    low, mid, high = (length * base_s / round_s for length in lengths)
    depth = len(widths)
    prices = _prices(t_target, drafts[0], verify, lengths[1], mid, n - 1, depth, fixed_s, base_s)
    return TreePlan((depth, int(shape.topk or 1), n), mid, (low, high), prices)

"""estimate at a tree the user sets by hand: SGLang's (--num-steps, --topk, --num-draft-tokens), or a
static tree by name (EAGLE-1's mc_sim_7b_63), instead of the searched best.

A measured SGLang / TensorRT-LLM accept length on that tree (--mean-accepted-length) is inverted
through the same tree (planner.trees.alpha_for_shape_length), so the plan reproduces it exactly;
without one, the method prior's alpha band goes through the tree's E[L] under the method's
fitted rank profile. A chain shape (topk 1) is priced like any chain.
"""

from __future__ import annotations

from dataclasses import replace

from planner.acceptance import AlphaChoice, MeasuredRate, calibrated_alpha, measured_alpha
from planner.calibration.apply import AppliedCalibration, calibrated_device
from planner.calibration.method_fits import tree_shape
from planner.catalog.precisions import weight_format
from planner.draftloop import engine_loop
from planner.engines import engines
from planner.errors import SpecplanError
from planner.memory import FitRequest, fit_report
from planner.methods.acceptance import method_alpha
from planner.methods.rounds import method_loop, method_profiles
from planner.methods.tree_plan import serves_trees, tree_plan_at, tree_rank_profile
from planner.plan.common import bound
from planner.plan.method_parts import MethodPlan, method_settings, method_warnings
from planner.search import decode_context
from planner.trees import MeasuredShape, alpha_for_shape_length, shape_tree, static_tree
from planner.verdicts import pass_verdict

__all__ = ["given_tree", "estimate_given_tree"]


def given_tree(num_steps: int | None, topk: int | None, num_draft_tokens: int | None, k: int | None,
               static: str | None = None) -> MeasuredShape | None:
    """The shape estimate was given (None: none; the plan searches k, or the tree where the engine builds them).

    --tree NAME is a static tree of planner/trees/static_trees.yaml (with --num-draft-tokens where two
    trees share the name); the SGLang flags complete and check as calibrate's do (topk 1 is a chain).
    """
    if static is not None:
        if num_steps is not None or topk is not None:
            raise SpecplanError("--tree names a static tree: its depth and widths are fixed; drop --num-steps / --topk")
        nodes = None if num_draft_tokens is None else num_draft_tokens - 1
        if static_tree(static, nodes) is None:
            raise SpecplanError(f"--tree {static!r}: no such static tree in planner/trees/static_trees.yaml"
                                + (f" with {num_draft_tokens} draft tokens" if nodes is not None else
                                   " (give --num-draft-tokens where two trees share the name)"))
        shape = MeasuredShape("static", name=static, verify_tokens=num_draft_tokens)
        return shape if num_draft_tokens is not None else replace(
            shape, verify_tokens=shape_tree(MeasuredShape("static", name=static)).num_draft_tokens)  # type: ignore[union-attr]
    if num_steps is None and topk is None and num_draft_tokens is None:
        return None
    t = tree_shape(num_steps, topk, num_draft_tokens, k, "estimate")
    assert t is not None
    if t.topk == 1:
        return MeasuredShape("chain", k=t.num_steps)
    return MeasuredShape("dynamic", depth=t.num_steps, topk=t.topk, verify_tokens=t.num_draft_tokens)


def _refuse_chain_engine(req: FitRequest) -> None:
    assert req.proposer is not None
    method = req.proposer.method
    others = [e.name for e in engines().values() if method in e.tree_methods]
    raise SpecplanError(f"{req.engine.label} serves --method {method} as a chain only (engines.yaml tree_methods): "
                        "drop --topk / --num-draft-tokens / --tree, or plan it on "
                        + (", ".join(others) if others else "no engine (none builds its trees)"))


def _alpha(req: FitRequest, shape: MeasuredShape, task: str, alpha: float | None, rate: MeasuredRate | None,
           applied: AppliedCalibration | None, steps: int) -> AlphaChoice:
    assert req.proposer is not None
    if rate is not None and shape.kind != "chain":
        if rate.mean_length is None:
            raise SpecplanError("on a tree, accepted / drafted depends on the tree's width: give "
                                "--mean-accepted-length (what SGLang and TensorRT-LLM print as accept length)")
        a = alpha_for_shape_length(shape, rate.mean_length, tree_rank_profile(req.proposer.method))
        return AlphaChoice(a, a, a, "user", f"{rate.source} on this tree -> per-token alpha {a:.3f} "
                           "(inverted through the tree's E[L])")
    user = measured_alpha(alpha, rate, steps, None)
    if user is not None:
        return user
    calibrated = calibrated_alpha(applied, None, weight_format("bf16"))
    return calibrated or method_alpha(req.proposer.method, req.target, task)


def estimate_given_tree(req: FitRequest, fit_warnings: tuple[str, ...], shape: MeasuredShape, *, task: str,
                        alpha: float | None, rate: MeasuredRate | None, server_version: str | None,
                        applied: AppliedCalibration | None = None) -> MethodPlan:
    """Price ``req``'s proposer on the tree ``shape`` (no search): the plan, band and verdict at that tree."""
    assert req.proposer is not None
    if shape.kind != "chain" and not serves_trees(req):
        _refuse_chain_engine(req)
    ctx = float(decode_context(req.context))
    tree = shape_tree(shape)
    steps = tree.depth if tree is not None else int(shape.depth or 1)
    loop = method_loop(engine_loop(req.engine.name, server_version), req.proposer.method, ctx, steps)
    choice = _alpha(req, shape, task, alpha, rate, applied, steps)
    base = method_profiles(req, req.gpus, server_version, steps)
    timing = applied.target_timing if applied is not None else None
    profiles = replace(base, device=calibrated_device(base.device, timing)) if timing is not None else base
    plan = tree_plan_at(req, profiles, choice, loop, ctx, shape)
    depth, width, tokens = plan.shape
    req = replace(req, k=tokens - 1)  # verify slots: the tree's draft tokens
    settings = method_settings(req, depth, None if shape.kind == "chain" else plan.shape)
    if shape.kind == "static":
        settings["tree"] = shape.name
    report = fit_report(req, fit_warnings)
    p = plan.prices
    warnings = fit_warnings + tuple(method_warnings(req, choice, depth, depth))
    verdict = pass_verdict(report.fits, plan.speedup, float(p.c), float(p.r), choice.mid, req.batch, depth, depth,
                           plan.speedup, bound(p.verify_compute_bound))
    return MethodPlan(report, p, depth, choice, plan.band[0], plan.band[1], depth, warnings, verdict, loop, settings)

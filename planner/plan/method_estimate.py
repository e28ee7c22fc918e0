"""estimate for a proposer that is not a draft model: an EAGLE/EAGLE-3 head, MTP modules, n-gram or suffix lookup.

Same answer as for a draft model (pass times, c, r, alpha band, best k, verdict, fit), priced by
planner.methods: the head's step through the cost model, the method's own acceptance prior, and
for engines that serve trees the best (steps, topk, draft tokens) when that beats every chain.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from planner.acceptance import MeasuredRate, calibrated_alpha, measured_rate
from planner.catalog.precisions import weight_format
from planner.methods.tree_plan import best_tree_plan
from planner.plan.given_tree import estimate_given_tree
from planner.plan.method_parts import MethodPlan, method_settings, method_warnings
from planner.trees import MeasuredShape
from planner.calibration.apply import AppliedCalibration, calibrated_device
from planner.draftloop import engine_loop
from planner.memory import FitRequest, fit_report
from planner.methods.acceptance import method_alpha
from planner.methods.rounds import MethodProfiles, method_loop, method_profiles, price_method_rounds
from planner.plan.common import K_SEARCH, bound
from planner.search import decode_context
from planner.verdicts import pass_verdict

__all__ = ["MethodPlan", "estimate_method", "method_settings"]


def estimate_method(req: FitRequest, fit_warnings: tuple[str, ...], *, task: str, k_given: bool, alpha: float | None,
                    rate: MeasuredRate | None, server_version: str | None,
                    applied: AppliedCalibration | None = None, tree: MeasuredShape | None = None) -> MethodPlan:
    """Price ``req``'s proposer over K_SEARCH (or at the given k) with its alpha band; at ``tree`` when given."""
    assert req.proposer is not None
    if tree is not None and tree.kind == "chain":  # topk 1: the chain at that k, priced as every chain is
        req, k_given, tree = replace(req, k=int(tree.k or 1)), True, None
    if tree is not None:
        return estimate_given_tree(req, fit_warnings, tree, task=task, alpha=alpha, rate=rate,
                                   server_version=server_version, applied=applied)
    ctx = decode_context(req.context)
    method = req.proposer.method
    grid = K_SEARCH if not k_given or req.k <= K_SEARCH[-1] else np.arange(1, req.k + 1)
    loop = method_loop(engine_loop(req.engine.name, server_version), method, float(ctx), int(req.k))
    measured_here = None if alpha is not None or rate is not None else calibrated_alpha(applied, None,
                                                                                           weight_format("bf16"))
    choice = measured_here or method_alpha(method, req.target, task, alpha, rate, req.k if k_given else None, loop)
    timing = applied.target_timing if applied is not None else None
    base = method_profiles(req, req.gpus, server_version, grid[None, :])
    profiles = replace(base, device=calibrated_device(base.device, timing)) if timing is not None else base
    band = np.array([choice.low, choice.mid, choice.high])[:, None]
    swept = price_method_rounds(profiles, req.batch, ctx, grid[None, :], band, loop)
    best = int(K_SEARCH[np.argmax(swept.speedup[1][: len(K_SEARCH)])])
    k = int(req.k) if k_given else best
    req = replace(req, k=k)
    at_k = _at_k(req, server_version, k, profiles)
    prices = price_method_rounds(at_k, req.batch, ctx, k, choice.mid, loop)
    low, high = (float(swept.speedup[i, k - 1]) for i in (0, 2))
    settings = method_settings(req, k)
    tree = None if k_given else best_tree_plan(req, profiles, server_version, choice, loop, float(ctx))
    if tree is not None and tree.speedup > float(prices.speedup):
        # A tree beats every chain here: the plan is the tree (its round, its band, its shape).
        prices, (low, high) = tree.prices, tree.band
        k = tree.shape[0]
        req = replace(req, k=tree.shape[2] - 1)  # verify slots: the tree's draft tokens
        settings = method_settings(req, k, tree.shape)
    report = fit_report(req, fit_warnings)
    warnings = fit_warnings + tuple(method_warnings(req, choice, k, best))
    verdict = pass_verdict(report.fits, float(prices.speedup), float(prices.c), float(prices.r), choice.mid, req.batch,
                           k, best, float(swept.speedup[1, best - 1]), bound(prices.verify_compute_bound))
    return MethodPlan(report, prices, k, choice, low, high, best, warnings, verdict, loop, settings)


def _at_k(req: FitRequest, server_version: str | None, k: int, swept: MethodProfiles) -> MethodProfiles:
    """The profiles at one k (EAGLE-3's per-step fusion share depends on k), on the swept devices."""
    one = method_profiles(req, req.gpus, server_version, k)
    return replace(one, device=swept.device)


def measured(inp: Any) -> MeasuredRate | None:
    """The measured rate from estimate's flags (the same flags as for a draft model)."""
    return measured_rate(inp.acceptance_rate, inp.drafted_per_round, inp.drafted, inp.accepted, inp.rounds,
                         inp.mean_accepted_length)


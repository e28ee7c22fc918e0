"""estimate: one configuration priced (pass times, c, r, the engine's draft loop, alpha band, best k, verdict)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from planner import speedup as sp
from planner.acceptance import (AlphaChoice, MeasuredRate, calibrated_alpha, choose_alpha, mean_length_by_k,
                                measured_precision, measured_rate, plan_loop, with_pair_costs)
from planner.calibration.apply import (AppliedCalibration, apply_calibration, calibrated_device, measured_time_s,
                                      measured_verify, verify_extrapolation_warning)
from planner.calibration.schema import CalibrationFile, read_calibration
from planner.catalog.schemas import ModelSpec
from planner.catalog.tokenizers import cross_tokenizer
from planner.draftloop import LoopSpec
from planner.memory import FitReport, FitRequest, fit_report
from planner.requests import FitInputs, build_fit_request
from planner.search import RoundPrices, decode_context, price_rounds
from planner.plan.common import K_SEARCH, UAG_K, bound, check_task, draft_rule_warnings, profiles
from planner.plan.measured_loads import compare_loads
from planner.errors import SpecplanError
from planner.plan.given_tree import given_tree
from planner.plan.method_estimate import estimate_method
from planner.verdicts import pass_verdict

__all__ = ["EstimateInputs", "Estimate", "estimate", "estimate_one"]

_FAR_K_TAIL = 0.1  # the last drafted position is accepted less often than this


@dataclass(frozen=True)
class EstimateInputs:
    """estimate's flags: the fit flags plus acceptance and task."""

    fit: FitInputs
    k_given: bool = False
    alpha: float | None = None
    acceptance_rate: float | None = None
    task: str = "chat"
    calibration: str | None = None  # path of a calibration file
    p_min: float | None = None  # draft loop (planner.draftloop): llama.cpp p-min / transformers threshold; None: engine's
    server_version: str | None = None  # release the loop is priced for (None: the newest line)
    drafted_per_round: float | None = None  # measured mean drafted tokens per round (with acceptance_rate)
    drafted: int | None = None  # measured counts: drafted tokens, accepted drafts, rounds
    accepted: int | None = None
    rounds: int | None = None
    mean_accepted_length: float | None = None  # measured tokens per round, bonus included
    # A tree set by hand (planner.plan.given_tree): SGLang's shape flags, or a static tree by name.
    num_steps: int | None = None
    topk: int | None = None
    num_draft_tokens: int | None = None
    tree: str | None = None


@dataclass(frozen=True)
class Estimate:
    """One configuration priced: pass times, c, r, speedup band, best k and the fit."""

    fit: FitReport
    prices: RoundPrices  # arrays over K_SEARCH (or scalars without a draft)
    k: int | None
    alpha: AlphaChoice | None
    speedup_low: float
    speedup_high: float
    best_k: int | None
    warnings: tuple[str, ...]
    verdict: str
    calibration: dict[str, Any] | None = None  # catalogue vs calibrated vs measured, when a file was given
    loop: LoopSpec | None = None  # the draft loop the plan was priced with (p-min is what exports write)
    # What the prices were computed with when a calibration applied (the report's curves reuse them):
    # the calibrated target and draft devices and the measured verify curve hook (planner.search.VerifyRatio).
    devices: tuple[Any, Any] | None = field(default=None, compare=False, repr=False)
    verify_ratio: Any = field(default=None, compare=False, repr=False)
    method: str | None = None  # draft, eagle, eagle3, mtp, ngram, suffix; None: no speculation
    settings: dict[str, Any] | None = None  # what exports write: method, head, k or the tree shape


def _load_applied(path: str | None, req: FitRequest,
                  cal: CalibrationFile | None = None) -> tuple[AppliedCalibration | None, str | None]:
    """What of the file applies, and the draft precision it was measured with (``cal``: the file, already read)."""
    if path is None:
        return None, None
    cal = cal if cal is not None else read_calibration(path)
    applied = apply_calibration(cal, path, req.gpu, req.target, req.draft, req.engine.name, method=req.method or "draft",
                                head=req.proposer.name if req.proposer is not None else None)
    return applied, measured_precision(cal)


def estimate(inp: EstimateInputs) -> Estimate:
    """Price the target alone, or target + draft at k (best k when none is given).

    With a calibration from `probe --server`, the block also holds predicted vs measured at each
    recorded concurrency (planner.plan.measured_loads), priced by this same function.
    """
    cal = read_calibration(inp.calibration) if inp.calibration is not None else None  # read once, priced per load
    est = estimate_one(inp, cal)
    if cal is None or est.calibration is None:
        return est
    loads = compare_loads(cal, inp.calibration, inp.fit, est.fit.request.engine.name,
                          lambda fit: estimate_one(replace(inp, fit=fit, k_given=True), cal))
    if loads is None:
        return est
    return replace(est, calibration={**est.calibration, "loads": loads}, warnings=est.warnings + tuple(loads["warnings"]))


def estimate_one(inp: EstimateInputs, cal: CalibrationFile | None = None) -> Estimate:
    """estimate without the per-load comparison (what that comparison prices each load with).

    ``cal``: the file at ``inp.calibration``, when the caller has read it already.
    """
    check_task(inp.task)
    if inp.k_given:
        sp.check_k(inp.fit.k)
    req, fit_warnings = build_fit_request(inp.fit)
    applied, measured_at = _load_applied(inp.calibration, req, cal)
    if applied is not None:
        fit_warnings += applied.warnings
    ctx = decode_context(req.context)
    tp, dp, dev0, ddev0 = profiles(req, req.draft, req.draft_precision, req.gpus, inp.server_version)
    dev = calibrated_device(dev0, applied.target_timing if applied else None)
    ddev = calibrated_device(ddev0, applied.draft_timing if applied else None)
    if req.proposer is not None:
        return _method_estimate(inp, req, fit_warnings, applied)
    if any(x is not None for x in (inp.num_steps, inp.topk, inp.num_draft_tokens, inp.tree)):
        raise SpecplanError("--num-steps / --topk / --num-draft-tokens / --tree set a head's token tree; a draft model "
                            "drafts a chain: give --k (or --method eagle / eagle3 / mtp with a tree)")
    if dp is None or req.draft is None:
        prices = price_rounds(tp, tp, dev, dev, req.batch, ctx, 1, 0.0)
        report = fit_report(req, fit_warnings)
        block = _calibration_block(applied, req, ctx, prices, price_rounds(tp, tp, dev0, dev0, req.batch, ctx, 1, 0.0), None, None, 1)
        return Estimate(report, prices, None, None, 1.0, 1.0, None, fit_warnings, "no draft: target alone", block)
    rate = measured_rate(inp.acceptance_rate, inp.drafted_per_round, inp.drafted, inp.accepted, inp.rounds,
                         inp.mean_accepted_length)
    user = inp.alpha is not None or rate is not None
    loop = plan_loop(req.engine.name, inp.server_version, inp.p_min, None if user else applied)
    prior = choose_alpha(None, None, None, req.target, req.draft, req.draft_precision or req.precision, inp.task)
    choice = (choose_alpha(inp.alpha, rate, inp.fit.k if inp.k_given else None, req.target, req.draft,
                           req.draft_precision or req.precision, inp.task, loop) if user else None) or calibrated_alpha(
        applied, measured_at, req.draft_precision or req.precision) or prior
    loop = replace(with_pair_costs(loop, req.target, req.draft, inp.fit.k if inp.k_given else UAG_K),
                   kappa=choice.kappa or loop.kappa)  # kappa fitted with a measured alpha, if any
    band = np.array([choice.low, choice.mid, choice.high])[:, None]
    # The best k is searched over K_SEARCH; a k the user gives may lie beyond it (up to K_MAX),
    # so the band is priced on a grid that reaches it and indexed by k - 1 below.
    grid = K_SEARCH if not inp.k_given or inp.fit.k <= K_SEARCH[-1] else np.arange(1, inp.fit.k + 1)
    by_k = mean_length_by_k(choice, grid)
    vr, curve = measured_verify(applied, req.batch, float(ctx))  # the measured verify curve, when it applies
    prices_band = price_rounds(tp, dp, dev, ddev, req.batch, ctx, grid[None, :], band, loop=loop, verify_ratio=vr)
    if by_k is not None:  # measured per-position acceptance sets the mid line
        mid = price_rounds(tp, dp, dev, ddev, req.batch, ctx, grid, choice.mid, by_k, loop=loop, verify_ratio=vr).speedup
        prices_band = replace(prices_band, speedup=np.vstack([prices_band.speedup[0], mid, prices_band.speedup[2]]))
    best = int(K_SEARCH[np.argmax(prices_band.speedup[1][: len(K_SEARCH)])])
    k = inp.fit.k if inp.k_given else best
    req = replace(req, k=k)
    report = fit_report(req, fit_warnings)
    prices = price_rounds(tp, dp, dev, ddev, req.batch, ctx, k, choice.mid, None if by_k is None else by_k[k - 1], loop=loop,
                          verify_ratio=vr)
    low, high = (float(prices_band.speedup[i, k - 1]) for i in (0, 2))
    warnings = fit_warnings + tuple(_pair_warnings(req.draft, choice, k, best, cross_tokenizer(req.target, req.draft)))
    warnings += tuple(_unknown_round_length(rate, loop, k, prices))
    warnings += tuple(verify_extrapolation_warning(applied.path, curve, k) if applied is not None else ())
    text = pass_verdict(report.fits, float(prices.speedup), float(prices.c), float(prices.r), choice.mid, req.batch, k,
                        best, float(prices_band.speedup[1, best - 1]), bound(prices.verify_compute_bound))
    before = price_rounds(tp, dp, dev0, ddev0, req.batch, ctx, k, prior.mid, loop=loop)
    block = _calibration_block(applied, req, ctx, prices, before, choice, prior, k)
    return Estimate(report, prices, k, choice, low, high, best, warnings, text, block, loop,
                    (dev, ddev) if applied is not None else None, vr, "draft", {"method": "draft", "head": req.draft.id,
                                                                               "k": k})


def _method_estimate(inp: EstimateInputs, req: FitRequest, fit_warnings: tuple[str, ...],
                     applied: AppliedCalibration | None) -> Estimate:
    """estimate_one for a head, MTP modules or a lookup (planner.plan.method_estimate)."""
    rate = measured_rate(inp.acceptance_rate, inp.drafted_per_round, inp.drafted, inp.accepted, inp.rounds,
                         inp.mean_accepted_length)
    shape = given_tree(inp.num_steps, inp.topk, inp.num_draft_tokens, req.k if inp.k_given else None, inp.tree)
    m = estimate_method(req, fit_warnings, task=inp.task, k_given=inp.k_given, alpha=inp.alpha, rate=rate,
                        server_version=inp.server_version, applied=applied, tree=shape)
    return Estimate(m.report, m.prices, m.k, m.alpha, m.speedup_low, m.speedup_high, m.best_k, m.warnings, m.verdict,
                    None, m.loop, method=m.settings["method"], settings=m.settings)


# A real pair at --draft 16 drafted far fewer tokens per round than its acceptance suggests:
# llama.cpp PR #3006 (CodeLlama 34B + 7B Q4_K_M, greedy, --draft 16): 254 drafted over 266 - 223 = 43
# rounds (5.9 per round) at 87.8% accepted. The confidence model (kappa from one tiny pair) reads
# such a rate as much longer rounds, so without a drafted count the round length is a guess.
_LONG_N_MAX = 8


def _unknown_round_length(rate: MeasuredRate | None, loop: LoopSpec, k: int, prices: RoundPrices) -> list[str]:
    """A caution when an accepted/drafted rate of a threshold loop comes without drafted tokens per round."""
    if rate is None or rate.rate is None or rate.drafted_per_round is not None or not loop.variable_length:
        return []
    if k < _LONG_N_MAX:
        return []
    drafted = float(np.asarray(prices.drafted_per_round))
    return [f"accepted/drafted {rate.rate:g} at n-max {k} without a drafted count: the loop model assumes "
            f"{drafted:.1f} drafted tokens per round, a guess; real pairs at --draft 16 have drafted 6-7 "
            "(llama.cpp PR #3006: 254 drafted in 43 rounds at 87.8%); give --drafted-per-round or "
            "--drafted/--rounds for a figure you can rely on"]


def _figure(catalogue: float, calibrated: float, measured: float | None, source: str) -> dict[str, Any]:
    return {"catalogue": round(catalogue, 5), "calibrated": round(calibrated, 5),
            "measured": None if measured is None else round(measured, 5), "source": source}


def _calibration_block(applied: AppliedCalibration | None, req: FitRequest, ctx: Any, after: RoundPrices,
                       before: RoundPrices, choice: AlphaChoice | None, prior: AlphaChoice | None, k: int) -> dict[str, Any] | None:
    """Predicted-before vs re-planned vs measured, for every figure a calibration touches."""
    if applied is None:
        return None
    ms = 1000.0
    def meas(role: str, n: int) -> float | None:
        t = measured_time_s(applied, role, req.batch, float(ctx), n)
        return None if t is None else t * ms
    timing_src = "fitted" if applied.target_timing else "catalogue"
    figures = {
        "t_target_ms": _figure(float(before.t_target_s) * ms, float(after.t_target_s) * ms, meas("target", 1), timing_src),
    }
    if choice is not None and prior is not None:
        figures["t_draft_ms"] = _figure(float(before.t_draft_s) * ms, float(after.t_draft_s) * ms, meas("draft", 1),
                                        "fitted" if applied.draft_timing else "catalogue")
        figures["t_verify_ms"] = _figure(float(before.t_verify_s) * ms, float(after.t_verify_s) * ms,
                                         meas("target", k + 1), "fitted r(n)" if applied.verify_curves else timing_src)
        figures["alpha"] = {"prior": round(prior.mid, 4), "used": round(choice.mid, 4), "source": choice.source}
        figures["speedup"] = {"catalogue": round(float(before.speedup), 4), "calibrated": round(float(after.speedup), 4)}
    return {"file": applied.path, "acceptance_applied": applied.acceptance is not None,
            "timing_applied": applied.target_timing is not None, "figures": figures, "warnings": list(applied.warnings)}


def _pair_warnings(draft: ModelSpec, alpha: AlphaChoice, k: int, best: int, cross: bool = False) -> list[str]:
    out = draft_rule_warnings(draft, alpha.mid, cross)
    if k > best and alpha.mid**k < _FAR_K_TAIL:
        out.append(f"k={k} is far above what alpha {alpha.mid:.2f} supports: position {k} is accepted "
                   f"{alpha.mid**k:.0%} of the time (best k here is {best})")
    return out



"""estimate (one configuration) and recommend (ranked search) on top of fit, cost model and priors."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from planner import speedup as sp
from planner.acceptance import (AlphaChoice, calibrated_alpha, choose_alpha, mean_length_by_k, measured_precision,
                                measured_rate, plan_loop)
from planner.calibration.apply import AppliedCalibration, apply_calibration, calibrated_device, measured_time_s
from planner.calibration.schema import CalibrationFile, read_calibration
from planner.catalog.loading import model_catalog
from planner.catalog.precisions import WeightFormat, weight_format
from planner.catalog.schemas import ModelSpec
from planner.costmodel import device_profile, model_profile, stack_profiles
from planner.draftloop import LoopSpec, engine_loop
from planner.drafts import draft_candidates
from planner.errors import SpecplanError
from planner.footprint import parameter_counts
from planner.memory import FitReport, FitRequest, draft_tp_degree, fit_report, valid_group_sizes
from planner.priors import TASKS
from planner.requests import FitInputs, build_fit_request
from planner.search import RoundPrices, decode_context, price_rounds
from planner.units import BILLION, GIB
from planner.verdicts import MIN_WORTHWHILE_SPEEDUP, Ranked, pass_verdict, recommendation_verdict

__all__ = [
    "AlphaChoice", "EstimateInputs", "Estimate", "estimate", "RecommendInputs", "Candidate", "Recommendation", "recommend",
    "K_SEARCH", "MIN_WORTHWHILE_SPEEDUP", "choose_alpha", "candidate_to_dict",
]

K_SEARCH = np.arange(1, 17)  # k from 1 to 16
_SMALL_DRAFT_PARAMS = 0.5 * BILLION
_WRONG_DRAFT_ALPHA = 0.65
_FAR_K_TAIL = 0.1  # the last drafted position is accepted less often than this
Objective = Literal["latency", "throughput", "cost"]


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


def _load_applied(path: str | None, req: FitRequest) -> tuple[AppliedCalibration | None, str | None]:
    """What of the file applies, and the draft precision it was measured with."""
    if path is None:
        return None, None
    cal = read_calibration(path)
    return apply_calibration(cal, path, req.gpu, req.target, req.draft, req.engine.name), measured_precision(cal)


def _profiles(req: FitRequest, draft: ModelSpec | None, draft_fmt: WeightFormat | None, gpus: int):  # type: ignore[no-untyped-def]
    """Target/draft profiles and devices for a g-GPU group under the request's engine."""
    tensor = req.engine.parallelism == "tensor"
    dtp = draft_tp_degree(replace(req, gpus=gpus))
    tp = model_profile(req.target, req.precision, req.kv, gpus if tensor else 1)
    device = device_profile(req.gpu, req.engine, gpus)
    if draft is None:
        return tp, None, device, device
    dp = model_profile(draft, draft_fmt or req.precision, req.kv, dtp if tensor else 1)
    return tp, dp, device, device_profile(req.gpu, req.engine, dtp if tensor else gpus, role="draft")


def _bound(compute_bound: Any) -> str:
    """What sets a pass's pace, in words."""
    return "compute" if bool(np.asarray(compute_bound)) else "memory"


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise SpecplanError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")


def estimate(inp: EstimateInputs) -> Estimate:
    """Price the target alone, or target + draft at k (best k when none is given)."""
    _check_task(inp.task)
    if inp.k_given:
        sp.check_k(inp.fit.k)
    req, fit_warnings = build_fit_request(inp.fit)
    applied, measured_at = _load_applied(inp.calibration, req)
    if applied is not None:
        fit_warnings += applied.warnings
    ctx = decode_context(req.context)
    tp, dp, dev0, ddev0 = _profiles(req, req.draft, req.draft_precision, req.gpus)
    dev = calibrated_device(dev0, applied.target_timing if applied else None)
    ddev = calibrated_device(ddev0, applied.draft_timing if applied else None)
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
    loop = replace(loop, kappa=choice.kappa or loop.kappa)  # kappa fitted with a measured alpha, if any
    band = np.array([choice.low, choice.mid, choice.high])[:, None]
    # The best k is searched over K_SEARCH; a k the user gives may lie beyond it (up to K_MAX),
    # so the band is priced on a grid that reaches it and indexed by k - 1 below.
    grid = K_SEARCH if not inp.k_given or inp.fit.k <= K_SEARCH[-1] else np.arange(1, inp.fit.k + 1)
    by_k = mean_length_by_k(choice, grid)
    prices_band = price_rounds(tp, dp, dev, ddev, req.batch, ctx, grid[None, :], band, loop=loop)
    if by_k is not None:  # measured per-position acceptance sets the mid line
        mid = price_rounds(tp, dp, dev, ddev, req.batch, ctx, grid, choice.mid, by_k, loop=loop).speedup
        prices_band = replace(prices_band, speedup=np.vstack([prices_band.speedup[0], mid, prices_band.speedup[2]]))
    best = int(K_SEARCH[np.argmax(prices_band.speedup[1][: len(K_SEARCH)])])
    k = inp.fit.k if inp.k_given else best
    req = replace(req, k=k)
    report = fit_report(req, fit_warnings)
    prices = price_rounds(tp, dp, dev, ddev, req.batch, ctx, k, choice.mid, None if by_k is None else by_k[k - 1], loop=loop)
    low, high = (float(prices_band.speedup[i, k - 1]) for i in (0, 2))
    warnings = fit_warnings + tuple(_pair_warnings(req.draft, choice, k, best))
    text = pass_verdict(report.fits, float(prices.speedup), float(prices.c), float(prices.r), choice.mid, req.batch, k,
                        best, float(prices_band.speedup[1, best - 1]), _bound(prices.verify_compute_bound))
    before = price_rounds(tp, dp, dev0, ddev0, req.batch, ctx, k, prior.mid, loop=loop)
    block = _calibration_block(applied, req, ctx, prices, before, choice, prior, k)
    return Estimate(report, prices, k, choice, low, high, best, warnings, text, block, loop)


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
                                         meas("target", k + 1), timing_src)
        figures["alpha"] = {"prior": round(prior.mid, 4), "used": round(choice.mid, 4), "source": choice.source}
        figures["speedup"] = {"catalogue": round(float(before.speedup), 4), "calibrated": round(float(after.speedup), 4)}
    return {"file": applied.path, "acceptance_applied": applied.acceptance is not None,
            "timing_applied": applied.target_timing is not None, "figures": figures, "warnings": list(applied.warnings)}


def _draft_rule_warnings(draft: ModelSpec, alpha: float) -> list[str]:
    """The seeds' field rules for a draft: tiny drafts, and alpha too low to be the right draft."""
    out = []
    if parameter_counts(draft).total < _SMALL_DRAFT_PARAMS:
        out.append(f"draft {draft.id} has under 0.5B parameters: fixed per-step overheads, not its size, set its cost c")
    if alpha < _WRONG_DRAFT_ALPHA:
        out.append(f"per-token alpha {alpha:.2f} for {draft.id} is below {_WRONG_DRAFT_ALPHA}: "
                   "probably the wrong draft for this target")
    return out


def _pair_warnings(draft: ModelSpec, alpha: AlphaChoice, k: int, best: int) -> list[str]:
    out = _draft_rule_warnings(draft, alpha.mid)
    if k > best and alpha.mid**k < _FAR_K_TAIL:
        out.append(f"k={k} is far above what alpha {alpha.mid:.2f} supports: position {k} is accepted "
                   f"{alpha.mid**k:.0%} of the time (best k here is {best})")
    return out


# --- recommend -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecommendInputs:
    """recommend's flags."""

    fit: FitInputs
    task: str = "chat"
    objective: Objective = "latency"
    top: int = 10
    gpu_hour_usd: float | None = None
    alpha: float | None = None  # applies to every draft; each draft's prior otherwise
    calibration: str | None = None  # path of a calibration file


@dataclass(frozen=True)
class Candidate:
    """One ranked configuration (draft None = no speculation)."""

    draft: str | None
    draft_precision: str | None
    k: int | None
    gpus: int
    speedup: float
    speedup_low: float
    speedup_high: float
    c: float | None
    alpha: float | None
    alpha_source: str | None
    fits: bool
    headroom_gib: float
    memory: dict[str, float]  # per-GPU GiB by component (fit report), incl. total and capacity
    tokens_per_s: float  # per sequence
    throughput_tokens_per_s: float  # all sequences
    tokens_per_usd: float | None
    verdict: str
    r: float | None = None  # verification cost at k, in target decode steps
    verify_bound: str | None = None  # "compute" or "memory": what sets the verify pass's pace


def find_model_spec(model_id: str) -> ModelSpec:
    """A catalogue model by id."""
    return model_catalog().index[model_id.lower()]


def _groups(req: FitRequest, max_gpus: int) -> list[int]:
    sizes = [g for g in valid_group_sizes(req.target, req.engine, req.gpu) if g <= max_gpus]
    return sizes if req.engine.parallelism == "tensor" else [max(sizes)]


@dataclass(frozen=True)
class Recommendation:
    """Ranked candidates for one question (the resolved request says what was asked)."""

    request: FitRequest
    candidates: list[Candidate]
    warnings: tuple[str, ...]
    verdict: str = ""  # the answer, read first: what to run, or why nothing / no speculation


def recommend(inp: RecommendInputs) -> Recommendation:
    """Rank drafts x draft precisions x k x GPU counts (plus no speculation) for one target."""
    _check_task(inp.task)
    if inp.objective == "cost" and not inp.gpu_hour_usd:
        raise SpecplanError("--objective cost needs --gpu-hour-usd (price of one GPU per hour)")
    base, warnings = build_fit_request(replace(inp.fit, draft=None, gpus=1, draft_precision=None))
    groups = _groups(replace(base, gpus=inp.fit.gpus), inp.fit.gpus)
    choice = draft_candidates(base.target)
    drafts = choice.drafts
    combos = [(d, weight_format(f), g) for g in groups for d in drafts for f in base.engine.draft_precisions]
    cal = read_calibration(inp.calibration) if inp.calibration else None
    if cal is not None:
        warnings += apply_calibration(cal, inp.calibration or "", base.gpu, base.target, None, base.engine.name).warnings
    rows = [_no_speculation(base, g, inp, cal) for g in groups]
    if combos:
        rows += _speculative_rows(base, combos, inp, cal)
    # Fitting rows first; among rows that cannot run, the baseline first: a speedup of a configuration
    # that does not fit is never shown as the top answer.
    rows.sort(key=lambda c: (not c.fits, not c.fits and c.draft is not None, -_score(c, inp.objective)))
    shown = rows[: max(inp.top, 1)]
    for g in dict.fromkeys(c.gpus for c in shown):
        # Each speedup is against no speculation on the same GPU count: that baseline row is always shown.
        if not any(c.draft is None and c.gpus == g for c in shown):
            shown.append(next(c for c in rows if c.draft is None and c.gpus == g))
    warnings += tuple(_candidate_warnings(shown))
    warnings += tuple(dict.fromkeys(choice.notes[c.draft] for c in shown if c.draft in choice.notes))
    alone = fit_report(replace(base, gpus=max(groups)))
    fixes = ", ".join(f"{x.flag}" for x in alone.suggestions[:3]) or "a larger GPU"
    nothing_fits = (f"nothing fits on {max(groups)} x {base.gpu.id}: the target alone needs "
                    f"{alone.breakdown.total / GIB:.1f} GiB per GPU of {alone.capacity_gib:.1f}; try {fixes}; "
                    "the speedups below are of configurations that cannot run")
    if not drafts:
        warnings += (f"no catalogue draft shares {base.target.id}'s tokenizer ({base.target.tokenizer}) and is smaller",)
    ranked = [Ranked(c.draft, c.draft_precision, c.k, c.gpus, c.speedup, c.fits, c.c, c.r, c.alpha, c.verify_bound)
              for c in rows]
    text = recommendation_verdict(ranked, base.gpu.id, base.batch, nothing_fits)
    return Recommendation(replace(base, gpus=inp.fit.gpus), shown, warnings, text)


def _candidate_warnings(rows: list[Candidate]) -> list[str]:
    """The field rules (tiny drafts, low alpha) for the drafts shown, once per draft."""
    out: dict[str, str] = {}
    for c in rows:
        if c.draft is None or c.draft in out or c.alpha is None:
            continue
        rules = _draft_rule_warnings(find_model_spec(c.draft), c.alpha)
        if rules:
            out[c.draft] = rules[0]
    return list(out.values())


def _score(c: Candidate, objective: Objective) -> float:
    if objective == "throughput":
        return c.throughput_tokens_per_s
    if objective == "cost":
        return c.tokens_per_usd or 0.0
    return c.tokens_per_s


def _memory(report: FitReport) -> dict[str, float]:
    return {**report.breakdown.as_gib(), "capacity": round(report.capacity_gib, 3)}


def _per_usd(throughput: float, gpus: int, inp: RecommendInputs) -> float | None:
    return throughput * 3600 / (gpus * inp.gpu_hour_usd) if inp.gpu_hour_usd else None


def _no_speculation(base: FitRequest, g: int, inp: RecommendInputs, cal: CalibrationFile | None) -> Candidate:
    req = replace(base, gpus=g)
    report = fit_report(req)
    tp, _, dev, _ = _profiles(req, None, None, g)
    if cal is not None:
        dev = calibrated_device(dev, apply_calibration(cal, inp.calibration or "", req.gpu, req.target, None,
                                                       req.engine.name).target_timing)
    p = price_rounds(tp, tp, dev, dev, req.batch, decode_context(req.context), 1, 0.0)
    tps = float(p.target_tokens_per_s)
    return Candidate(None, None, None, g, 1.0, 1.0, 1.0, None, None, None, report.fits, report.headroom_gib,
                     _memory(report), tps, tps * req.batch, _per_usd(tps * req.batch, g, inp),
                     "no speculative decoding" if report.fits else "does not fit")


def _speculative_rows(base: FitRequest, combos: list[tuple[ModelSpec, WeightFormat, int]], inp: RecommendInputs,
                      cal: CalibrationFile | None) -> list[Candidate]:
    reports, targets, drafts, devs, ddevs, bands, sources = [], [], [], [], [], [], []
    for draft, fmt, g in combos:
        req = replace(base, gpus=g, draft=draft, draft_precision=fmt)
        reports.append(fit_report(req))
        tp, dp, dev, ddev = _profiles(req, draft, fmt, g)
        applied = apply_calibration(cal, inp.calibration or "", req.gpu, req.target, draft, req.engine.name) if cal else None
        if applied is not None:
            dev, ddev = calibrated_device(dev, applied.target_timing), calibrated_device(ddev, applied.draft_timing)
        for bucket, profile in zip((targets, drafts, devs, ddevs), (tp, dp, dev, ddev)):
            bucket.append(profile)
        measured = None if inp.alpha is not None else calibrated_alpha(applied, measured_precision(cal), fmt)
        choice = measured or choose_alpha(inp.alpha, None, None, base.target, draft, fmt, inp.task)
        bands.append((choice.low, choice.mid, choice.high))
        sources.append(choice.source)
    n = len(combos)
    shape = (n, 1, 1)  # candidates x alpha band x k
    tp_s, dp_s = stack_profiles(targets, shape), stack_profiles(drafts, shape)
    dev_s, ddev_s = stack_profiles(devs, shape), stack_profiles(ddevs, shape)
    alpha = np.asarray(bands).reshape(n, 3, 1)
    p = price_rounds(tp_s, dp_s, dev_s, ddev_s, base.batch, decode_context(base.context), K_SEARCH[None, None, :], alpha,
                     loop=engine_loop(base.engine.name))
    best = np.argmax(p.speedup[:, 1, :], axis=1)
    out = []
    for i, (draft, fmt, g) in enumerate(combos):
        j = int(best[i])
        s = float(p.speedup[i, 1, j])
        tps = s / float(p.t_target_s[i, 0, 0])
        report = reports[i]
        out.append(Candidate(
            draft.id, fmt.name, int(K_SEARCH[j]), g, s, float(p.speedup[i, 0, j]), float(p.speedup[i, 2, j]),
            float(p.c[i, 0, 0]), float(alpha[i, 1, 0]), sources[i], report.fits, report.headroom_gib, _memory(report), tps,
            tps * base.batch, _per_usd(tps * base.batch, g, inp),
            pass_verdict(report.fits, s, float(p.c[i, 0, 0]), float(p.r[i, 0, j]), float(alpha[i, 1, 0]), base.batch,
                         verify_bound=_bound(p.verify_compute_bound[i, 0, j])),
            float(p.r[i, 0, j]), _bound(p.verify_compute_bound[i, 0, j]),
        ))
    return out


def candidate_to_dict(c: Candidate) -> dict[str, Any]:
    """JSON-ready candidate."""
    return {
        "draft": c.draft, "draft_precision": c.draft_precision, "k": c.k, "gpus": c.gpus,
        "speedup": round(c.speedup, 4), "speedup_low": round(c.speedup_low, 4), "speedup_high": round(c.speedup_high, 4),
        "c": None if c.c is None else round(c.c, 5), "r": None if c.r is None else round(c.r, 5), "alpha": None if c.alpha is None else round(c.alpha, 4),
        "alpha_source": c.alpha_source, "fits": c.fits, "headroom_gib": round(c.headroom_gib, 3),
        "per_gpu_gib": c.memory,
        "tokens_per_s": round(c.tokens_per_s, 3), "throughput_tokens_per_s": round(c.throughput_tokens_per_s, 3),
        "tokens_per_usd": None if c.tokens_per_usd is None else round(c.tokens_per_usd, 1), "verdict": c.verdict,
    }

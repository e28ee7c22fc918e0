"""recommend: drafts x draft precisions x k x GPU counts (plus no speculation), ranked, with one verdict."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from planner.acceptance import AlphaChoice, calibrated_alpha, choose_alpha, measured_precision, with_pair_costs
from planner.calibration.apply import apply_calibration, calibrated_device, measured_verify, per_candidate_verify
from planner.calibration.schema import CalibrationFile, read_calibration
from planner.catalog.loading import model_catalog
from planner.catalog.precisions import WeightFormat, weight_format
from planner.catalog.schemas import ModelSpec
from planner.costmodel import stack_profiles
from planner.catalog.tokenizers import cross_tokenizer
from planner.draftloop import engine_loop
from planner.engines import EngineSpec
from planner.drafts import draft_candidates, no_draft_message
from planner.errors import SpecplanError
from planner.memory import FitReport, FitRequest, fit_report, valid_group_sizes
from planner.requests import FitInputs, build_fit_request
from planner.search import decode_context, price_rounds
from planner.units import GIB
from planner.plan.common import K_SEARCH, UAG_K, bound, check_task, draft_rule_warnings, profiles
from planner.plan.method_rows import MethodRow, method_rows, methods_to_rank, refuse_unknown
from planner.catalog.lookup import find_model
from planner.verdicts import Ranked, pass_verdict, recommendation_verdict

__all__ = ["RecommendInputs", "Candidate", "Recommendation", "recommend", "candidate_to_dict", "find_model_spec"]

Objective = Literal["latency", "throughput", "cost"]



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
    server_version: str | None = None  # release whose draft loop and kernel line are priced (None: the newest)
    method: str | None = None  # all, or one method; None: all when the target has heads / MTP, else draft models


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
    method: str | None = None  # draft, eagle, eagle3, mtp, ngram, suffix; None: no speculation
    head: str | None = None  # the head / MTP release a proposer row runs (None for drafts and lookups)
    settings: dict[str, Any] | None = None  # what an export writes: method, head, k (or the tree shape)


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
    loads: dict[str, Any] | None = None  # predicted vs measured per load of a probe --server calibration


def _draft_formats(draft: ModelSpec, engine: EngineSpec) -> tuple[str, ...]:
    """The draft formats tried for ``draft``: its own checkpoint's format first (gpt-oss-20b ships
    MXFP4 experts, no bf16 release), then the engine's common ones."""
    own = (draft.weight_format,) if draft.weight_format in engine.weight_formats else ()
    return tuple(dict.fromkeys((*own, *engine.draft_precisions)))


def recommend(inp: RecommendInputs) -> Recommendation:
    """Rank drafts x draft precisions x k x GPU counts (plus no speculation) for one target."""
    check_task(inp.task)
    refuse_unknown(inp.method)
    if inp.objective == "cost" and not inp.gpu_hour_usd:
        raise SpecplanError("--objective cost needs --gpu-hour-usd (price of one GPU per hour)")
    base, warnings = build_fit_request(replace(inp.fit, draft=None, gpus=1, draft_precision=None))
    groups = _groups(replace(base, gpus=inp.fit.gpus), inp.fit.gpus)
    resolved = find_model(inp.fit.target)
    methods = methods_to_rank(inp.method, resolved, base.engine.methods)
    if inp.method not in (None, "all") and methods[0] not in base.engine.methods:
        raise SpecplanError(f"{base.engine.label} does not serve --method {methods[0]}; it serves "
                            f"{', '.join(base.engine.methods)}")
    choice = draft_candidates(base.target)
    if not choice.drafts and base.engine.name == "hf":
        # transformers runs a draft with another tokenizer (universal assisted generation): the
        # fallback when the target's family has no smaller release.
        choice = draft_candidates(base.target, include_cross_tokenizer=True)
    drafts = choice.drafts if "draft" in methods else []
    combos = [(d, weight_format(f), g) for g in groups for d in drafts for f in _draft_formats(d, base.engine)]
    cal = read_calibration(inp.calibration) if inp.calibration else None
    if cal is not None:
        warnings += apply_calibration(cal, inp.calibration or "", base.gpu, base.target, None, base.engine.name).warnings
    rows = [_no_speculation(base, g, inp, cal) for g in groups]
    if combos:
        rows += _speculative_rows(base, combos, inp, cal)
    timing = apply_calibration(cal, inp.calibration or "", base.gpu, base.target, None, base.engine.name).target_timing \
        if cal is not None else None

    def measured_for(method: str, head: str | None) -> AlphaChoice | None:
        """The file's acceptance when it was measured with this method and head (estimate's rule)."""
        if cal is None:
            return None
        applied = apply_calibration(cal, inp.calibration or "", base.gpu, base.target, None, base.engine.name,
                                    method=method, head=head)
        return calibrated_alpha(applied, None, weight_format("bf16"))

    rows += [_method_candidate(m, base.batch, inp) for m in method_rows(
        base, resolved, methods, groups, task=inp.task, alpha=inp.alpha, server_version=inp.server_version,
        timing=timing, measured_for=measured_for)]
    # Fitting rows first; among rows that cannot run, the baseline first: a speedup of a configuration
    # that does not fit is never shown as the top answer.
    rows.sort(key=lambda c: (not c.fits, not c.fits and c.method is not None, -_score(c, inp.objective)))
    shown = rows[: max(inp.top, 1)]
    for g in dict.fromkeys(c.gpus for c in shown):
        # Each speedup is against no speculation on the same GPU count: that baseline row is always shown.
        if not any(c.method is None and c.gpus == g for c in shown):
            shown.append(next(c for c in rows if c.method is None and c.gpus == g))
    warnings += tuple(_candidate_warnings(shown, base.target))
    warnings += tuple(dict.fromkeys(choice.notes[c.draft] for c in shown if c.draft in choice.notes))
    alone = fit_report(replace(base, gpus=max(groups)))
    fixes = ", ".join(f"{x.flag}" for x in alone.suggestions[:3]) or "a larger GPU"
    nothing_fits = (f"nothing fits on {max(groups)} x {base.gpu.id}: the target alone needs "
                    f"{alone.breakdown.total / GIB:.1f} GiB per GPU of {alone.capacity_gib:.1f}; try {fixes}; "
                    "the speedups below are of configurations that cannot run")
    if not drafts and "draft" in methods and len(methods) == 1:
        warnings += (no_draft_message(base.target, base.engine.name),)
    ranked = [Ranked(_proposer_name(c), c.draft_precision, c.k, c.gpus, c.speedup, c.fits, c.c, c.r, c.alpha,
                     c.verify_bound) for c in rows]
    text = recommendation_verdict(ranked, base.gpu.id, base.batch, nothing_fits)
    loads = _measured_loads(cal, inp, base.engine.name)
    if loads is not None:
        warnings += tuple(loads["warnings"])
    return Recommendation(replace(base, gpus=inp.fit.gpus), shown, warnings, text, loads)


def _measured_loads(cal: CalibrationFile | None, inp: RecommendInputs, engine: str) -> dict[str, Any] | None:
    """Predicted vs measured at each load of a probe --server file, for the pair it measured."""
    if cal is None or not cal.loads:
        return None
    from planner.plan.estimate import EstimateInputs, estimate_one
    from planner.plan.measured_loads import compare_loads

    def price(fit: FitInputs) -> Any:
        return estimate_one(EstimateInputs(fit, k_given=True, task=inp.task, calibration=inp.calibration,
                                           server_version=inp.server_version), cal)

    return compare_loads(cal, inp.calibration or "", inp.fit, engine, price)


def _candidate_warnings(rows: list[Candidate], target: ModelSpec) -> list[str]:
    """The field rules (tiny drafts, low alpha) for the drafts shown, once per draft."""
    out: dict[str, str] = {}
    for c in rows:
        if c.draft is None or c.draft in out or c.alpha is None:
            continue
        draft = find_model_spec(c.draft)
        rules = draft_rule_warnings(draft, c.alpha, cross_tokenizer(target, draft))
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
    tp, _, dev, _ = profiles(req, None, None, g, inp.server_version)
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
    reports, targets, drafts, devs, ddevs, bands, sources, curves = [], [], [], [], [], [], [], []
    for draft, fmt, g in combos:
        req = replace(base, gpus=g, draft=draft, draft_precision=fmt)
        reports.append(fit_report(req))
        tp, dp, dev, ddev = profiles(req, draft, fmt, g, inp.server_version)
        applied = apply_calibration(cal, inp.calibration or "", req.gpu, req.target, draft, req.engine.name) if cal else None
        if applied is not None:
            dev, ddev = calibrated_device(dev, applied.target_timing), calibrated_device(ddev, applied.draft_timing)
        curves.append(measured_verify(applied, base.batch, float(decode_context(base.context)))[1])
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
    loop = engine_loop(base.engine.name, inp.server_version)
    fixed = [with_pair_costs(loop, base.target, draft, UAG_K).fixed_round_us for draft, _, _ in combos]
    loop = replace(loop, fixed_round_us=np.reshape(fixed, shape))  # type: ignore[arg-type]  # per candidate
    p = price_rounds(tp_s, dp_s, dev_s, ddev_s, base.batch, decode_context(base.context), K_SEARCH[None, None, :], alpha,
                     loop=loop, verify_ratio=per_candidate_verify(curves))
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
                         verify_bound=bound(p.verify_compute_bound[i, 0, j])),
            float(p.r[i, 0, j]), bound(p.verify_compute_bound[i, 0, j]), "draft", None,
            {"method": "draft", "head": draft.id, "k": int(K_SEARCH[j])},
        ))
    return out


def _proposer_name(c: Candidate) -> str | None:
    """How the verdict names a row's proposer: the draft, "the EAGLE-3 head X", "n-gram lookup" (None: no speculation)."""
    if c.method is None:
        return None
    if c.method == "draft":
        return c.draft
    word = {"eagle": "EAGLE head", "eagle3": "EAGLE-3 head", "mtp": "MTP layers", "ngram": "n-gram lookup",
            "suffix": "suffix decoding"}[c.method]
    return f"{word} {c.head}" if c.head and c.method != "mtp" else f"{c.method} ({word})"


def _method_candidate(m: MethodRow, batch: int, inp: RecommendInputs) -> Candidate:
    tps = m.speedup / m.t_target_s
    return Candidate(None, None, m.k, m.gpus, m.speedup, m.speedup_low, m.speedup_high, m.c, m.alpha, m.alpha_source,
                     m.report.fits, m.report.headroom_gib, _memory(m.report), tps, tps * batch,
                     _per_usd(tps * batch, m.gpus, inp), m.verdict, m.r, m.verify_bound, m.method, m.head, m.settings)


def candidate_to_dict(c: Candidate) -> dict[str, Any]:
    """JSON-ready candidate."""
    return {
        "method": c.method, "head": c.head, "settings": c.settings,
        "draft": c.draft, "draft_precision": c.draft_precision, "k": c.k, "gpus": c.gpus,
        "speedup": round(c.speedup, 4), "speedup_low": round(c.speedup_low, 4), "speedup_high": round(c.speedup_high, 4),
        "c": None if c.c is None else round(c.c, 5), "r": None if c.r is None else round(c.r, 5),
        "alpha": None if c.alpha is None else round(c.alpha, 4),
        "alpha_source": c.alpha_source, "fits": c.fits, "headroom_gib": round(c.headroom_gib, 3),
        "per_gpu_gib": c.memory,
        "tokens_per_s": round(c.tokens_per_s, 3), "throughput_tokens_per_s": round(c.throughput_tokens_per_s, 3),
        "tokens_per_usd": None if c.tokens_per_usd is None else round(c.tokens_per_usd, 1), "verdict": c.verdict,
    }

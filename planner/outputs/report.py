"""The self-contained HTML report: one recommendation, its charts and where every figure came from."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from planner import __version__
from planner.calibration.schema import now_iso
from planner.outputs.plan_view import estimate_to_dict, recommendation_to_dict
from planner.outputs.svg import Segment, Series, heatmap, line_chart, stacked_bars
from planner.plan import K_SEARCH, EstimateInputs, RecommendInputs, estimate, recommend

__all__ = ["build_report_data", "render_report"]

_ALPHA_GRID = np.round(np.arange(0.40, 0.96, 0.05), 2)
_HEAT_K = np.arange(1, 13)


def _chosen(candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((c for c in candidates if c["fits"] and c.get("method") and c["speedup"] >= 1.05), None)


def _curves(est: Any, server_version: str | None) -> dict[str, Any]:
    """Speedup against k for the alpha band, and over an alpha x k grid, with the chosen pair's c and r(k)."""
    from planner.plan.common import profiles
    from planner.search import decode_context, price_rounds

    req = est.fit.request
    ctx = decode_context(req.context)
    band = np.array([est.alpha.low, est.alpha.mid, est.alpha.high])[:, None]
    loop = getattr(est, "loop", None)  # the engine's draft loop the estimate was priced with
    if req.proposer is not None:  # a head, MTP modules or a lookup: the profiles planner.methods priced
        from planner.methods.rounds import method_profiles, price_method_rounds

        def curve(k: Any, alpha: Any) -> Any:
            return price_method_rounds(method_profiles(req, req.gpus, server_version, k), req.batch, ctx, k, alpha,
                                       loop).speedup
        return {"lines": curve(K_SEARCH[None, :], band), "grid": curve(_HEAT_K[None, :], _ALPHA_GRID[:, None])}
    # The same profiles the estimate priced (kernel line of the release included).
    tp, dp, dev, ddev = profiles(req, req.draft, req.draft_precision, req.gpus, server_version)
    if getattr(est, "devices", None) is not None:  # a calibration applied: its fitted devices and verify curve
        dev, ddev = est.devices
    vr = getattr(est, "verify_ratio", None)
    lines = price_rounds(tp, dp, dev, ddev, req.batch, ctx, K_SEARCH[None, :], band, loop=loop, verify_ratio=vr).speedup
    grid = price_rounds(tp, dp, dev, ddev, req.batch, ctx, _HEAT_K[None, :], _ALPHA_GRID[:, None], loop=loop,
                        verify_ratio=vr).speedup
    return {"lines": lines, "grid": grid}


def build_report_data(inp: RecommendInputs) -> dict[str, Any]:
    """Everything the template shows for a recommendation, as plain data plus pre-rendered SVG charts."""
    rec = recommend(inp)
    rec_data = recommendation_to_dict(rec, inp.task, inp.objective)
    chosen = _chosen(rec_data["candidates"])
    data: dict[str, Any] = {"question": rec_data, "generated_at": now_iso(), "version": __version__,
                            "candidates": rec_data["candidates"], "warnings": rec_data["warnings"],
                            "cautions": chosen["cautions"] if chosen else []}
    if chosen is None:
        data["verdict"] = rec.verdict[:1].upper() + rec.verdict[1:]
        data["estimate"] = None
        return data
    fit = replace(inp.fit, draft=chosen["draft"], draft_precision=chosen["draft_precision"], gpus=chosen["gpus"],
                  k=chosen["k"], method=chosen["method"], head=chosen.get("head"))
    est = estimate(EstimateInputs(fit, k_given=True, task=inp.task, calibration=inp.calibration,
                                  server_version=inp.server_version))
    est_data = estimate_to_dict(est)
    curves = _curves(est, inp.server_version)
    data["estimate"] = est_data
    data["verdict"] = (f"Use {_what(chosen)} with k = {chosen['k']} on "
                       f"{chosen['gpus']} x {rec_data['gpu']}: {chosen['speedup']:.2f}x faster "
                       f"(band {chosen['speedup_low']:.2f}-{chosen['speedup_high']:.2f}x), "
                       f"{chosen['tokens_per_s']:.0f} tokens/s per sequence.")
    data["charts"] = _charts(est_data, curves)
    data["sources"] = _sources(est)
    return data


def _what(c: dict[str, Any]) -> str:
    """The chosen row's proposer in words, for the report's verdict."""
    if c["method"] == "draft":
        return f"{c['draft']} ({c['draft_precision']}) as the draft"
    head = f" {c['head']}" if c.get("head") and c["method"] != "mtp" else ""
    return {"eagle": f"the EAGLE head{head}", "eagle3": f"the EAGLE-3 head{head}", "mtp": "the target's own MTP layers",
            "ngram": "n-gram lookup", "suffix": "suffix decoding"}[c["method"]]


def _charts(est: dict[str, Any], curves: dict[str, Any]) -> dict[str, Any]:
    k = est["k"]
    lines = curves["lines"]
    series = [Series(f"alpha {a:.2f} ({name})", list(K_SEARCH), list(lines[i]), css, dashed=name != "mid")
              for i, (name, a, css) in enumerate((("low", est["alpha_low"], "s3"), ("mid", est["alpha"], "s1"),
                                                   ("high", est["alpha_high"], "s2")))]
    speed_vs_k = line_chart(series, "Speedup against k", "k (draft tokens per round)", "speedup (x)",
                            marker=(k, est["speedup"], f"chosen k = {k}: {est['speedup']:.2f}x"), y_floor=1.0)
    grid = curves["grid"]
    row = int(np.argmin(np.abs(_ALPHA_GRID - est["alpha"])))
    heat = heatmap(grid[::-1].tolist(), [f"{a:.2f}" for a in _ALPHA_GRID[::-1]], [str(x) for x in _HEAT_K],
                   "Speedup over alpha and k", "k (draft tokens per round)", "per-token alpha",
                   highlight=(len(_ALPHA_GRID) - 1 - row, k - 1) if k <= _HEAT_K[-1] else None)
    mem = est["fit"]["per_gpu_gib"]
    headroom = max(est["fit"]["headroom_gib"], 0.0)
    vram = stacked_bars([("per GPU", [
        Segment("target weights", mem["target_weights"], "m1"),
        Segment("draft weights" if est.get("method") in (None, "draft") else "proposer weights", mem["draft_weights"], "m2"),
        Segment("KV cache", mem["kv_cache"], "m3"), Segment("activations", mem["activations"], "m4"),
        Segment("runtime reserve", mem["runtime_reserve"], "m5"), Segment("headroom", headroom, "m6")])],
        "Memory per GPU", "GiB", limit=est["fit"]["capacity_gib"], limit_label=f"capacity {est['fit']['capacity_gib']:.1f} GiB")
    t_d, t_v, t_t = est["t_draft_ms"], est["t_verify_ms"], est["t_target_ms"]
    tokens = est["mean_accepted_length"]
    rounds = stacked_bars([
        (f"speculative round: {tokens:.2f} tokens expected", [
            Segment(f"{k} draft passes (k*c = {k * est['c']:.2f})", k * t_d, "m2"),
            Segment(f"verify {k + 1} tokens (r = {est['r']:.2f})", t_v, "m1")]),
        (f"plain decoding of the same {tokens:.2f} tokens", [Segment("target decode steps", tokens * t_t, "m5")]),
    ], "Time for the same tokens", "ms")
    return {"speed_vs_k": speed_vs_k, "heatmap": heat, "vram": vram, "round": rounds}


def _sources(est: Any) -> list[dict[str, str]]:
    req = est.fit.request
    def src(value: Any) -> str:
        return "; ".join(value) if isinstance(value, list) else str(value)
    rows = [
        {"figure": f"GPU {req.gpu.name}", "value": f"{req.gpu.memory_bandwidth_gb_s:g} GB/s, {req.gpu.memory_gib:g} GiB",
         "origin": "catalogue", "source": src(req.gpu.source)},
        {"figure": f"target {req.target.id}", "value": f"{req.target.num_layers} layers, {req.precision.name}",
         "origin": "catalogue", "source": src(req.target.source)},
        _proposer_source(req, src),
        {"figure": f"engine {req.engine.label}", "value": f"{req.engine.parallelism} parallel",
         "origin": "engine defaults", "source": req.engine.source},
        {"figure": "alpha", "value": f"{est.alpha.mid:.3f} ({est.alpha.low:.2f}-{est.alpha.high:.2f})",
         "origin": est.alpha.source, "source": est.alpha.detail},
    ]
    return rows


def _proposer_source(req: Any, src: Any) -> dict[str, str]:
    """Where the proposer's figures came from: the draft's or head's catalogue entry, a folder, or none (lookup)."""
    if req.draft is not None:
        return {"figure": f"draft {req.draft.id}", "value": f"{req.draft.num_layers} layers, "
                f"{(req.draft_precision or req.precision).name}", "origin": "catalogue", "source": src(req.draft.source)}
    p = req.proposer
    entry = p.entry
    if p.host_only:
        return {"figure": f"{p.method} lookup", "value": "no model: host time only", "origin": "planner/proposers/methods.yaml",
                "source": "planner/proposers/host.py host_round_us (an estimate: no published per-step time)"}
    what = f"{p.mtp_layers} MTP module(s) of the target" if p.method == "mtp" else f"{p.method} head, {p.layout.num_layers} layer(s)"
    return {"figure": f"{p.method} {p.name}", "value": what, "origin": "head_db" if entry else "config.json",
            "source": src(entry.source) if entry else str(p.name)}


def render_report(data: dict[str, Any]) -> str:
    """The report as one HTML string (jinja2, autoescaped; charts are pre-escaped SVG)."""
    import jinja2

    from planner.paths import data_dir

    folder = data_dir("templates")
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: (folder / name).read_text(encoding="utf-8")),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    return env.get_template("report.html.j2").render(**data)


"""Present estimates and recommendations: JSON-ready dicts and tables."""

from __future__ import annotations

from typing import Any

from planner.outputs.fit_view import fit_to_dict
from planner.outputs.render import console
from planner.plan import Estimate, Recommendation, candidate_to_dict
from planner.calibration.schema import now_iso
from planner.units import MILLI

__all__ = ["estimate_to_dict", "print_estimate", "recommendation_to_dict", "print_recommendation"]


def _ms(seconds: Any) -> float:
    return round(float(seconds) / MILLI, 4)


def _bound(compute_bound: Any) -> str:
    return "compute" if bool(compute_bound) else "memory"


def estimate_to_dict(e: Estimate) -> dict[str, Any]:
    """The estimate as JSON-ready data (times in ms, rates in tokens/s per sequence)."""
    p, req = e.prices, e.fit.request
    has_draft = e.alpha is not None
    return {
        "target": req.target.id, "draft": req.draft.id if req.draft else None,
        "target_catalog_id": req.target.catalog_id, "draft_catalog_id": req.draft.catalog_id if req.draft else None,
        "gpu": req.gpu.id, "gpus": req.gpus,
        "engine": req.engine.name, "precision": req.precision.name,
        "draft_precision": (req.draft_precision or req.precision).name if req.draft else None,
        "kv_precision": req.kv.name, "batch": req.batch, "context": req.context, "created_at": now_iso(),
        "t_target_ms": _ms(p.t_target_s),
        "t_draft_ms": _ms(p.t_draft_s) if has_draft else None,
        "t_verify_ms": _ms(p.t_verify_s) if has_draft else None,
        "target_tokens_per_s": round(float(p.target_tokens_per_s), 3),
        "c": round(float(p.c), 5) if has_draft else None,
        "k_times_c": round(float(p.c) * e.k, 5) if has_draft and e.k else None,
        "r": round(float(p.r), 5) if has_draft else None,
        "k": e.k,
        "alpha": round(e.alpha.mid, 4) if e.alpha else None,
        "alpha_low": round(e.alpha.low, 4) if e.alpha else None,
        "alpha_high": round(e.alpha.high, 4) if e.alpha else None,
        "alpha_source": e.alpha.source if e.alpha else None,
        "alpha_detail": e.alpha.detail if e.alpha else None,
        "mean_accepted_length": round(float(p.mean_accepted_length), 4) if has_draft else None,
        "speedup": round(float(p.speedup), 4) if has_draft else 1.0,
        "speedup_low": round(e.speedup_low, 4),
        "speedup_high": round(e.speedup_high, 4),
        "spec_tokens_per_s": round(float(p.spec_tokens_per_s), 3) if has_draft else None,
        "throughput_tokens_per_s": round(float(p.spec_tokens_per_s) * req.batch, 3),
        "best_k": e.best_k,
        "bound": {"target": _bound(p.target_compute_bound),
                  "draft": _bound(p.draft_compute_bound) if has_draft else None,
                  "verify": _bound(p.verify_compute_bound) if has_draft else None},
        "verdict": e.verdict,
        "warnings": list(e.warnings),
        "calibration": e.calibration,
        "fit": fit_to_dict(e.fit),
    }


def print_estimate(d: dict[str, Any]) -> None:
    """Human-readable estimate."""
    out = console()
    pair = d["target"] + (f" + draft {d['draft']}" if d["draft"] else "")
    out.print(f"[bold]{pair}[/bold] on {d['gpus']} x {d['gpu']}, {d['engine']}, batch {d['batch']}, context {d['context']}")
    out.print(f"target decode {d['t_target_ms']:.2f} ms/token ({d['target_tokens_per_s']:.1f} tokens/s per sequence, "
              f"{d['bound']['target']}-bound)")
    if d["draft"]:
        out.print(f"draft {d['t_draft_ms']:.2f} ms/token: c = {d['c']:.3f} per token, k*c = {d['k_times_c']:.3f} per round; "
                  f"verify {d['k'] + 1} tokens {d['t_verify_ms']:.2f} ms: r = {d['r']:.3f}")
        band = f" (band {d['alpha_low']:.2f}-{d['alpha_high']:.2f})" if d["alpha_source"] == "prior" else ""
        out.print(f"alpha {d['alpha']:.3f} per token from {d['alpha_source']}{band}: {d['alpha_detail']}")
        out.print(f"k = {d['k']} (best k {d['best_k']}): {d['mean_accepted_length']:.2f} tokens per round, "
                  f"[bold]speedup {d['speedup']:.2f}x[/bold] (low {d['speedup_low']:.2f}, high {d['speedup_high']:.2f}), "
                  f"{d['spec_tokens_per_s']:.1f} tokens/s per sequence")
    fit = d["fit"]
    out.print(f"memory: {fit['per_gpu_gib']['total']:.1f} of {fit['capacity_gib']:.1f} GiB per GPU "
              f"({'fits' if fit['fits'] else 'DOES NOT FIT'}, headroom {fit['headroom_gib']:+.1f} GiB)")
    if d.get("calibration"):
        _print_calibration(d["calibration"])
    out.print(f"verdict: {d['verdict']}")
    for w in d["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {w}")


def _print_calibration(cal: dict[str, Any]) -> None:
    """Catalogue prediction, re-planned figure and measurement side by side."""
    from rich.table import Table

    table = Table(title=f"Calibration {cal['file']}", title_justify="left")
    for col in ("figure", "catalogue", "calibrated", "measured", "from"):
        table.add_column(col)
    for name, f in cal["figures"].items():
        if name == "alpha":
            table.add_row("alpha", f"{f['prior']:.3f} (prior)", f"{f['used']:.3f}", "", f["source"])
        elif name == "speedup":
            table.add_row("speedup", f"{f['catalogue']:.2f}", f"{f['calibrated']:.2f}", "", "")
        else:
            measured = "" if f["measured"] is None else f"{f['measured']:.3f}"
            table.add_row(name, f"{f['catalogue']:.3f}", f"{f['calibrated']:.3f}", measured, f["source"])
    console().print(table)


def recommendation_to_dict(rec: Recommendation, task: str, objective: str) -> dict[str, Any]:
    """Ranked candidates as JSON-ready data, with the question they answer."""
    req = rec.request
    return {
        "target": req.target.id, "target_catalog_id": req.target.catalog_id,
        "gpu": req.gpu.id, "gpus": req.gpus, "engine": req.engine.name,
        "precision": req.precision.name, "kv_precision": req.kv.name, "batch": req.batch, "context": req.context,
        "task": task, "created_at": now_iso(),
        "objective": objective, "candidates": [candidate_to_dict(c) for c in rec.candidates],
        "warnings": list(rec.warnings),
    }


def print_recommendation(d: dict[str, Any]) -> None:
    """Ranked candidates for people (compact enough for an 80-column terminal)."""
    from rich import box
    from rich.table import Table

    out = console()
    out.print(f"[bold]{d['target']}[/bold] on up to {d['gpus']} x {d['gpu']} ({d['engine']}, {d['precision']}), "
              f"batch {d['batch']}, context {d['context']}, task {d['task']}; ranked by {d['objective']}")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True, show_edge=False)
    for col, just in (("#", "right"), ("draft", "left"), ("prec", "left"), ("k", "right"), ("gpus", "right"),
                      ("speedup", "right"), ("band", "right"), ("alpha", "right"), ("tok/s", "right"), ("fits", "left")):
        table.add_column(col, justify=just, no_wrap=True, min_width=14 if col == "draft" else None)  # type: ignore[arg-type]
    for i, c in enumerate(d["candidates"], start=1):
        alpha = "" if c["alpha"] is None else f"{c['alpha']:.2f}{'*' if c['alpha_source'] != 'prior' else ''}"
        table.add_row(str(i), (c["draft"] or "(no speculation)").rsplit("/", 1)[-1], c["draft_precision"] or "",
                      str(c["k"] or ""), str(c["gpus"]), f"{c['speedup']:.2f}x",
                      f"{c['speedup_low']:.2f}-{c['speedup_high']:.2f}", alpha, f"{c['tokens_per_s']:.1f}",
                      "yes" if c["fits"] else "[red]no[/red]")
    out.print(table)
    best = d["candidates"][0] if d["candidates"] else None
    if best is not None:
        out.print(f"top row: {best['verdict']}; alpha from the prior band unless marked * (user or calibration); "
                  "tok/s per sequence; c and memory in --format json")
    for w in d["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {w}")

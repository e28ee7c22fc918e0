"""Present a FitReport: a plain dict (JSON/YAML) and a rich table for people."""

from __future__ import annotations

from typing import Any

from planner.memory import FitReport
from planner.outputs.cautions import headroom_caution
from planner.outputs.render import Column, console, print_table, print_warnings

__all__ = ["fit_to_dict", "print_fit_table"]


def fit_to_dict(report: FitReport) -> dict[str, Any]:
    """The fit report as JSON-ready data (GiB rounded to 3 decimals)."""
    req = report.request
    return {
        "fits": report.fits,
        # Names as the user gave them (Hub id as typed, local folder as absolute path); the
        # *_catalog_id fields name the catalogue release the figures came from (None: config.json).
        "target": req.target.id,
        "draft": req.draft.id if req.draft else None,
        "method": req.method,
        "head": req.proposer.name if req.proposer else None,
        "target_catalog_id": req.target.catalog_id,
        "draft_catalog_id": req.draft.catalog_id if req.draft else None,
        "gpu": req.gpu.id,
        "gpus": req.gpus,
        "engine": req.engine.name,
        "parallelism": req.engine.parallelism,
        "draft_tp": report.draft_tp if req.draft else None,
        "precision": req.precision.name,
        "draft_precision": (req.draft_precision or req.precision).name if req.draft else None,
        "kv_precision": req.kv.name,
        "batch": req.batch,
        "context": req.context,
        "k": req.k if req.speculates else None,
        "per_gpu_gib": report.breakdown.as_gib(),
        "capacity_gib": round(report.capacity_gib, 3),
        "headroom_gib": round(report.headroom_gib, 3),
        "max_batch_at_context": report.max_batch_at_context,
        "max_context_at_batch": report.max_context_at_batch,
        "min_gpus_to_fit": report.min_gpus_to_fit,
        "suggestions": [
            {"change": s.kind, "value": s.value, "flag": s.flag, "headroom_gib": round(s.headroom_gib, 3), "note": s.note}
            for s in report.suggestions
        ],
        "warnings": list(report.warnings),
    }


def _proposer_detail(data: dict[str, Any]) -> str:
    """What the draft-weights line holds: the draft, a head or MTP module (split like the target), or nothing."""
    method = data.get("method")
    if data["draft"]:
        return f"{data['draft_precision']}, over {data['draft_tp']} GPU(s)"
    if method in ("eagle", "eagle3"):
        return f"{method} head, split like the target"
    if method == "mtp":
        return "the checkpoint's MTP module(s), split like the target"
    if method in ("ngram", "suffix"):
        return f"{method} lookup: host memory only"
    return "no draft"


def print_fit_table(data: dict[str, Any]) -> None:
    """Human-readable fit report."""
    from rich.markup import escape
    from rich.text import Text

    out = console()
    pair = escape(data["target"]) + (f" + draft {escape(data['draft'])}" if data["draft"] else "")
    method = data.get("method")
    if method not in (None, "draft"):
        pair += escape(f" + {method}" + (f" {data['head']}" if data.get("head") and method != "mtp" else ""))
    group = f"{data['gpus']} x {escape(data['gpu'])}" + (f" ({data['parallelism']} split)" if data["gpus"] > 1 else "")
    out.print(f"[bold]{pair}[/bold] on {group}, {data['engine']}, batch {data['batch']} x {data['context']} tokens")
    gib = data["per_gpu_gib"]
    details = {
        "target_weights": f"{data['precision']}",
        "draft_weights": _proposer_detail(data),
        "kv_cache": f"{data['kv_precision']}, both models" if data["draft"] or method in ("eagle", "eagle3", "mtp")
        else data["kv_precision"],
        "activations": "prefill chunk + logits",
        "runtime_reserve": "engine fraction, CUDA context",
    }
    rows: list[list[str | Text]] = [[key.replace("_", " "), f"{gib[key]:.2f}", detail] for key, detail in details.items()]
    rows.append([Text("total", style="bold"), Text(f"{gib['total']:.2f}", style="bold"), f"of {data['capacity_gib']:.2f} GiB"])
    print_table("Memory per GPU (GiB)", (Column("component"), Column("GiB", "right"), Column("detail", wrap=True)),
                rows, out=out)
    verdict = "[green]FITS[/green]" if data["fits"] else "[red]DOES NOT FIT[/red]"
    out.print(f"{verdict}: headroom {data['headroom_gib']:+.2f} GiB per GPU")
    caution = headroom_caution(data["headroom_gib"], data["fits"])
    if caution:
        out.print(f"[yellow]caution:[/yellow] {caution}")
    out.print(
        f"limits: batch up to {data['max_batch_at_context']} at {data['context']} tokens; "
        f"context up to {data['max_context_at_batch']} at batch {data['batch']}; "
        f"fewest GPUs {data['min_gpus_to_fit'] if data['min_gpus_to_fit'] is not None else 'none'}"
    )
    for s in data["suggestions"]:
        out.print(f"  try {escape(s['flag'])}: {escape(s['note'])} (headroom {s['headroom_gib']:+.2f} GiB)")
    print_warnings(data["warnings"], out)

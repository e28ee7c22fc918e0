"""Present a ValidationReport: per-row predicted vs measured, and the totals."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from planner.outputs.render import Column, console, print_line, print_table
from planner.validate import ValidationReport, median_abs_error

__all__ = ["validation_to_dict", "print_validation_table"]


def _summary(report: ValidationReport, kind: str) -> dict[str, Any]:
    checks = report.of_kind(kind)
    roof = [c.roofline_error for c in checks if c.roofline_error is not None]
    return {
        "rows": len(checks),
        "median_abs_error": round(median_abs_error([c.error for c in checks]), 4),
        "median_abs_error_pure_roofline": round(median_abs_error(roof), 4) if roof else None,
    }


def validation_to_dict(report: ValidationReport) -> dict[str, Any]:
    """The report as JSON-ready data."""
    return {
        "summary": {"decode_tokens_per_s": _summary(report, "decode"), "speculative_speedup": _summary(report, "speedup")},
        "checks": [
            {"row": c.row, "kind": c.kind, "what": c.what, "measured": round(c.measured, 4),
             "predicted": round(c.predicted, 4), "error": round(c.error, 4),
             "roofline": None if c.roofline is None else round(c.roofline, 4),
             "roofline_error": None if c.roofline_error is None else round(c.roofline_error, 4), "note": c.note}
            for c in report.checks
        ],
        "skipped": [{"row": r, "reason": why} for r, why in report.skipped],
    }


def print_validation_table(data: dict[str, Any]) -> None:
    """Per-row table and totals for people."""
    out = console()
    columns = (Column("row"), Column("configuration", wrap=True), Column("measured", "right"),
               Column("predicted", "right"), Column("error", "right"), Column("pure roofline", "right"))
    for kind, unit in (("decode", "tokens/s"), ("speedup", "x")):
        rows: list[list[str | Text]] = []
        for c in (c for c in data["checks"] if c["kind"] == kind):
            roof = "" if c["roofline_error"] is None else f"{c['roofline_error']:+.1%}"
            rows.append([c["row"], c["what"], f"{c['measured']:.2f}", f"{c['predicted']:.2f}", f"{c['error']:+.1%}", roof])
        title = f"{'Single-stream decode' if kind == 'decode' else 'Speculative speedup'} ({unit})"
        print_table(title, columns, rows, out=out)
    for name, s in data["summary"].items():
        roof = s["median_abs_error_pure_roofline"]
        roof_text = f"; pure roofline {roof:.1%}" if roof is not None else ""
        print_line(f"{name}: {s['rows']} rows, median |error| {s['median_abs_error']:.1%}{roof_text}", out)
    print_line(f"skipped {len(data['skipped'])} rows the model cannot express (use --format json for reasons)", out)

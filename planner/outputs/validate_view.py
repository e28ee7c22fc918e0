"""Present a ValidationReport: per-row predicted vs measured, per engine, the targets and the skipped rows."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from planner.outputs.render import Column, console, print_line, print_table
from planner.validation import Priced, SpecCheck, Targets, ValidationReport, summarize

__all__ = ["validation_to_dict", "print_validation_table"]


def _r4(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _priced(p: Priced, error: float | None, roofline_error: float | None) -> dict[str, Any]:
    return {"k": p.k, "alpha": _r4(p.alpha), "alpha_source": p.alpha_source, "c": round(p.c, 5), "r": _r4(p.r),
            "speedup": _r4(p.speedup), "error": _r4(error), "fits": p.fits,
            "pure_roofline": {"c": round(p.roofline_c, 5), "r": 1.0, "speedup": _r4(p.roofline_speedup),
                              "error": _r4(roofline_error)}}


def _spec_row(c: SpecCheck) -> dict[str, Any]:
    return {
        "row": c.row, "file": c.case.file, "engine": c.engine, "what": c.what,
        "measured_speedup": _r4(c.case.measured_speedup), "speedup_kind": c.case.speedup_kind,
        "prior_only": _priced(c.prior, c.prior_error, c.roofline_prior_error),
        "measured_acceptance": None if c.measured is None else {
            **_priced(c.measured, c.measured_error, c.roofline_measured_error),
            "acceptance": c.case.acceptance.describe() if c.case.acceptance else None, "passed_as": c.acceptance_passed},
        "r": None if c.case.measured_r is None else {"measured": _r4(c.case.measured_r), "predicted": _r4(c.prior.r),
                                                    "error": _r4(c.r_error), "pure_roofline_error": _r4(c.roofline_r_error)},
        # Where the source timed the target alone: is a miss in t_target or in c, r and alpha?
        "baseline_tokens_per_s": None if c.case.baseline_tokens_per_s is None else {
            "measured": _r4(c.case.baseline_tokens_per_s), "predicted": _r4(c.prior.target_tokens_per_s),
            "error": _r4((c.prior.target_tokens_per_s - c.case.baseline_tokens_per_s) / c.case.baseline_tokens_per_s)},
        "note": c.note,
    }


def validation_to_dict(report: ValidationReport, targets: Targets | None = None) -> dict[str, Any]:
    """The report as JSON-ready data: summary (medians, per engine, targets), decode checks, speculative rows, skipped."""
    return {
        "summary": summarize(report, targets),
        "checks": [
            {"row": c.row, "kind": c.kind, "what": c.what, "measured": round(c.measured, 4),
             "predicted": round(c.predicted, 4), "error": round(c.error, 4),
             "roofline": None if c.roofline is None else round(c.roofline, 4),
             "roofline_error": None if c.roofline_error is None else round(c.roofline_error, 4), "note": c.note}
            for c in report.checks
        ],
        "speculative": [_spec_row(c) for c in report.speculative],
        "skipped": [{"row": s.row, "file": s.file, "reason": s.reason} for s in report.skipped],
    }


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:+.1%}"


def _measured_cell(row: dict[str, Any]) -> str:
    value, kind = row["measured_speedup"], row["speedup_kind"]
    if value is None:
        return ""
    return {"upper bound": f"<={value:.2f}", "no gain": "~1 (no gain)"}.get(kind, f"{value:.2f}")


def _print_speculative(spec: list[dict[str, Any]], out: Any) -> None:
    speed = [s for s in spec if s["measured_speedup"] is not None]
    rows: list[list[str | Text]] = [
        [s["row"], s["what"], s["engine"], str(s["prior_only"]["k"]), f"{s['prior_only']['alpha']:.3f}",
         f"{s['prior_only']['c']:.3f}", f"{s['prior_only']['r']:.2f}", _measured_cell(s),
         f"{s['prior_only']['speedup']:.2f}", _pct(s["prior_only"]["error"]),
         f"{s['prior_only']['pure_roofline']['speedup']:.2f}", _pct(s["prior_only"]["pure_roofline"]["error"])]
        for s in speed]
    print_table("Speculative speedup, prior-only alpha (x; pure roofline: c = bytes ratio, r = 1)",
                (Column("row"), Column("configuration", wrap=True), Column("engine"), Column("k", "right"),
                 Column("alpha", "right"), Column("c", "right"), Column("r", "right"), Column("measured", "right"),
                 Column("predicted", "right"), Column("error", "right"), Column("roofline", "right"),
                 Column("roofline error", "right")), rows, out=out)
    with_acc = [s for s in speed if s["measured_acceptance"] is not None]
    rows = [[s["row"], s["measured_acceptance"]["passed_as"], f"{s['measured_acceptance']['alpha']:.3f}",
             _measured_cell(s), f"{s['measured_acceptance']['speedup']:.2f}", _pct(s["measured_acceptance"]["error"]),
             f"{s['measured_acceptance']['pure_roofline']['speedup']:.2f}",
             _pct(s["measured_acceptance"]["pure_roofline"]["error"])] for s in with_acc]
    print_table("Speculative speedup with the run's measured acceptance passed in (x)",
                (Column("row"), Column("passed as", wrap=True), Column("alpha", "right"), Column("measured", "right"),
                 Column("predicted", "right"), Column("error", "right"), Column("roofline", "right"),
                 Column("roofline error", "right")), rows, out=out)
    rows = [[s["row"], s["what"], str(s["prior_only"]["k"]), f"{s['r']['measured']:.3f}", f"{s['r']['predicted']:.3f}",
             _pct(s["r"]["error"]), "1.000", _pct(s["r"]["pure_roofline_error"])] for s in spec if s["r"]]
    print_table("Verify cost r = one pass over k + 1 tokens / one decode step",
                (Column("row"), Column("configuration", wrap=True), Column("k", "right"), Column("measured", "right"),
                 Column("predicted", "right"), Column("error", "right"), Column("roofline", "right"),
                 Column("roofline error", "right")), rows, out=out)


def _median_cell(block: dict[str, Any]) -> str:
    return "" if block["median_abs_error"] is None else f"{block['median_abs_error']:.1%} ({block['rows']})"


def _print_summary(summary: dict[str, Any], out: Any) -> None:
    blocks = ("speedup_prior_only", "speedup_measured_acceptance", "verify_ratio_r")
    rows: list[list[str | Text]] = [[engine, *(_median_cell(b[k]) for k in blocks)]
                                    for engine, b in summary["by_engine"].items()]
    rows.append(["all", *(_median_cell(summary[k]) for k in blocks)])
    print_table("Draft models at batch 1: median |error| per engine (rows)",
                (Column("engine"), Column("speedup prior-only", "right"),
                 Column("speedup measured acceptance", "right"), Column("r", "right")), rows, out=out)
    rows = [[method, str(b["priced"]), _median_cell(b["speedup_prior_only"]), _median_cell(b["speedup_measured_acceptance"]),
             str(sum(b["skipped"].values()))] for method, b in summary.get("by_method", {}).items()]
    print_table("Heads, MTP and lookups at batch 1: median |error| per method (rows)",
                (Column("method"), Column("priced", "right"), Column("speedup prior-only", "right"),
                 Column("speedup published acceptance", "right"), Column("skipped", "right")), rows, out=out)
    rows = [[method, str(b["priced"]), _median_cell(b["speedup_prior_only"]), _median_cell(b["speedup_measured_acceptance"])]
            for method, b in summary.get("batched_by_method", {}).items() if b["priced"]]
    if summary.get("batched"):
        rows.append(["all", "", *(_median_cell(summary["batched"][k])
                                  for k in ("speedup_prior_only", "speedup_measured_acceptance"))])
    print_table("Under load (batch > 1, issue 13): median |error| per method (rows)",
                (Column("method"), Column("priced", "right"), Column("speedup prior-only", "right"),
                 Column("speedup published acceptance", "right")), rows, out=out)
    rows = [[n["row"], n["engine"], n["kind"], f"{n['measured']:.2f}", f"{n['predicted']['prior_only']:.2f}",
             "" if "measured_acceptance" not in n["predicted"] else f"{n['predicted']['measured_acceptance']:.2f}",
             "pass" if n["passed"] else "FAIL"] for n in summary["no_gain"]]
    print_table("Runs that did not gain: predicted must stay below the do-not-speculate line",
                (Column("row"), Column("engine"), Column("kind"), Column("measured", "right"),
                 Column("prior-only", "right"), Column("measured acceptance", "right"), Column("check")), rows, out=out)
    rows = [[u["row"], u["engine"], f"{u['upper_bound']:.2f}", f"{u['predicted']:.2f}", "within" if u["within"] else "above"]
            for u in summary["upper_bounds"]]
    print_table("'up to' figures (best case over prompts; not in the medians)",
                (Column("row"), Column("engine"), Column("up to", "right"), Column("predicted", "right"),
                 Column("check")), rows, out=out)


def print_validation_table(data: dict[str, Any]) -> None:
    """Per-row tables, per-engine medians and the targets, for people."""
    out = console()
    rows: list[list[str | Text]] = []
    for c in (c for c in data["checks"] if c["kind"] == "decode"):
        roof = "" if c["roofline_error"] is None else f"{c['roofline_error']:+.1%}"
        rows.append([c["row"], c["what"], f"{c['measured']:.2f}", f"{c['predicted']:.2f}", f"{c['error']:+.1%}", roof])
    print_table("Single-stream decode (tokens/s)", (Column("row"), Column("configuration", wrap=True),
                Column("measured", "right"), Column("predicted", "right"), Column("error", "right"),
                Column("pure roofline", "right")), rows, out=out)
    _print_speculative(data["speculative"], out)
    summary = data["summary"]
    _print_summary(summary, out)
    for name in ("decode_tokens_per_s", "speedup_prior_only", "speedup_measured_acceptance", "verify_ratio_r"):
        s = summary[name]
        if not s["rows"]:
            print_line(f"{name}: no rows", out)
            continue
        roof = s["median_abs_error_pure_roofline"]
        roof_text = f"; pure roofline {roof:.1%}" if roof is not None else ""
        print_line(f"{name}: {s['rows']} rows, median |error| {s['median_abs_error']:.1%}{roof_text}", out)
    for t in summary["targets"]:
        state = {True: "met", False: "MISSED", None: "no rows"}[t["met"]]
        value = (f"{t['value']} failing of {t['rows']}" if t["limit"] == 0 else
                 "" if t["value"] is None else f"{t['value']:.1%} (limit {t['limit']:.0%})")
        print_line(f"target {t['name']}: {value} {state}".replace("  ", " "), out)
    for f, cov in summary["coverage"].items():
        print_line(f"{f}: {cov['rows']} rows, {cov['checked']} checked, {cov['skipped']} skipped", out)
    print_line(f"skipped {len(data['skipped'])} rows the model cannot express (use --format json for reasons)", out)

"""Present calibration work: local GPUs, probe progress (stderr) and calibration summaries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from planner.calibration.schema import CalibrationFile
from rich.text import Text

from planner.outputs.loads_view import print_loads_table
from planner.outputs.render import Column, console, print_line, print_table
from planner.units import MILLI

__all__ = ["print_detect_table", "progress_printer", "calibration_summary_to_dict", "print_calibration_summary"]


def print_detect_table(rows: list[dict[str, Any]]) -> None:
    """Local GPUs and their catalogue match."""
    columns = (Column("#", "right"), Column("name", wrap=True), Column("memory", "right"),
               Column("bandwidth (NVML)", "right"), Column("catalogue", wrap=True), Column("power limit", "right"),
               Column("driver"))
    cells: list[list[str | Text]] = []
    for i, g in enumerate(rows):
        bw = g.get("theoretical_bandwidth_gb_s")
        match = g.get("catalog_id") or "not in catalogue (spec built from NVML)"
        cells.append([str(i), g["name"], f"{g['memory_gib']:.1f} GiB", f"{bw:.0f} GB/s" if bw else "?", match,
                      f"{g['power_limit_w']:.0f} W" if g.get("power_limit_w") else "?", str(g.get("driver") or "?")])
    print_table(f"{len(rows)} local GPU(s)", columns, cells)


@contextmanager
def progress_printer() -> Iterator[Callable[[str, float], None]]:
    """A progress bar on stderr (stdout stays clean); yields update(what, fraction)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task("probe", total=1.0)

        def update(what: str, fraction: float) -> None:
            progress.update(task, description=what, completed=min(max(fraction, 0.0), 1.0))

        yield update


def calibration_summary_to_dict(cal: CalibrationFile, path: str) -> dict[str, Any]:
    """What was written: the file, the pair, and the fitted timing and acceptance (times in ms)."""
    return {
        "wrote": path, "source": cal.source, "partial": cal.partial, "partial_reason": cal.partial_reason,
        "device": cal.device.name if cal.device else None, "target": cal.target.id,
        "draft": cal.draft.id if cal.draft else None, "method": cal.method, "head": cal.head,
        "timing_points": len(cal.timings),
        "speculative_rounds": sum(len(r.accepted) for r in cal.rounds),
        "fitted_timing": [
            {"role": f.role, "eta_mem": round(f.eta_mem, 4), "overhead_ms": round(f.overhead_s / MILLI, 4),
             "residual_rms_ms": round(f.residual_rms_s / MILLI, 4), "max_rel_residual": round(f.max_rel_residual, 4),
             "points": f.points}
            for f in cal.fitted_timing],
        "fitted_acceptance": [
            {"mode": a.mode, "alpha": round(a.alpha, 4), "alpha_low": round(a.alpha_low, 4),
             "alpha_high": round(a.alpha_high, 4), "per_position": [round(x, 4) for x in a.per_position],
             "geometric_p_value": None if a.geometric_p_value is None else round(a.geometric_p_value, 4),
             "decays_with_position": a.decays_with_position,
             "mean_accepted_length": None if a.mean_accepted_length is None else round(a.mean_accepted_length, 4),
             "tree": a.tree.model_dump(mode="json") if a.tree else None}
            for a in cal.fitted_acceptance],
        "engine": cal.engine,
        "server": cal.server.model_dump(mode="json") if cal.server else None,
        "loads": [level.model_dump(mode="json") for level in cal.loads],
        "notes": list(cal.notes),
    }


def print_calibration_summary(d: dict[str, Any]) -> None:
    """What was measured and fitted, in a few lines (names and paths printed as they are)."""
    out = console()
    state = f"PARTIAL ({d['partial_reason']})" if d["partial"] else "complete"
    print_line(f"wrote {d['wrote']}: {d['source']} calibration, {state}, device {d['device'] or 'server'}", out)
    proposer = d["draft"] or d.get("head") or "-"
    method = "" if d.get("method", "draft") == "draft" else f" (--method {d['method']})"
    print_line(f"pair: {d['target']} + {proposer}{method}; {d['timing_points']} timing points, "
               f"{d['speculative_rounds']} speculative rounds", out)
    for f in d["fitted_timing"]:
        print_line(f"  {f['role']}: eta_mem {f['eta_mem']:.3f}, overhead {f['overhead_ms']:.3f} ms, residual rms "
                   f"{f['residual_rms_ms']:.3f} ms (max {f['max_rel_residual']:.1%}) over {f['points']} points", out)
    for a in d["fitted_acceptance"]:
        gof = "" if a["geometric_p_value"] is None else f", geometric fit p = {a['geometric_p_value']:.3f}"
        decay = "; acceptance decays with position: plan with the per-position figures" if a["decays_with_position"] else ""
        positions = ", ".join(f"{x:.2f}" for x in a["per_position"])
        print_line(f"  {a['mode']}: alpha {a['alpha']:.3f} (95% {a['alpha_low']:.3f}-{a['alpha_high']:.3f}) "
                   f"per position [{positions}]{gof}{decay}", out)
    if d.get("loads"):
        print_loads_table(d["loads"], f"{d['engine']} server {d['server']['url'] if d.get('server') else ''}")
    for n in d["notes"]:
        print_line(f"  note: {n}", out)


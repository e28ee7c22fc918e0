"""Present calibration work: local GPUs, probe progress (stderr) and calibration summaries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from planner.calibration.schema import CalibrationFile
from planner.outputs.render import console
from planner.units import MILLI

__all__ = ["print_detect_table", "progress_printer", "print_calibration_summary"]


def print_detect_table(rows: list[dict[str, Any]]) -> None:
    """Local GPUs and their catalogue match."""
    from rich.table import Table

    table = Table(title=f"{len(rows)} local GPU(s)", title_justify="left")
    for col in ("#", "name", "memory", "bandwidth (NVML)", "catalogue", "power limit", "driver"):
        table.add_column(col)
    for i, g in enumerate(rows):
        bw = g.get("theoretical_bandwidth_gb_s")
        match = g.get("catalog_id") or "not in catalogue (spec built from NVML)"
        table.add_row(str(i), g["name"], f"{g['memory_gib']:.1f} GiB", f"{bw:.0f} GB/s" if bw else "?", match,
                      f"{g['power_limit_w']:.0f} W" if g.get("power_limit_w") else "?", str(g.get("driver") or "?"))
    console().print(table)


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


def print_calibration_summary(cal: CalibrationFile, path: str) -> None:
    """What was measured and fitted, in a few lines."""
    out = console()
    state = f"PARTIAL ({cal.partial_reason})" if cal.partial else "complete"
    device = cal.device.name if cal.device else "server"
    out.print(f"wrote {path}: {cal.source} calibration, {state}, device {device}")
    out.print(f"pair: {cal.target.id} + {cal.draft.id if cal.draft else '-'}; "
              f"{len(cal.timings)} timing points, {sum(len(r.accepted) for r in cal.rounds)} speculative rounds")
    for f in cal.fitted_timing:
        out.print(f"  {f.role}: eta_mem {f.eta_mem:.3f}, overhead {f.overhead_s / MILLI:.3f} ms, "
                  f"residual rms {f.residual_rms_s / MILLI:.3f} ms (max {f.max_rel_residual:.1%}) over {f.points} points")
    for a in cal.fitted_acceptance:
        gof = "" if a.geometric_p_value is None else f", geometric fit p = {a.geometric_p_value:.3f}"
        decay = "; acceptance decays with position: plan with the per-position figures" if a.decays_with_position else ""
        positions = ", ".join(f"{x:.2f}" for x in a.per_position)
        out.print(f"  {a.mode}: alpha {a.alpha:.3f} (95% {a.alpha_low:.3f}-{a.alpha_high:.3f}) per position [{positions}]{gof}{decay}")
    for n in cal.notes:
        out.print(f"  note: {n}")

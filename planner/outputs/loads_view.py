"""Predicted vs measured at each load of a `probe --server` calibration (estimate and recommend)."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from planner.outputs.render import Column, console, print_line, print_table

__all__ = ["print_load_comparison"]


def _n(x: float | None, digits: int = 1, suffix: str = "") -> str:
    return "-" if x is None else f"{x:.{digits}f}{suffix}"


def print_load_comparison(block: dict[str, Any]) -> None:
    """One row per recorded concurrency: the plan's tokens/s and speedup at batch = concurrency vs the server's."""
    columns = (Column("conc", "right"), Column("tok/s seq pred", "right"), Column("measured", "right"),
               Column("error", "right"), Column("tok/s all pred", "right"), Column("measured", "right"),
               Column("speedup pred", "right"), Column("measured seq", "right"), Column("measured all", "right"))
    rows: list[list[str | Text]] = []
    for r in block["rows"]:
        if "error" in r:
            rows.append([str(r["concurrency"]), Text(r["error"]), "", "", "", "", "", "", ""])
            continue
        err = r["tokens_per_s_error"]
        rows.append([str(r["concurrency"]), _n(r["predicted_tokens_per_s_per_sequence"]),
                     _n(r["measured_tokens_per_s_per_sequence"]), "-" if err is None else f"{err:+.0%}",
                     _n(r["predicted_total_tokens_per_s"]), _n(r["measured_total_tokens_per_s"]),
                     _n(r["predicted_speedup"], 2, "x"), _n(r["measured_speedup_per_sequence"], 2, "x"),
                     _n(r["measured_speedup_total"], 2, "x")])
    print_table(f"Predicted vs measured per load ({block['engine']} server {block['server'] or ''}, draft "
                f"{block['draft']}, k={block['k']}; predicted at batch = concurrency)", columns, rows)
    print_line("error: (predicted - measured) / measured tokens/s per sequence; measured speedup: against the "
               "--baseline-url server at the same concurrency", console())

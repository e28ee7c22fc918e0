"""The loads of a `probe --server` file: as measured (probe), and predicted vs measured (estimate, recommend)."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from planner.outputs.render import Column, console, print_line, print_table

__all__ = ["print_load_comparison", "print_loads_table"]


def _num(x: float | None, scale: float = 1.0, digits: int = 1, suffix: str = "") -> str:
    return "-" if x is None else f"{x * scale:.{digits}f}{suffix}"


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
        rows.append([str(r["concurrency"]), _num(r["predicted_tokens_per_s_per_sequence"]),
                     _num(r["measured_tokens_per_s_per_sequence"]), "-" if err is None else f"{err:+.0%}",
                     _num(r["predicted_total_tokens_per_s"]), _num(r["measured_total_tokens_per_s"]),
                     _num(r["predicted_speedup"], 1, 2, "x"), _num(r["measured_speedup_per_sequence"], 1, 2, "x"),
                     _num(r["measured_speedup_total"], 1, 2, "x")])
    print_table(f"Predicted vs measured per load ({block['engine']} server {block['server'] or ''}, draft "
                f"{block['draft']}, k={block['k']}; predicted at batch = concurrency)", columns, rows)
    print_line("error: (predicted - measured) / measured tokens/s per sequence; measured speedup: against the "
               "--baseline-url server at the same concurrency", console())


def print_loads_table(loads: list[dict[str, Any]], title: str) -> None:
    """One row per concurrency level of probe --server: latencies in ms, rates in tokens/s."""
    columns = (Column("conc", "right"), Column("done", "right"), Column("tokens", "right"), Column("TTFT ms", "right"),
               Column("p90", "right"), Column("ITL ms", "right"), Column("p90", "right"), Column("tok/s seq", "right"),
               Column("tok/s all", "right"), Column("accepted/drafted", "right"), Column("base tok/s seq", "right"),
               Column("speedup seq", "right"), Column("speedup all", "right"))
    rows: list[list[str | Text]] = []
    for v in loads:
        acc = "-" if v["drafted_tokens"] is None else f"{v['accepted_tokens']}/{v['drafted_tokens']}"
        rows.append([str(v["concurrency"]), f"{v['requests_completed']}/{v['requests_sent']}", str(v["output_tokens"]),
                     _num(v["ttft_s_median"], 1000), _num(v["ttft_s_p90"], 1000), _num(v["itl_s_median"], 1000, 2),
                     _num(v["itl_s_p90"], 1000, 2), _num(v["tokens_per_s_per_sequence"]), _num(v["total_tokens_per_s"]),
                     acc, _num(v["baseline_tokens_per_s_per_sequence"]), _num(v["measured_speedup_per_sequence"], 1, 2),
                     _num(v["measured_speedup_total"], 1, 2)])
    print_table(f"Measured load, {title}", columns, rows)

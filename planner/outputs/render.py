"""Emit a result as a rich table, JSON or YAML on stdout.

Tables never cut an id or drop a column: at the terminal's width a table is drawn with
its identifier columns whole; when even their full width does not fit, the rows are
printed one record per block instead. In a pipe (stdout not a terminal, no COLUMNS) the
width is unlimited, so scripts and `grep` always see whole rows.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import yaml

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

__all__ = ["OutputFormat", "FORMATS", "dump", "console", "Column", "print_table", "print_line", "progress_bar",
           "PIPE_WIDTH",
           "print_warnings", "unique"]

OutputFormat = Literal["table", "json", "yaml"]
FORMATS: tuple[str, ...] = ("table", "json", "yaml")
# Width used when stdout is not a terminal: wide enough that no table wraps or switches layout.
PIPE_WIDTH = 10_000
_Box = Literal["heavy", "compact"]


def console() -> Console:
    """A rich console on stdout; created per call so test runners capture it.

    Sentences are soft-wrapped (rich never inserts a newline into a printed line, so
    an id or path in a sentence stays whole); the terminal wraps them for display.
    """
    width = None
    if "COLUMNS" not in os.environ and not sys.stdout.isatty():
        width = PIPE_WIDTH
    return _console_class()(highlight=False, soft_wrap=True, width=width)


@functools.lru_cache(maxsize=1)
def _console_class() -> type[Console]:
    """rich's Console, except that a closed pipe is left to the CLI (exit 141, like other tools).

    rich's own handler exits 1 there, which this CLI reserves for "does not fit".
    """
    from rich.console import Console

    class _PipeAwareConsole(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError

    return _PipeAwareConsole


def print_line(text: str | Text, out: Console | None = None) -> None:
    """One line of output, never wrapped or cropped by rich; plain strings are not read as markup."""
    from rich.text import Text

    (out or console()).print(Text(text) if isinstance(text, str) else text, soft_wrap=True, crop=False)


def unique(items: Sequence[str]) -> list[str]:
    """The items once each, in first-seen order (the same warning can come from several steps of a plan)."""
    return list(dict.fromkeys(items))


def print_warnings(warnings: Sequence[str], out: Console | None = None) -> None:
    """Each distinct warning once, as `warning: ...` (the text is not read as markup)."""
    from rich.text import Text

    for w in unique(warnings):
        print_line(Text.assemble(("warning:", "yellow"), " ", w), out)


@dataclass(frozen=True)
class Column:
    """One table column: header, alignment, and whether its cells are free text that may wrap between words.

    Columns that are not ``wrap`` (ids, numbers, names) are never broken, truncated or dropped.
    """

    header: str
    justify: Literal["left", "right"] = "left"
    wrap: bool = False


def _plain(cell: str | Text) -> str:
    return cell if isinstance(cell, str) else cell.plain


def _widths(columns: Sequence[Column], rows: Sequence[Sequence[str | Text]]) -> tuple[list[int], list[int]]:
    """Per column, the narrowest width that keeps every unbreakable run whole, and the natural width (cells)."""
    from rich.cells import cell_len

    mins, maxs = [], []
    for i, col in enumerate(columns):
        cells = [col.header] + [_plain(r[i]) for r in rows]
        widest = max(cell_len(line) for c in cells for line in (c.splitlines() or [""]))
        maxs.append(widest)
        if col.wrap:
            words = [cell_len(w) for c in cells[1:] for w in c.split()]
            mins.append(max([cell_len(col.header)] + words))
        else:
            mins.append(widest)
    return mins, maxs


def _rich_table(columns: Sequence[Column], rows: Sequence[Sequence[str | Text]], box: _Box,
                widths: Sequence[int] | None) -> Any:
    from rich import box as boxes
    from rich.table import Table
    from rich.text import Text

    if box == "compact":
        table = Table(box=boxes.SIMPLE_HEAD, pad_edge=False, padding=0, show_edge=False)  # one space between columns
    else:
        table = Table(box=boxes.HEAVY_HEAD)
    for i, col in enumerate(columns):
        table.add_column(col.header, justify=col.justify, no_wrap=not col.wrap,
                         overflow="fold", width=None if widths is None else widths[i])
    for r in rows:
        table.add_row(*(Text(c) if isinstance(c, str) else c for c in r))
    return table


def _overhead(columns: Sequence[Column], box: _Box) -> int:
    """Borders and padding of a table with these columns (cells), measured on an empty-celled table."""
    from rich.console import Console
    from rich.measure import Measurement

    probe = Console(width=PIPE_WIDTH, file=open(os.devnull, "w"))  # noqa: SIM115 - closed below
    try:
        blank = [Column("", c.justify, c.wrap) for c in columns]
        table = _rich_table(blank, [["x"] * len(columns)], box, None)
        return Measurement.get(probe, probe.options, table).maximum - len(columns)
    finally:
        probe.file.close()


def _fit_widths(mins: list[int], maxs: list[int], columns: Sequence[Column], room: int) -> list[int]:
    """Give unbreakable columns their full width and share what is left among the wrapping ones."""
    widths = list(mins)
    spare = room - sum(mins)
    for i in sorted(range(len(columns)), key=lambda j: maxs[j] - mins[j]):
        if columns[i].wrap and spare > 0:
            grow = min(spare, maxs[i] - mins[i])
            widths[i] += grow
            spare -= grow
    return widths


def print_table(title: str | None, columns: Sequence[Column], rows: Sequence[Sequence[str | Text]],
                box: _Box = "heavy", out: Console | None = None) -> None:
    """A table that fits the console without cutting ids, or one record per block when it cannot.

    The title is printed as its own line (a path in it stays whole).
    """
    out = out or console()
    if title:
        print_line(title, out)
    mins, maxs = _widths(columns, rows)
    extra = _overhead(columns, box)
    if sum(maxs) + extra <= out.width:
        out.print(_rich_table(columns, rows, box, None), soft_wrap=False)
    elif sum(mins) + extra <= out.width:
        out.print(_rich_table(columns, rows, box, _fit_widths(mins, maxs, columns, out.width - extra)), soft_wrap=False)
    else:
        _print_blocks(columns, rows, out)


def _print_blocks(columns: Sequence[Column], rows: Sequence[Sequence[str | Text]], out: Console) -> None:
    """Narrow layout, one record per block: the first column's value, then `header: value` pairs packed into lines.

    A pair is never split across lines (one longer than the width gets a line of its own).
    """
    from rich.cells import cell_len
    from rich.text import Text

    indent = "  "
    for n, r in enumerate(rows):
        if n:
            print_line("", out)
        first = r[0] if isinstance(r[0], Text) else Text(r[0], style="bold")
        print_line(Text.assemble(f"{columns[0].header}: ", first), out)
        line = Text(indent)
        for col, cell in zip(columns[1:], r[1:]):
            pair = Text.assemble(f"{col.header}: ", cell)
            gap = "" if line.plain == indent else "; "
            if line.plain != indent and cell_len(line.plain) + len(gap) + cell_len(pair.plain) > out.width:
                print_line(line, out)
                line, gap = Text(indent), ""
            line.append(gap)
            line.append_text(pair)
        if line.plain != indent:
            print_line(line, out)


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr while stderr is a terminal (nothing in pipes or tests); yields update(done, total)."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(label, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)


def dump(data: Any, fmt: str, table: Callable[[Any], None]) -> str | None:
    """Serialise ``data`` as JSON/YAML text, or draw it with ``table`` (returns None then)."""
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=False)
    if fmt == "yaml":
        # Through JSON first: numpy scalars (float subclasses) and tuples become the plain types the safe dumper
        # represents, so both formats hold the same values.
        return yaml.safe_dump(json.loads(json.dumps(data)), sort_keys=False, allow_unicode=True)
    table(data)
    return None

"""Load the two public measurement files and refuse malformed rows with one line.

* ``measurements.yaml``: sections A (decode tokens/s) and B (speculative runs in the
  sources' own words);
* ``speculative_more.yaml``: speculative runs with a separate draft, each carrying a
  ``specplan:`` block (``args`` = the ``specplan estimate`` flags, ``compare`` = what to check).
"""

from __future__ import annotations

import math
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

from planner import speedup as sp
from planner.catalog.loading import safe_load
from planner.errors import SpecplanError
from planner.inputs import read_yaml, shown

__all__ = ["MEASUREMENTS", "SPECULATIVE_MORE", "load_measurements", "load_speculative_more", "packaged_text",
           "is_number"]

MEASUREMENTS = "measurements.yaml"
SPECULATIVE_MORE = "speculative_more.yaml"
_SECTIONS = ("A_decode_throughput", "B_speculative_decoding")
_TEXT_FIELDS = ("id", "model", "hardware", "engine", "quant", "target", "draft", "method", "precision")
_RATE_FIELDS = ("alpha", "acceptance_rate")
_POSITIVE_FIELDS = ("decode_tok_s", "output_throughput_tok_s", "tok_s_spec", "tok_s_baseline", "speedup_overall",
                    "mean_accepted_tokens", "mean_accepted_length", "mean_accepted_per_round")
_REQUIRED = {"A_decode_throughput": ("id", "model", "hardware"), "B_speculative_decoding": ("id", "target")}
_COUNT_FIELDS = {"n_gpus": (1, 4096), "k": (1, sp.K_MAX), "prompt_tokens": (0, 10**9), "output_tokens": (0, 10**9),
                 "n_drafted": (0, 10**12), "n_accept": (0, 10**12), "n_rounds": (1, 10**12),
                 "batch_size": (1, 10**6)}
# speculative_more `specplan: args:` keys and their types (the `specplan estimate` flags).
_ARG_TEXT = ("target", "draft", "gpu", "engine", "precision", "draft_precision", "kv_precision", "task")
_ARG_COUNTS = {"gpus": (1, 4096), "batch": (1, 1_000_000), "context": (1, 100_000_000), "k": (1, sp.K_MAX)}


def packaged_text(name: str) -> str:
    """A data file shipped in planner/data."""
    return (files("planner") / "data" / name).read_text(encoding="utf-8")


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool); ints beyond float range count as not a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) < 2**1000
    return isinstance(value, float) and math.isfinite(value)


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def load_measurements(path: str | Path | None = None) -> dict[str, Any]:
    """The published measurements (the packaged copy unless a path is given); every row's fields checked."""
    if path:
        label, doc = str(path), read_yaml(path, "--measurements")
    else:
        label, doc = MEASUREMENTS, safe_load(packaged_text(MEASUREMENTS))
    if not isinstance(doc, dict):
        raise SpecplanError(f"{label}: expected a mapping with sections {' and '.join(_SECTIONS)}")
    for section in _SECTIONS:
        rows = doc.get(section, [])
        if not isinstance(rows, list):
            raise SpecplanError(f"{label}: {section}: expected a list of rows")
        for n, row in enumerate(rows, start=1):
            _check_row(row, f"{label}: {section} row {n}", _REQUIRED[section])
    return doc


def _check_row(row: Any, where: str, required: tuple[str, ...]) -> None:
    """Refuse a row whose fields have the wrong type or an impossible value (NaN, negative, alpha > 1)."""
    if not isinstance(row, dict):
        raise SpecplanError(f"{where}: expected a mapping of fields")
    for field in required:
        if not isinstance(row.get(field), str) or not row[field].strip():
            raise SpecplanError(f"{where}: field {field}: missing (expected text)")

    def bad(field: str, expected: str) -> SpecplanError:
        return SpecplanError(f"{where}: field {field}: expected {expected}, got {shown(row[field], 40)}")

    for field in _TEXT_FIELDS:
        if row.get(field) is not None and not isinstance(row[field], str):
            raise bad(field, "text")
    for field in _RATE_FIELDS:
        if row.get(field) is not None and not (is_number(row[field]) and 0 <= row[field] <= 1):
            raise bad(field, "a number from 0 to 1")
    for field in _POSITIVE_FIELDS:
        if row.get(field) is not None and not (is_number(row[field]) and row[field] > 0):
            raise bad(field, "a positive number")
    for field, (low, high) in _COUNT_FIELDS.items():
        if row.get(field) is not None and not _whole(row[field], low, high):
            raise bad(field, f"a whole number from {low} to {high}")
    tg = row.get("tg_tok_s")
    if tg is not None and not (isinstance(tg, dict) and all(
            isinstance(key, str) and re.fullmatch(r"n[0-9]{1,7}", key) and (v is None or (is_number(v) and v > 0))
            for key, v in tg.items())):
        raise bad("tg_tok_s", "a mapping nN -> positive tokens/s")


def load_speculative_more(path: str | Path | None = None) -> dict[str, Any]:
    """The second public speculative set (packaged unless a path is given); every row's specplan block checked."""
    if path:
        label, doc = str(path), read_yaml(path, "--speculative")
    else:
        label, doc = SPECULATIVE_MORE, safe_load(packaged_text(SPECULATIVE_MORE))
    if not isinstance(doc, dict) or not isinstance(doc.get("rows", []), list):
        raise SpecplanError(f"{label}: expected a mapping with a list of rows under 'rows'")
    for n, row in enumerate(doc.get("rows", []), start=1):
        _check_more_row(row, f"{label}: row {n}")
    return doc


def _check_more_row(row: Any, where: str) -> None:
    """Refuse a speculative_more row whose specplan block cannot be read."""
    if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not row["id"].strip():
        raise SpecplanError(f"{where}: expected a mapping with a text id")
    block = row.get("specplan")
    where = f"{where} ({row['id']}): specplan"
    if not isinstance(block, dict) or not isinstance(block.get("expressible"), bool):
        raise SpecplanError(f"{where}: expected a mapping with expressible: true/false")
    if not block["expressible"]:
        if not isinstance(block.get("reason"), str) or not block["reason"].strip():
            raise SpecplanError(f"{where}: expressible false needs a reason (text)")
        return
    args, compare = block.get("args"), block.get("compare")
    if not isinstance(args, dict) or not isinstance(compare, dict):
        raise SpecplanError(f"{where}: expected args and compare mappings")
    for key, value in args.items():
        if not isinstance(key, str):
            raise SpecplanError(f"{where}: args: keys must be text, got {shown(key, 40)}")
        if key in _ARG_TEXT and not (isinstance(value, str) and value.strip()):
            raise SpecplanError(f"{where}: args.{key}: expected text, got {shown(value, 40)}")
        if key in _ARG_COUNTS and not _whole(value, *_ARG_COUNTS[key]):
            raise SpecplanError(f"{where}: args.{key}: expected a whole number from {_ARG_COUNTS[key][0]} to "
                                f"{_ARG_COUNTS[key][1]}, got {shown(value, 40)}")
    for key in ("target", "gpu"):
        if key not in args:
            raise SpecplanError(f"{where}: args.{key}: missing")
    for key in ("speedup", "r", "baseline_tok_s"):
        value = compare.get(key)
        if value is not None and not (is_number(value) and value > 0):
            raise SpecplanError(f"{where}: compare.{key}: expected a positive number, got {shown(value, 40)}")
    if compare.get("qualitative") is not None and not isinstance(compare["qualitative"], str):
        raise SpecplanError(f"{where}: compare.qualitative: expected text")
    acceptance = block.get("acceptance")
    if acceptance is not None:
        if not isinstance(acceptance, dict):
            raise SpecplanError(f"{where}: acceptance: expected a mapping or null")
        for key, value in acceptance.items():
            if not (is_number(value) and value >= 0):
                raise SpecplanError(f"{where}: acceptance.{key}: expected a number >= 0, got {shown(value, 40)}")

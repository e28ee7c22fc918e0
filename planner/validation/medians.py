"""Median |relative error| of a set of checks, with the pure roofline's beside it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["median_abs_error", "median_block", "target_row"]


def median_abs_error(values: Iterable[float | None]) -> float:
    """Median of |relative error| over the values given (NaN for none)."""
    kept = [v for v in values if v is not None]
    return float(np.median(np.abs(kept))) if kept else float("nan")


def median_block(errors: list[float | None], roofline: list[float | None]) -> dict[str, Any]:
    """Rows counted, their median |error| and the pure roofline's (None where no row counts)."""
    kept = [e for e in errors if e is not None]
    roof = [e for e in roofline if e is not None]
    return {"rows": len(kept), "median_abs_error": round(median_abs_error(kept), 4) if kept else None,
            "median_abs_error_pure_roofline": round(median_abs_error(roof), 4) if roof else None}


def target_row(name: str, block: dict[str, Any], limit: float) -> dict[str, Any]:
    """One target of `specplan validate`: a block's median against its limit (met None: no rows)."""
    value = block["median_abs_error"]
    return {"name": name, "value": value, "limit": limit, "rows": block["rows"],
            "met": None if value is None else value <= limit}

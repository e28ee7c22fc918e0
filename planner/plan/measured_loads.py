"""Predicted vs measured at each load a live-server probe recorded (`probe --server` files).

For every concurrency level of the calibration, the plan is priced for the measured pair at
batch = concurrency (the k the server ran, the plan's device and engine, the file's acceptance),
and set beside what the server did: tokens/s per sequence, total tokens/s and the speedup over
the baseline server. The pricing function is passed in, so estimate and recommend share this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from planner.calibration.schema import CalibrationFile
from planner.errors import SpecplanError
from planner.requests import FitInputs

__all__ = ["compare_loads", "relative_error", "server_k"]

Price = Callable[[FitInputs], Any]  # FitInputs -> an Estimate (prices, warnings)


def relative_error(predicted: float | None, measured: float | None) -> float | None:
    """(predicted - measured) / measured, a fraction; None when either is missing or measured is 0."""
    if predicted is None or not measured:
        return None
    return (predicted - measured) / measured


def server_k(cal: CalibrationFile) -> int | None:
    """The draft tokens per step the server ran with, as its counters or fitted acceptance state it."""
    if cal.counters is not None and cal.counters.k is not None:
        return cal.counters.k
    return next((f.k for f in cal.fitted_acceptance if f.k is not None), None)


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(float(x), digits)


def compare_loads(cal: CalibrationFile, path: str, fit: FitInputs, plan_engine: str, price: Price) -> dict[str, Any] | None:
    """Rows of predicted vs measured per recorded concurrency, with warnings; None when the file has no loads."""
    if not cal.loads:
        return None
    warnings = []
    if cal.engine is not None and cal.engine != plan_engine:
        warnings.append(f"{path} was measured on a {cal.engine} server, but this plan prices {plan_engine}: predicted "
                        f"vs measured compares different engines (plan with --engine {cal.engine})")
    draft = cal.draft.id if cal.draft is not None else fit.draft
    if fit.draft is not None and draft != fit.draft:
        warnings.append(f"{path} measured draft {draft}; predicted vs measured is priced for that draft, not {fit.draft}")
    k = server_k(cal) or fit.k
    rows = []
    for level in cal.loads:
        row: dict[str, Any] = {"concurrency": level.concurrency, "k": k}
        try:
            e = price(replace(fit, batch=level.concurrency, draft=draft, k=k))
        except SpecplanError as exc:
            row["error"] = str(exc)
            rows.append(row)
            continue
        p = e.prices
        spec = float(p.spec_tokens_per_s) if e.alpha is not None else None
        row.update({
            "predicted_tokens_per_s_per_sequence": _r(spec, 3),
            "measured_tokens_per_s_per_sequence": _r(level.tokens_per_s_per_sequence, 3),
            "predicted_total_tokens_per_s": _r(None if spec is None else spec * level.concurrency, 3),
            "measured_total_tokens_per_s": _r(level.total_tokens_per_s, 3),
            "predicted_baseline_tokens_per_s_per_sequence": _r(float(p.target_tokens_per_s), 3),
            "measured_baseline_tokens_per_s_per_sequence": _r(level.baseline_tokens_per_s_per_sequence, 3),
            "predicted_speedup": _r(float(p.speedup)) if e.alpha is not None else None,
            "measured_speedup_per_sequence": _r(level.measured_speedup_per_sequence),
            "measured_speedup_total": _r(level.measured_speedup_total),
            "alpha": _r(e.alpha.mid) if e.alpha is not None else None,
            "alpha_source": e.alpha.source if e.alpha is not None else None,
        })
        row["tokens_per_s_error"] = _r(relative_error(row["predicted_tokens_per_s_per_sequence"],
                                                      row["measured_tokens_per_s_per_sequence"]))
        row["speedup_error"] = _r(relative_error(row["predicted_speedup"], row["measured_speedup_per_sequence"]))
        rows.append(row)
    return {"file": path, "engine": cal.engine, "draft": draft, "k": k,
            "server": cal.server.url if cal.server else None, "rows": rows, "warnings": warnings}

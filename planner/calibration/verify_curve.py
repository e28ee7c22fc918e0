"""The verify curve r(n): how much longer one pass over n new tokens takes than one over a single token.

Fitted from timed pass shapes of one model at one cached length: llama-bench's pp1..pp(k+1) at a
depth (the llama.cpp probe) or the hf probe's time_pass over new_tokens 1..k+1. Applied by the plan
as t_verify(k) = t_decode_calibrated(context) x r(k + 1) (``verify_ratio``), where the cost model
prices verification from first principles and, on a CPU, is optimistic (pp2 ~ 2.7 x pp1 there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from planner.calibration.schema import FittedVerify, TimingPoint
from planner.errors import SpecplanError

__all__ = ["monotone_fit", "fit_verify_curve", "fit_verify_curves", "verify_ratio", "pick_verify_curve"]

_MIN_POINTS = 2  # n = 1 and at least one longer pass


def monotone_fit(values: Sequence[float], weights: Sequence[float] | None = None) -> list[float]:
    """Least-squares non-decreasing fit (pool adjacent violators), same unit as ``values``.

    A sequence that is already non-decreasing comes back unchanged; a dip (noise: pp3 faster than
    pp2) is pooled into its neighbours' weighted mean, since a pass over more tokens never does less work.
    """
    w = [1.0] * len(values) if weights is None else [float(x) for x in weights]
    blocks: list[list[float]] = []  # [mean, weight, count]
    for v, wi in zip(values, w):
        blocks.append([float(v), wi, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    out: list[float] = []
    for mean, _, count in blocks:
        out.extend([mean] * int(count))
    return out


def fit_verify_curve(new_tokens: Sequence[int], seconds: Sequence[float]) -> tuple[list[float], list[float]]:
    """Monotone ratios r(n) = t_fit(n) / t_fit(1) and each point's relative residual.

    ``new_tokens``: tokens in the pass (counts, ascending, starting at 1); ``seconds``: the pass's
    wall time at each n (s; fit_verify_curves gives the fastest repeat). Returns (ratio per n, dimensionless, >= 1 and non-decreasing;
    (t_measured - t_fit) / t_measured per n). The times, not the ratios, are fitted: a slow pp1
    repeat would otherwise scale the whole curve down.
    """
    n = [int(x) for x in new_tokens]
    t = [float(x) for x in seconds]
    if len(n) != len(t) or len(n) < _MIN_POINTS or n[0] != 1 or any(b <= a for a, b in zip(n, n[1:])):
        raise SpecplanError("verify curve: expected pass times at n = 1 and longer passes, n ascending")
    if any(not np.isfinite(x) or x <= 0 for x in t):
        raise SpecplanError("verify curve: pass times must be positive seconds")
    fit = monotone_fit(t)
    ratio = [max(f / fit[0], 1.0) for f in fit]
    resid = [(m - f) / m for m, f in zip(t, fit)]
    return ratio, resid


def fit_verify_curves(points: Sequence[TimingPoint], source: str, role: str = "target") -> list[FittedVerify]:
    """One FittedVerify per (batch, context) of ``role`` that was timed at n = 1 and at longer passes.

    The denominator is the n = 1 point of the same series (llama-bench: pp1 at the same depth, not
    tg): see llamacpp_probe._bench for why.
    """
    groups: dict[tuple[int, int], dict[int, float]] = {}
    for p in points:
        if p.role == role:
            # The fastest repeat, not the median: another process on the machine only ever adds time, and
            # on a shared 2-core host it inflated whole llama-bench tests (pp2 at 16 ms against a 5 ms minimum).
            groups.setdefault((p.batch, p.context), {})[p.new_tokens] = min(p.seconds)
    out = []
    for (batch, context), by_n in sorted(groups.items()):
        ns = sorted(by_n)
        if len(ns) < _MIN_POINTS or ns[0] != 1:
            continue
        ratio, resid = fit_verify_curve(ns, [by_n[x] for x in ns])
        out.append(FittedVerify(role=role, batch=batch, context=context, new_tokens=ns,  # type: ignore[arg-type]
                                ratio=ratio, measured_ratio=[by_n[x] / by_n[1] for x in ns],
                                max_rel_residual=max(abs(r) for r in resid), source=source))
    return out


def pick_verify_curve(curves: Sequence[FittedVerify], batch: int, context: float) -> FittedVerify | None:
    """The target curve at this batch (else batch 1) whose measured context is nearest ``context`` (tokens)."""
    mine = [c for c in curves if c.role == "target" and c.batch == batch] or [
        c for c in curves if c.role == "target" and c.batch == 1]
    # On a tie the deeper curve: it reads more cached K/V, the conservative side of the two.
    return min(mine, key=lambda c: (abs(c.context - context), -c.context)) if mine else None


def verify_ratio(curve: FittedVerify, n: ArrayLike,
                 model_ratio: Callable[[NDArray[np.float64]], NDArray[np.float64]]) -> NDArray[np.float64]:
    """r(n) = t(pass over n tokens) / t(decode pass), dimensionless, from the fitted curve.

    Inside the measured n: linear interpolation of the fitted ratios. Beyond the last measured n,
    n_max: the cost model's growth from n_max, r_fit(n_max) x r_model(n) / r_model(n_max), so
    the curve keeps the cost model's shape (memory-bound flat, then compute-bound linear) from
    the measured level. ``model_ratio`` maps token counts to the cost model's r (same shape).
    """
    nn = np.asarray(n, dtype=np.float64)
    xs = np.asarray(curve.new_tokens, dtype=np.float64)
    ys = np.asarray(curve.ratio, dtype=np.float64)
    inside = np.interp(nn, xs, ys)
    last = xs[-1]
    beyond = nn > last
    if not np.any(beyond):
        return inside
    model_n = np.asarray(model_ratio(np.maximum(nn, last)), dtype=np.float64)
    model_last = np.asarray(model_ratio(np.full_like(nn, last)), dtype=np.float64)
    scaled = ys[-1] * model_n / np.where(model_last > 0, model_last, 1.0)
    return np.where(beyond, np.maximum(scaled, ys[-1]), inside)

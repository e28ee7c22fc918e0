"""Fit the cost model and the acceptance model to measurements (scipy, imported here only).

* Timing: t = bytes/bw / eta + overhead per model, linear least squares over both
  models' grids with bounds (eta <= 1, overhead >= 0), residuals reported per model.
* Acceptance: alpha by maximum likelihood with a 95% interval (speedup.alpha_mle),
  conditional acceptance per position, and a chi-square check of the geometric model
  against the accepted-length histogram; when acceptance decays with position the
  per-position figures are the ones to plan with (DESIGN.md section 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from planner import speedup as sp
from planner.calibration.schema import FittedAcceptance, FittedTiming, RoundsRecord, TimingPoint
from planner.costmodel import ModelProfile
from planner.units import GB

__all__ = ["fit_timings", "fit_acceptance", "per_position_acceptance", "geometric_fit_p_value"]

_MIN_EXPECTED = 5.0  # chi-square bins with fewer expected rounds are pooled
_DECAY_DROP = 0.1  # first-to-last conditional acceptance drop that counts as decay
_DECAY_P = 0.05
_MAX_INVERSE_ETA = 1000.0  # eta >= 0.001: anything slower is not a bandwidth-bound pass


def _bytes(profile: ModelProfile, p: TimingPoint) -> tuple[float, float]:
    """(weight bytes, KV bytes) one timed pass moves."""
    kv = p.batch * (p.context + p.new_tokens) * (profile.kv_bytes_per_token_full + profile.kv_bytes_per_token_window)
    return float(profile.dense_weight_bytes + profile.expert_bytes * profile.experts_per_token), float(kv)


def fit_timings(points: Sequence[TimingPoint], profiles: dict[str, ModelProfile], bandwidth_bytes_s: float,
                max_eta: float = 1.0) -> list[FittedTiming]:
    """Least-squares memory efficiency (one per device) and fixed overhead (one per model).

    t = bytes / (bw * eta) + overhead_role. Efficiency is a property of the device and
    its kernels; the overhead grows with layer count, so each model gets its own. A
    single model's weights do not vary across its grid, so only the two models
    together (and the KV term) separate bandwidth from overhead. ``max_eta`` above 1
    admits models served from a CPU's caches, faster than its measured DRAM copy.
    """
    from scipy.optimize import lsq_linear

    roles = [r for r in profiles if any(p.role == r for p in points)]
    pts = [p for p in points if p.role in roles]
    if len(pts) < len(roles) + 1:
        return []
    seconds_at_peak = np.array([sum(_bytes(profiles[p.role], p)) for p in pts]) / bandwidth_bytes_s
    design = np.column_stack([seconds_at_peak] + [np.array([p.role == r for p in pts], dtype=float) for r in roles])
    t = np.array([p.median_s for p in pts])
    res = lsq_linear(design, t, bounds=([1.0 / max_eta] + [0.0] * len(roles), [_MAX_INVERSE_ETA] + [np.inf] * len(roles)))
    resid = t - design @ res.x
    out = []
    for i, role in enumerate(roles):
        mine = np.array([p.role == role for p in pts])
        out.append(FittedTiming(
            role=role,  # type: ignore[arg-type]
            eta_mem=float(1.0 / res.x[0]),
            overhead_s=float(res.x[1 + i]),
            residual_rms_s=float(np.sqrt(np.mean(resid[mine] ** 2))),
            max_rel_residual=float(np.max(np.abs(resid[mine]) / t[mine])),
            points=int(mine.sum()),
            bandwidth_gb_s=bandwidth_bytes_s / GB,
        ))
    return out


def per_position_acceptance(rec: RoundsRecord) -> list[float]:
    """P(draft i accepted | drafts 1..i-1 accepted), i = 1..k, from rounds (NaN-free: empty tail dropped)."""
    acc, prop = np.asarray(rec.accepted), np.asarray(rec.proposed)
    out = []
    for i in range(1, rec.k + 1):
        reached = (acc >= i - 1) & (prop >= i)
        if not reached.any():
            break
        out.append(float(np.mean(acc[reached] >= i)))
    return out


def geometric_fit_p_value(rec: RoundsRecord, alpha: float) -> float | None:
    """Chi-square p-value of the accepted-count histogram (full-k rounds) against the geometric model."""
    from scipy.stats import chisquare

    acc = np.asarray(rec.accepted)[np.asarray(rec.proposed) == rec.k]
    if acc.size < 2 * _MIN_EXPECTED:
        return None
    observed = np.bincount(acc, minlength=rec.k + 1).astype(float)
    pmf = np.append(alpha ** np.arange(rec.k) * (1 - alpha), alpha**rec.k)
    expected = pmf * acc.size
    obs_bins, exp_bins = _pool(observed, expected)
    if len(obs_bins) < 3:
        return None
    return float(chisquare(obs_bins, exp_bins * obs_bins.sum() / exp_bins.sum(), ddof=1).pvalue)


def _pool(observed: np.ndarray, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge adjacent bins until each expects at least _MIN_EXPECTED rounds."""
    obs, exp, acc_o, acc_e = [], [], 0.0, 0.0
    for o, e in zip(observed, expected):
        acc_o, acc_e = acc_o + o, acc_e + e
        if acc_e >= _MIN_EXPECTED:
            obs.append(acc_o)
            exp.append(acc_e)
            acc_o = acc_e = 0.0
    if acc_e and obs:
        obs[-1] += acc_o
        exp[-1] += acc_e
    return np.array(obs), np.array(exp)


def fit_acceptance(rec: RoundsRecord) -> FittedAcceptance:
    """MLE alpha with 95% interval, per-position rates and the geometric goodness of fit."""
    alpha, low, high = sp.alpha_mle(rec.accepted, rec.proposed)
    positions = per_position_acceptance(rec)
    p_value = geometric_fit_p_value(rec, float(alpha))
    decays = bool(
        len(positions) >= 2 and positions[0] - positions[-1] > _DECAY_DROP and p_value is not None and p_value < _DECAY_P
    )
    return FittedAcceptance(
        mode=rec.mode, alpha=float(alpha), alpha_low=float(low), alpha_high=float(high), k=rec.k,
        rounds=len(rec.accepted), per_position=positions, geometric_p_value=p_value, decays_with_position=decays,
    )

"""Re-plan with measured figures: decide whether a calibration applies, and what it replaces.

A calibration describes one device, one target and one proposer (a draft model, an EAGLE head,
MTP layers or a lookup). Its acceptance applies to that target and proposer on any hardware
(acceptance is a property of the models and the task);
its timings apply only to the device it was measured on. Anything else gets a warning
and the catalogue defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from planner.calibration.schema import CalibrationFile, FittedAcceptance, FittedTiming, FittedVerify, TimingPoint
from planner.calibration.verify_curve import pick_verify_curve, verify_ratio
from planner.catalog.loading import model_catalog
from planner.catalog.lookup import model_name
from planner.catalog.schemas import GpuSpec, ModelSpec
from planner.costmodel import DeviceProfile
from planner.errors import SpecplanError
from planner.proposers.catalog import head_catalog
from planner.units import GB

__all__ = ["AppliedCalibration", "apply_calibration", "calibrated_device", "measured_time_s", "measured_verify",
           "per_candidate_verify", "verify_extrapolation_warning"]


@dataclass(frozen=True)
class AppliedCalibration:
    """What of a calibration file is used for one request."""

    path: str
    acceptance: FittedAcceptance | None
    target_timing: FittedTiming | None
    draft_timing: FittedTiming | None
    timings: tuple[TimingPoint, ...]
    warnings: tuple[str, ...]
    verify_curves: tuple[FittedVerify, ...] = ()  # the target's measured r(n), when the timings apply


def _same_model(recorded: str | None, spec: ModelSpec | None) -> bool:
    """True when a calibration's model name is this release (catalogue) or this checkpoint (path).

    Names are compared as released repos, so a calibration of the base release does not
    stand for the Instruct one: their acceptance differs.
    """
    if recorded is None or spec is None:
        return False
    entry = model_catalog().index.get(recorded.strip().lower())
    if entry is not None and spec.catalog_id is not None:
        return entry.id == spec.catalog_id
    try:
        name = model_name(recorded)
    except SpecplanError:
        return False
    return name.lower() == spec.id.lower()


def _same_device(cal: CalibrationFile, gpu: GpuSpec) -> bool:
    d = cal.device
    return d is not None and (d.catalog_id == gpu.id or d.name.lower() in {n.lower() for n in gpu.names})


def _best_acceptance(cal: CalibrationFile) -> FittedAcceptance | None:
    """Greedy (or server) acceptance first: it is what deployments at temperature 0 see."""
    order = {"server": 0, "greedy": 1, "sampling": 2}
    fits = sorted(cal.fitted_acceptance, key=lambda f: order[f.mode])
    return fits[0] if fits else None


def _canonical_head(name: str) -> str:
    """A head's catalogue id when head_db knows the name, else the name itself (case-insensitive)."""
    entry = head_catalog().index.get(name.strip().lower())
    return (entry.id if entry is not None else name.strip()).lower()


def _same_proposer(cal: CalibrationFile, method: str, head: str | None) -> bool:
    """True when the file measured this plan's method with this head.

    MTP layers belong to the target (checked with it), and lookups run no model, so only EAGLE /
    EAGLE-3 heads are compared, by catalogue id or as typed.
    """
    if cal.method != method:
        return False
    if method not in ("eagle", "eagle3") or head is None:
        return True
    return cal.head is not None and _canonical_head(cal.head) == _canonical_head(head)


def apply_calibration(cal: CalibrationFile, path: str, gpu: GpuSpec, target: ModelSpec,
                      draft: ModelSpec | None, engine: str | None = None, *, method: str = "draft",
                      head: str | None = None) -> AppliedCalibration:
    """Pick what applies to this GPU, engine, pair and proposal method; explain what does not.

    Timings describe one engine's kernels on one device (the probe times the
    transformers path), so they apply only when both match. Measured acceptance belongs to
    the method and head it was measured with (``method``: draft, eagle, eagle3, mtp, ngram,
    suffix; ``head``: the plan's Proposer.name): a draft model's alpha says nothing about an
    EAGLE-3 head's, and the reverse. Files written before methods existed are draft-model files.
    """
    warnings = []
    method = method.strip().lower()
    target_ok = _same_model(cal.target.id, target)
    proposer_ok = _same_proposer(cal, method, head)
    if method == "draft":
        pair_ok = target_ok and (draft is None or _same_model(cal.draft.id if cal.draft else None, draft))
    else:
        pair_ok = target_ok
    device_ok = _same_device(cal, gpu)
    if cal.method != method:
        warnings.append(f"{path} was measured with --method {cal.method}; this plan runs {method}: its acceptance "
                        "is not used")
    elif not proposer_ok:
        warnings.append(f"{path} was measured with head {cal.head or 'unknown'}, not {head}: its acceptance is not used")
    if not pair_ok and (cal.method == method or not target_ok):
        measured = f"{cal.target.id} + {cal.draft.id if cal.draft else 'no draft'}"
        warnings.append(f"{path} was measured on {measured}, not this pair: using catalogue defaults and priors")
    if cal.partial:
        warnings.append(f"{path} is partial ({cal.partial_reason}): fewer measurements than planned")
    engine_ok = engine is None or cal.engine in (None, engine)
    if pair_ok and not device_ok and cal.timings:
        where = cal.device.name if cal.device else "an unknown device"
        warnings.append(f"{path} timings were measured on {where}, not {gpu.id}: timings from the catalogue")
    elif pair_ok and not engine_ok and cal.timings:
        warnings.append(f"{path} timings were measured with {cal.engine}, not {engine}: timings from the catalogue")
    timing_ok = pair_ok and device_ok and engine_ok
    by_role = {f.role: f for f in cal.fitted_timing}
    speculates = draft is not None if method == "draft" else True
    return AppliedCalibration(
        path=path,
        acceptance=_best_acceptance(cal) if pair_ok and proposer_ok and speculates else None,
        target_timing=by_role.get("target") if timing_ok else None,
        # the draft role is the draft model's passes: a head or MTP step is not timed by them
        draft_timing=by_role.get("draft") if timing_ok and method == "draft" and cal.method == "draft" else None,
        timings=tuple(cal.timings) if timing_ok else (),
        warnings=tuple(warnings),
        verify_curves=tuple(cal.fitted_verify) if timing_ok else (),
    )


def calibrated_device(device: DeviceProfile, fitted: FittedTiming | None) -> DeviceProfile:
    """The device profile with the fitted efficiency and overhead of one model in place of the defaults.

    When the fit recorded the bandwidth it divided by, eta is rescaled so that the achieved bytes/s
    (bandwidth x eta) is the measured one on a device whose bandwidth figure was re-measured since.
    """
    if fitted is None:
        return device
    eta = fitted.eta_mem
    if fitted.bandwidth_gb_s is not None and device.bandwidth_bytes_s > 0:
        eta = eta * fitted.bandwidth_gb_s * GB / device.bandwidth_bytes_s
    return replace(device, eta_mem=eta, eta_mem_quant=eta, eta_kv=eta,
                   tau_layer_s=0.0, tau_step_s=fitted.overhead_s, sampling_s_per_vocab=0.0, logits_copy_s_per_vocab=0.0,
                   decode_hides_host=0.0)  # the fitted overhead is what the measured passes showed


def measured_time_s(applied: AppliedCalibration, role: str, batch: int, context: float, new_tokens: int) -> float | None:
    """The measured median time of the closest timed shape (same role, batch, new tokens), if any."""
    same = [p for p in applied.timings if p.role == role and p.batch == batch and p.new_tokens == new_tokens]
    if new_tokens == 1 and any(p.bench_test == "tg" for p in same):
        same = [p for p in same if p.bench_test == "tg"]  # decode is llama-bench's tg, not pp1 (see TimingPoint)
    if not same:
        return None
    nearest = min(same, key=lambda p: abs(p.context - context))
    return nearest.median_s if abs(nearest.context - context) <= max(0.25 * context, 64) else None


def measured_verify(applied: AppliedCalibration | None, batch: int, context: float):  # type: ignore[no-untyped-def]
    """(the plan's verify-ratio hook, the curve it uses) for this batch and decode context, or (None, None).

    The hook is planner.search.VerifyRatio: verify_ratio with the nearest-context target curve bound.
    """
    curve = pick_verify_curve(applied.verify_curves, batch, context) if applied is not None else None
    return (None, None) if curve is None else (partial(verify_ratio, curve), curve)


def verify_extrapolation_warning(path: str, curve: FittedVerify | None, k: int) -> list[str]:
    """A warning when the verify pass of k + 1 tokens lies beyond the curve's measured n."""
    if curve is None or k + 1 <= curve.new_tokens[-1]:
        return []
    return [f"{path}: the verify curve was measured up to {curve.new_tokens[-1]} tokens; r({k + 1}) is extrapolated "
            f"from r({curve.new_tokens[-1]}) with the cost model's shape (probe with --k-max {k} to measure it)"]


def per_candidate_verify(curves: list[FittedVerify | None]):  # type: ignore[no-untyped-def]
    """One verify-ratio hook for candidates stacked on axis 0 (recommend): row i uses curve i, or the cost model."""
    if not any(c is not None for c in curves):
        return None

    def hook(n, model):  # type: ignore[no-untyped-def]
        base = model(n)  # the cost model's r for every candidate, computed once
        out = np.array(np.broadcast_to(base, np.broadcast_shapes(np.shape(base), (len(curves), 1, 1))))
        for i, curve in enumerate(curves):
            if curve is not None:
                out[i] = np.broadcast_to(verify_ratio(curve, n, model), out.shape)[i]
        return out

    return hook

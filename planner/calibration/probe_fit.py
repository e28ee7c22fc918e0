"""Fit the hf probe's pass timings: eta / overhead per model (fit_timings) and the target's verify curve r(n)."""

from __future__ import annotations

from typing import Any

from planner.calibration.schema import FittedTiming, FittedVerify, TimingPoint
from planner.errors import SpecplanError
from planner.units import GB

__all__ = ["fit_probe_timings", "peak_bandwidth_gpu"]


def peak_bandwidth_gpu(cfg: Any, device: Any) -> Any:
    """The GpuSpec whose peak bandwidth the fit divides by: --gpu, or this machine's (NVML)."""
    from planner.catalog.lookup import find_gpu

    from planner.calibration.host import host_device, is_host_device

    if cfg.gpu and is_host_device(cfg.gpu) or not cfg.gpu and device.type == "cpu":
        return host_device().spec  # the fit divides by the measured copy bandwidth --gpu cpu plans with
    if cfg.gpu and cfg.gpu.lower() != "local":
        return find_gpu(cfg.gpu)
    if device.type != "cuda":
        return None
    from planner.calibration.nvml import local_group

    try:
        return local_group()[0]
    except SpecplanError:
        return None


def fit_probe_timings(cfg: Any, timings: list[TimingPoint],
                      device: Any) -> tuple[list[FittedTiming], list[FittedVerify], list[str]]:
    """(eta/overhead per model when the device's peak bandwidth is known, the target's verify curves, notes).

    The verify curve needs no bandwidth: it is the target's own pass times over n = 1..k+1 at each
    (batch, context) of the grid, all timed by the same time_pass, divided by the n = 1 pass.
    """
    from planner.calibration.fitting import fit_timings
    from planner.calibration.verify_curve import fit_verify_curves
    from planner.catalog.lookup import find_model
    from planner.catalog.precisions import kv_format, weight_format
    from planner.costmodel import model_profile

    curves = fit_verify_curves(timings, "hf probe time_pass (new_tokens 1..k+1), fastest repeats")
    gpu = peak_bandwidth_gpu(cfg, device)
    if gpu is None:
        return [], curves, ["no peak bandwidth for this device (pass --gpu): raw timings only, no eta fit"]
    precision = {"auto": "bf16", "bf16": "bf16", "fp16": "fp16"}.get(cfg.dtype)
    if precision is None:
        return [], curves, [f"no eta fit for {cfg.dtype} weights (the cost model plans 16-bit or quantized weights)"]
    profiles = {role: model_profile(find_model(src).spec, weight_format(precision), kv_format("fp16"))
                for role, src in (("target", cfg.target), ("draft", cfg.draft))}
    return fit_timings(timings, profiles, gpu.memory_bandwidth_gb_s * GB), curves, []

"""A chain of proposals from a head, MTP module or host lookup, priced like a draft model's round.

The head's step is a pass of its own profile (planner.costmodel.proposer_profile) on the draft
role's device, so ``planner.search.price_rounds`` prices c, r, the engine's loop and the speedup
exactly as for a draft model. A host lookup has no pass: its proposer is a profile that reads and
computes nothing on a device without launch costs (c = 0), and its host time joins the round's
fixed cost.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from numpy.typing import ArrayLike

from planner.costmodel import DeviceProfile, ModelProfile, device_profile, model_profile
from planner.costmodel.proposer_profile import proposer_profile
from planner.draftloop import LoopSpec
from planner.memory import FitRequest
from planner.proposers.host import host_round_us
from planner.search import RoundPrices, VerifyRatio, price_rounds

__all__ = ["MethodProfiles", "method_profiles", "price_method_rounds", "method_loop", "IDLE_PROFILE"]

# What a host lookup runs on the GPU per proposal: nothing.
IDLE_PROFILE = ModelProfile(layers=0, hidden=0, vocab=0, dense_weight_bytes=0.0, expert_bytes=0.0, num_experts=0,
                            experts_per_token=0, kv_bytes_per_token_full=0.0, kv_bytes_per_token_window=0.0,
                            window_tokens=0, flops_per_token=0.0, attn_flops_per_token_ctx=0.0, quantized=False,
                            dtype_index=0, shard=1)


@dataclass(frozen=True)
class MethodProfiles:
    """Target and proposer profiles with their devices, for one GPU count (proposer None: host lookup)."""

    target: ModelProfile
    proposer: ModelProfile | None
    device: DeviceProfile
    proposer_device: DeviceProfile


def method_profiles(req: FitRequest, gpus: int, server_version: str | None = None, k: ArrayLike = 1,
                    target_device: DeviceProfile | None = None) -> MethodProfiles:
    """Profiles of the request's target and proposer on ``gpus`` GPUs; the head shares the target's TP group.

    ``target_device`` replaces the catalogue device (a calibration's fitted timing).
    """
    assert req.proposer is not None
    kernels = req.engine.kernel_line_for_version(server_version, req.gpu.memory_class)
    tp = gpus if req.engine.parallelism == "tensor" else 1
    target = model_profile(req.target, req.precision, req.kv, tp, req.gpu)
    device = target_device or device_profile(req.gpu, req.engine, gpus, kernels=kernels)
    head = proposer_profile(req.proposer, req.target, req.precision, req.kv, tp, req.gpu, k)
    if head is None:
        idle = replace(device, tau_layer_s=0.0, tau_step_s=0.0, sampling_s_per_vocab=0.0, logits_copy_s_per_vocab=0.0,
                       gpus=1)
        return MethodProfiles(target, None, device, idle)
    return MethodProfiles(target, head, device, device_profile(req.gpu, req.engine, gpus, role="draft", kernels=kernels))


def method_loop(loop: LoopSpec, method: str, context: float, k: int) -> LoopSpec:
    """The engine's loop for a proposer: a lookup's host time is part of every round's fixed cost.

    Heads and lookups propose a fixed k (no p-min threshold: llama.cpp's n-gram types and vLLM's
    proposers return what they found, up to k), so a threshold rule falls back to a fixed one.
    """
    if loop.rule != "fixed" or loop.schedule != "fixed":
        loop = replace(loop, rule="fixed", schedule="fixed", p_min=0.0, n_min=0)
    if method in ("ngram", "suffix"):
        loop = replace(loop, fixed_round_us=loop.fixed_round_us + host_round_us(method, context, k))
    return loop


def price_method_rounds(p: MethodProfiles, batch: ArrayLike, context: ArrayLike, k: ArrayLike, alpha: ArrayLike,
                        loop: LoopSpec | None, mean_length: ArrayLike | None = None,
                        verify_ratio: VerifyRatio | None = None) -> RoundPrices:
    """price_rounds with the proposer's profile as the draft (the idle profile for a host lookup)."""
    head = p.proposer if p.proposer is not None else IDLE_PROFILE
    return price_rounds(p.target, head, p.device, p.proposer_device, batch, context, k, alpha, mean_length,
                        loop=loop, verify_ratio=verify_ratio)


"""Roofline + fixed-overhead cost model of one forward pass (DESIGN.md section 3).

For a model on a GPU group at batch B, n new tokens per sequence and context L:

    bytes = streamed weights (MoE: expected distinct experts) + B*L*kv_bytes + B*n*kv_bytes
    flops = 2 * active_params * B * n + 4 * layers * heads * head_dim * B * n * L
    t = max(bytes / (bw * eta_mem), flops / (peak * eta_compute))
        + layers * tau_layer + tau_step + host sampling + GPU-to-GPU communication

Every function is written with numpy broadcasting so that batch, context and the
number of new tokens may be arrays: the recommendation search evaluates thousands
of configurations in one call.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from planner.catalog.precisions import KvFormat, WeightFormat
from planner.catalog.schemas import GpuSpec, ModelSpec
from planner.engines import EngineSpec
from planner.footprint import dense_mlp_params, kv_elements_per_token_per_layer, parameter_counts, weight_bytes
from planner.units import GB, MICRO, NANO, TERA

__all__ = [
    "ModelProfile",
    "DeviceProfile",
    "PassCost",
    "DTYPES",
    "stack_profiles",
    "model_profile",
    "device_profile",
    "peak_tflops",
    "expected_experts_touched",
    "pass_cost",
    "decode_cost",
    "verify_cost",
    "roofline_decode_s",
]

DTYPES = ("fp16", "fp8", "int8", "fp4")  # tensor-core paths a weight format can run on
_ACT_BYTES = 2  # activations exchanged between GPUs in bf16/fp16
_ALLREDUCES_PER_LAYER = 2  # after attention and after the MLP (Megatron-style tensor parallel)
_FLOPS_PER_MAC = 2
_ATTN_FLOPS_PER_CTX = 4  # QK^T and PV: 2 matmuls x 2 flops per multiply-accumulate
# Without a published dense FP16 tensor figure: GeForce Ampere/Ada run FP16 tensor ops with
# FP32 accumulation at twice their FP32 rate (GA102/AD102 whitepapers); Apple and AMD
# consumer GPUs run FP16 at about their FP32 rate.
_TENSOR_OVER_FP32_NVIDIA = 2.0
_TENSOR_OVER_FP32_OTHER = 1.0
# Last resort, no compute figure at all: a ridge point of ~100 flops per byte of bandwidth,
# typical of GPUs of the last decade (H100: 989 TF / 3.35 TB/s = 295; T4: 65 / 0.32 = 203).
_FALLBACK_FLOPS_PER_BYTE = 100.0
_QUANT_BITS_THRESHOLD = 8  # GGUF blocks below this many bits run dequantising kernels
# Extra latency per ring step of an all-reduce, by link (a step is one GPU-to-GPU hop);
# NVLink and Infinity Fabric hops cost ~1-2 us, a PCIe hop through the host bridge ~5 us.
_HOP_LATENCY_US = {"nvlink": 1.0, "nvlink-c2c": 1.0, "infinity-fabric": 2.0, "pcie": 5.0, "none": 0.0}


@dataclass(frozen=True)
class ModelProfile:
    """Per-pass constants of one model at one weight/KV format on one GPU of a group."""

    layers: int
    hidden: int
    vocab: int
    dense_weight_bytes: float  # non-expert weights streamed per pass on the GPU, bytes
    expert_bytes: float  # one routed expert summed over the MoE layers, bytes (0 if dense)
    num_experts: int
    experts_per_token: int
    kv_bytes_per_token_full: float  # KV bytes per token over full-attention layers, bytes
    kv_bytes_per_token_window: float  # KV bytes per token over sliding-window layers, bytes
    window_tokens: int
    flops_per_token: float  # 2 x active parameters on the GPU, flops per new token
    attn_flops_per_token_ctx: float  # attention flops per new token per cached token
    quantized: bool
    dtype_index: int  # position of the tensor path in DTYPES (fp16, fp8, int8, fp4)
    shard: int  # GPUs the model's matrices are split over (tensor parallel), else 1


@dataclass(frozen=True)
class DeviceProfile:
    """What the GPU group and engine give a pass: bandwidth, compute, overheads (SI units)."""

    bandwidth_bytes_s: float
    peak_flops: tuple[float, float, float, float]  # dense peak per tensor path, in DTYPES order
    eta_mem: float
    eta_mem_quant: float
    eta_kv: float
    eta_compute: float
    tau_layer_s: float
    tau_step_s: float
    sampling_s_per_vocab: float
    link_latency_s: float
    gpus: int
    link_bytes_s: float
    hop_latency_s: float
    tensor_parallel: bool


def stack_profiles(profiles: list[Any], shape: tuple[int, ...]) -> Any:
    """Stack ModelProfiles or DeviceProfiles field by field into arrays of ``shape``.

    The cost functions broadcast, so a search puts candidates on one axis and
    GPUs on another and prices every combination in one call.
    """
    cls = type(profiles[0])
    arrays = {}
    for f in fields(cls):
        values = [getattr(p, f.name) for p in profiles]
        if f.name == "peak_flops":
            arrays[f.name] = tuple(np.reshape([v[i] for v in values], shape) for i in range(len(DTYPES)))
        else:
            arrays[f.name] = np.reshape(np.asarray(values), shape)
    return cls(**arrays)


@dataclass(frozen=True)
class PassCost:
    """Time of one forward pass by component, seconds (arrays broadcast over the inputs)."""

    weights_s: NDArray[np.float64]
    kv_s: NDArray[np.float64]
    compute_s: NDArray[np.float64]
    comm_s: NDArray[np.float64]
    overhead_s: NDArray[np.float64]

    @property
    def memory_s(self) -> NDArray[np.float64]:
        """Time to move the bytes at the achieved bandwidth, s."""
        return self.weights_s + self.kv_s

    @property
    def total_s(self) -> NDArray[np.float64]:
        """Wall time of the pass, s: the slower of memory and compute, plus fixed costs."""
        return np.maximum(self.memory_s, self.compute_s) + self.comm_s + self.overhead_s

    @property
    def compute_bound(self) -> NDArray[np.bool_]:
        """True where the tensor cores, not the memory bus, set the pace."""
        return self.compute_s > self.memory_s


def peak_tflops(gpu: GpuSpec, dtype: str) -> float:
    """Dense peak TFLOPS of the tensor path a weight format runs on (fp16, fp8, int8, fp4).

    Falls back to the next wider path the part has, then to the FP16 estimates above.
    """
    fp16 = gpu.fp16_tensor_tflops
    if fp16 is None and gpu.fp32_tflops is not None:
        ratio = _TENSOR_OVER_FP32_NVIDIA if gpu.vendor == "nvidia" else _TENSOR_OVER_FP32_OTHER
        fp16 = gpu.fp32_tflops * ratio
    if fp16 is None:
        fp16 = gpu.memory_bandwidth_gb_s * GB * _FALLBACK_FLOPS_PER_BYTE / TERA
    by_dtype = {"fp8": gpu.fp8_tensor_tflops, "int8": gpu.int8_tensor_tops, "fp4": gpu.fp4_tensor_tflops}
    return by_dtype.get(dtype) or fp16


def _dequantising(fmt: WeightFormat) -> bool:
    """True for formats whose matmul kernels unpack weights on the fly (lower achieved bandwidth).

    Weight-only integer formats (AWQ, GPTQ, int8 weight-only) and GGUF blocks under
    8 bits do; 16-bit, FP8, W8A8 int8 and GGUF q8_0 stream at about the 16-bit rate.
    """
    weight_only = fmt.kind == "int-quant" and fmt.compute_dtype == "fp16"
    return weight_only or (fmt.kind == "gguf" and fmt.bits_per_weight < _QUANT_BITS_THRESHOLD)


def model_profile(m: ModelSpec, fmt: WeightFormat, kv: KvFormat, shard: int = 1) -> ModelProfile:
    """Precompute what one pass of ``m`` reads and computes on one GPU of a ``shard``-way split."""
    counts = parameter_counts(m)
    wb = weight_bytes(m, fmt, counts)
    bytes_per_param = wb.linear / counts.linear
    embedding_bytes = wb.embeddings * counts.embedding / max(counts.embedding + counts.lm_head, 1)
    expert = 0.0
    if m.moe is not None:
        moe_layers = m.num_layers - m.moe.first_dense_layers
        expert = moe_layers * dense_mlp_params(m, m.moe.expert_intermediate_size) * bytes_per_param
        routed_total = expert * m.moe.num_experts
    else:
        routed_total = 0.0
    dense = wb.total - embedding_bytes - routed_total
    per_layer_kv = kv_elements_per_token_per_layer(m, shard) * kv.bytes_per_element
    windowed = m.sliding_window_layers if m.sliding_window_tokens else 0
    heads = m.num_attention_heads
    return ModelProfile(
        layers=m.num_layers, hidden=m.hidden_size, vocab=m.vocab_size,
        dense_weight_bytes=dense / shard, expert_bytes=expert / shard,
        num_experts=m.moe.num_experts if m.moe else 0, experts_per_token=m.moe.experts_per_token if m.moe else 0,
        kv_bytes_per_token_full=per_layer_kv * (m.num_layers - windowed),
        kv_bytes_per_token_window=per_layer_kv * windowed, window_tokens=m.sliding_window_tokens or 0,
        flops_per_token=_FLOPS_PER_MAC * counts.streamed_per_token / shard,
        attn_flops_per_token_ctx=_ATTN_FLOPS_PER_CTX * m.num_layers * heads * m.head_dim / shard,
        quantized=_dequantising(fmt), dtype_index=DTYPES.index(fmt.compute_dtype), shard=shard,
    )


def device_profile(gpu: GpuSpec, engine: EngineSpec, gpus: int = 1, host_sampling: bool = True) -> DeviceProfile:
    """The GPU group as the cost model sees it.

    ``host_sampling`` False drops the per-token sampling cost, for kernel-only
    benchmarks (llama-bench) that never sample.
    """
    c = engine.cost_for(gpu.memory_class)
    return DeviceProfile(
        bandwidth_bytes_s=gpu.memory_bandwidth_gb_s * GB,
        peak_flops=tuple(peak_tflops(gpu, d) * TERA for d in DTYPES),  # type: ignore[arg-type]
        eta_mem=c.eta_mem, eta_mem_quant=c.eta_mem_quant, eta_kv=c.eta_kv, eta_compute=c.eta_compute,
        tau_layer_s=c.tau_layer_us * MICRO, tau_step_s=c.tau_step_us * MICRO,
        sampling_s_per_vocab=c.sampling_ns_per_vocab * NANO if host_sampling else 0.0,
        link_latency_s=c.link_latency_us * MICRO, gpus=gpus,
        # Parts without a link run alone; an infinite link keeps the (zero) traffic term finite.
        link_bytes_s=gpu.interconnect.unidirectional_gb_s * GB or np.inf,
        hop_latency_s=_HOP_LATENCY_US[gpu.interconnect.kind] * MICRO,
        tensor_parallel=engine.parallelism == "tensor",
    )


def expected_experts_touched(num_experts: ArrayLike, experts_per_token: ArrayLike, tokens: ArrayLike) -> NDArray[np.float64]:
    """Expected distinct experts one MoE layer reads for ``tokens`` routed tokens (uniform top-k).

    Each token picks k of E experts; an expert stays unread with probability (1 - k/E)^T.
    """
    t = np.asarray(tokens, dtype=np.float64)
    e = np.maximum(num_experts, 1)  # dense models (E = 0) touch nothing here
    return np.where(np.asarray(num_experts) > 0, e * (1.0 - (1.0 - experts_per_token / e) ** t), 0.0)


def _kv_read_bytes(p: ModelProfile, context: NDArray[np.float64]) -> NDArray[np.float64]:
    """KV bytes one sequence reads per pass at ``context`` cached tokens."""
    window = np.minimum(context, p.window_tokens)  # window bytes are 0 for models without one
    return p.kv_bytes_per_token_full * context + p.kv_bytes_per_token_window * window


def _comm_s(p: ModelProfile, d: DeviceProfile, tokens: NDArray[np.float64]) -> NDArray[np.float64]:
    """GPU-to-GPU time of one pass: ring all-reduces (tensor parallel) or layer hand-offs."""
    size = tokens * p.hidden * _ACT_BYTES
    steps = 2 * (d.gpus - 1)  # ring all-reduce: reduce-scatter then all-gather
    per_allreduce = steps / d.gpus * size / d.link_bytes_s + d.link_latency_s + steps * d.hop_latency_s
    tensor = _ALLREDUCES_PER_LAYER * p.layers * per_allreduce
    layer_split = (d.gpus - 1) * (size / d.link_bytes_s + d.link_latency_s + d.hop_latency_s)
    return np.where(d.gpus > 1, np.where(d.tensor_parallel, tensor, layer_split), 0.0)


def pass_cost(p: ModelProfile, d: DeviceProfile, batch: ArrayLike, context: ArrayLike, new_tokens: ArrayLike) -> PassCost:
    """Time of one forward pass over ``new_tokens`` per sequence for ``batch`` sequences.

    A layer split (llama.cpp, transformers) runs the GPUs one after another, so a
    single stream sees one GPU's bandwidth for the whole model; tensor parallelism
    splits every matrix (``p.shard``) and adds all-reduces.
    """
    b, ctx, n = (np.asarray(x, dtype=np.float64) for x in (batch, context, new_tokens))
    tokens = b * n
    weights = p.dense_weight_bytes + p.expert_bytes * expected_experts_touched(p.num_experts, p.experts_per_token, tokens)
    kv = b * (_kv_read_bytes(p, ctx) + n * (p.kv_bytes_per_token_full + p.kv_bytes_per_token_window))
    eta = np.where(p.quantized, d.eta_mem_quant, d.eta_mem)
    flops = tokens * (p.flops_per_token + p.attn_flops_per_token_ctx * ctx)
    peak = np.choose(p.dtype_index, d.peak_flops)
    overhead = p.layers * d.tau_layer_s + d.tau_step_s + tokens * p.vocab * d.sampling_s_per_vocab
    return PassCost(
        weights_s=weights / (d.bandwidth_bytes_s * eta) + np.zeros_like(tokens),
        kv_s=kv / (d.bandwidth_bytes_s * d.eta_kv),
        compute_s=flops / (peak * d.eta_compute),
        comm_s=_comm_s(p, d, tokens),
        overhead_s=overhead + np.zeros_like(tokens),
    )


def decode_cost(p: ModelProfile, d: DeviceProfile, batch: ArrayLike = 1, context: ArrayLike = 0) -> PassCost:
    """One plain decode step (one new token per sequence)."""
    return pass_cost(p, d, batch, context, 1)


def verify_cost(p: ModelProfile, d: DeviceProfile, k: ArrayLike, batch: ArrayLike = 1, context: ArrayLike = 0) -> PassCost:
    """One verification pass over k drafted tokens plus the bonus position (k + 1 tokens)."""
    return pass_cost(p, d, batch, context, np.asarray(k) + 1)


def roofline_decode_s(p: ModelProfile, gpu: GpuSpec, context: float = 0.0) -> float:
    """Pure roofline decode time at batch 1, s: bytes / peak bandwidth, no efficiency, no overheads."""
    kv = float(_kv_read_bytes(p, np.asarray(context, dtype=np.float64)))
    return (p.dense_weight_bytes + p.expert_bytes * p.experts_per_token + kv) / (gpu.memory_bandwidth_gb_s * GB)

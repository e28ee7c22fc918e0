"""What one pass of a model reads and computes, and what a GPU group and engine give it.

ModelProfile holds per-operator weight counts of one model on one GPU of a split;
DeviceProfile holds bandwidth, peak rates, efficiencies, kernel regimes and overheads
of one GPU group under one engine, for one role of pass (target, draft, bench).
Both are frozen dataclasses of plain numbers so ``stack_profiles`` can turn a list of
them into arrays and the cost functions price every combination in one call.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from planner.catalog.precisions import KvFormat, WeightFormat
from planner.catalog.schemas import GpuSpec, ModelSpec
from planner.catalog.tensor_paths import MatmulPath, matmul_dtype, own_path
from planner.engines import EngineSpec
from planner.errors import SpecplanError
from planner.footprint import (
    attention_params,
    kv_elements_per_token_per_layer,
    parameter_counts,
    weight_bytes,
)
from planner.units import GB, MICRO, NANO, TERA

__all__ = ["ModelProfile", "DeviceProfile", "DTYPES", "ROLES", "stack_profiles", "model_profile", "device_profile",
           "peak_tflops"]

DTYPES = ("fp16", "fp8", "int8", "fp4")  # tensor-core paths a weight format can run on
ROLES = ("target", "draft", "bench")  # bench: a kernel-only benchmark (llama-bench) that never samples
Role = Literal["target", "draft", "bench"]
_FLOPS_PER_MAC = 2
_ATTN_FLOPS_PER_CTX = 4  # QK^T and PV: 2 matmuls x 2 flops per multiply-accumulate
_LOGIT_BYTES = 4  # logits leave the GPU as float32
# Without a published dense FP16 tensor figure: GeForce Ampere/Ada run FP16 tensor ops with
# FP32 accumulation at twice their FP32 rate (GA102/AD102 whitepapers); Apple and AMD
# consumer GPUs run FP16 at about their FP32 rate.
_TENSOR_OVER_FP32_NVIDIA = 2.0
_TENSOR_OVER_FP32_OTHER = 1.0
# dp4a: 4 int8 multiply-adds per lane per clock where an FP32 FMA does 1 (2 flops), so
# int8 dot ops run at 4 x the FP32 flop rate (A100: 4 x 19.5 = 78 TOPS).
_DP4A_OVER_FP32 = 4.0
# Last resort, no compute figure at all: a ridge point of ~100 flops per byte of bandwidth,
# typical of GPUs of the last decade (H100: 989 TF / 3.35 TB/s = 295; T4: 65 / 0.32 = 203).
_FALLBACK_FLOPS_PER_BYTE = 100.0
_QUANT_BITS_THRESHOLD = 8  # GGUF blocks below this many bits run dequantising kernels
# Extra latency per ring step of an all-reduce, by link (a step is one GPU-to-GPU hop);
# NVLink and Infinity Fabric hops cost ~1-2 us, a PCIe hop through the host bridge ~5 us.
# ethernet (RoCE, NIC on die): an RDMA hop, taken as slow as a PCIe one.
_HOP_LATENCY_US = {"nvlink": 1.0, "nvlink-c2c": 1.0, "infinity-fabric": 2.0, "ethernet": 5.0, "pcie": 5.0, "none": 0.0}
_NO_QUANT_KERNELS = 0  # quant_matvec_max_rows for engines without GGUF kernels


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
    # Per-operator parameters on the GPU (all layers): the split of dense_weight_bytes.
    qkv_params: float = 0.0
    o_params: float = 0.0
    mlp_params: float = 0.0  # dense MLPs, shared experts, routers, norms
    lm_head_params: float = 0.0
    expert_params: float = 0.0  # one routed expert over the MoE layers
    bytes_per_param: float = 2.0  # linear layers
    lm_head_bytes_per_param: float = 2.0
    block_quant: bool = False  # GGUF block formats (q8_0 ... q2_k): the engine's quantised kernels
    kquant: bool = False  # GGUF K-quant super-blocks (q6_k, q5_k_m, q4_k_m, ...): their own kernel gates on Metal


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
    sampling_s_per_vocab: float  # host time per vocab entry per sampled token, this role's sampler
    link_latency_s: float
    gpus: int
    link_bytes_s: float
    hop_latency_s: float
    tensor_parallel: bool
    logits_copy_s_per_vocab: float = 0.0  # device-to-host copy per vocab entry per sampled token
    gemm_matvec_rows: float = 1.0  # GEMMs up to this many rows run unpadded (mat-vec)
    gemm_tile_small: float = 1.0  # M tile of small GEMMs (rows)
    gemm_tile_mid: float = 1.0  # M tile between the small and the large one (rows; = small when none)
    gemm_tile_large: float = 1.0  # M tile above the others: M pads to a multiple of it (rows)
    quant_matvec_rows: float = 0.0  # rows served by the quantised mat-vec kernel (0: none)
    quant_matvec_dot_flops: float = np.inf  # achieved dot rate of the mat-vec, per extra row
    quant_matmul_tile_rows: float = 1.0
    quant_matmul_tile_step: float = 1.0
    quant_matmul_dot_flops: float = np.inf
    kquant_matvec_rows: float = 1.0  # K-quants below this many rows re-read the weights per row (plain mat-vec)
    # 1.0 where the engine's plain decode overlaps each step's host work (tau_step) with the GPU's
    # (SGLang's overlap scheduler) and speculation runs without that overlap; 0.0 elsewhere.
    decode_hides_host: float = 0.0


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


def dp4a_tops(gpu: GpuSpec) -> float:
    """int8 dot-product ops/s of the CUDA cores (dp4a), TOPS: 4 x the FP32 rate, else the FP16 path."""
    return gpu.fp32_tflops * _DP4A_OVER_FP32 if gpu.fp32_tflops else peak_tflops(gpu, "fp16")


def _dot_units_flops(gpu: GpuSpec) -> dict[str, float]:
    """Peak rate of each unit a quantised kernel can run its dot products on, ops/s.

    dp4a: CUDA cores' int8 dot (4 x FP32); int8_tensor: the int8 tensor path; fp32: the
    shader ALUs' FP32 rate (Apple: the only figure published; FP16 runs at about the same).
    """
    fp32 = gpu.fp32_tflops or peak_tflops(gpu, "fp16")
    return {"dp4a": dp4a_tops(gpu) * TERA, "int8_tensor": peak_tflops(gpu, "int8") * TERA, "fp32": fp32 * TERA}


def _dequantising(fmt: WeightFormat, path: MatmulPath) -> bool:
    """True for formats whose matmul kernels unpack weights on the fly (lower achieved bandwidth).

    Weight-only formats (AWQ, GPTQ, int8 weight-only, FP8/FP4 on GPUs without those tensor
    cores, gpt-oss's MXFP4 experts) and GGUF blocks under 8 bits do; 16-bit, native FP8/FP4,
    W8A8 int8 and GGUF q8_0 stream at about the 16-bit rate.
    """
    return path.weight_only or (fmt.kind == "gguf" and fmt.bits_per_weight < _QUANT_BITS_THRESHOLD)


def _local_attention(m: ModelSpec) -> tuple[int, int]:
    """(layers, tokens) that attend locally: sliding-window and chunked layers, read like one window.

    A chunked layer at context L reads the (L mod chunk) + 1 tokens of its chunk, at most
    the chunk: priced as a window of the chunk size (an upper bound, exact when the chunk
    is full). No released model has both kinds; if one did, the wider span is used.
    """
    sliding = m.sliding_window_layers if m.sliding_window_tokens else 0
    chunked = m.chunked_attention_layers if m.chunked_attention_tokens else 0
    spans = [t for n, t in ((sliding, m.sliding_window_tokens), (chunked, m.chunked_attention_tokens)) if n and t]
    return sliding + chunked, max(spans, default=0)


def model_profile(m: ModelSpec, fmt: WeightFormat, kv: KvFormat, shard: int = 1,
                  gpu: GpuSpec | None = None) -> ModelProfile:
    """Precompute what one pass of ``m`` reads and computes on one GPU of a ``shard``-way split.

    ``gpu`` decides the tensor path of FP8/FP4 formats (``matmul_dtype``: weight-only at the
    16-bit rate where the GPU lacks it); None takes the format's own path.
    """
    counts = parameter_counts(m)
    wb = weight_bytes(m, fmt, counts)
    path = matmul_dtype(fmt, gpu) if gpu is not None else own_path(fmt)
    # Routed experts may be in another format than the rest (experts_only): priced apart.
    bytes_per_param = (wb.linear - wb.experts) / max(counts.linear - counts.experts, 1)
    head_bpp = wb.embeddings / max(counts.embedding + counts.positions + counts.lm_head, 1)
    # The input embedding is a lookup, not streamed; a tied one is streamed anyway, as the lm_head.
    lm_head = float(m.vocab_size * m.hidden_size)
    embedding_bytes = 0.0 if m.tie_word_embeddings else counts.embedding * head_bpp
    embedding_bytes += counts.positions * head_bpp
    experts = m.moe.num_experts if m.moe else 0
    expert_params = counts.experts / experts if experts else 0.0  # one expert over the MoE layers
    expert_bytes = wb.experts / experts if experts else 0.0
    # The vision encoder is loaded but not read when decoding text.
    dense = wb.total - wb.vision - embedding_bytes - wb.experts
    attn = float(m.num_layers * attention_params(m))
    q_dim = m.num_attention_heads * (m.mla.v_head_dim if m.mla else m.head_dim)
    o = float(m.num_layers * q_dim * m.hidden_size)
    # What is left of the dense bytes (dense MLPs, shared experts, routers, norms) runs with the MLP.
    mlp_bytes = dense - (attn * bytes_per_param + lm_head * head_bpp)
    per_layer_kv = kv_elements_per_token_per_layer(m, shard) * kv.bytes_per_element
    windowed, window_tokens = _local_attention(m)
    heads = m.num_attention_heads
    return ModelProfile(
        layers=m.num_layers, hidden=m.hidden_size, vocab=m.vocab_size,
        dense_weight_bytes=dense / shard, expert_bytes=expert_bytes / shard,
        num_experts=m.moe.num_experts if m.moe else 0, experts_per_token=m.moe.experts_per_token if m.moe else 0,
        kv_bytes_per_token_full=per_layer_kv * (m.num_layers - windowed),
        kv_bytes_per_token_window=per_layer_kv * windowed, window_tokens=window_tokens,
        flops_per_token=_FLOPS_PER_MAC * (counts.streamed_per_token + lm_head - counts.lm_head) / shard,
        attn_flops_per_token_ctx=_ATTN_FLOPS_PER_CTX * m.num_layers * heads * m.head_dim / shard,
        quantized=_dequantising(fmt, path), dtype_index=DTYPES.index(path.dtype), shard=shard,
        qkv_params=(attn - o) / shard, o_params=o / shard, mlp_params=mlp_bytes / bytes_per_param / shard,
        lm_head_params=lm_head / shard, expert_params=expert_params / shard,
        bytes_per_param=bytes_per_param, lm_head_bytes_per_param=head_bpp,
        block_quant=fmt.kind == "gguf", kquant=fmt.kind == "gguf" and "_k" in fmt.name,
    )


def _tiles(rows: tuple[int, ...]) -> tuple[float, float, float]:
    """(small, mid, large) M tiles of a tile list, smallest first (1, 1, 1: no padding; at most three tiers)."""
    if not rows:
        return 1.0, 1.0, 1.0
    if len(rows) > 3:
        raise SpecplanError(f"gemm_tile_rows holds at most three tiles (got {list(rows)})")
    return float(rows[0]), float(rows[-2] if len(rows) == 3 else rows[0]), float(rows[-1])


def device_profile(gpu: GpuSpec, engine: EngineSpec, gpus: int = 1, host_sampling: bool = True,
                   role: Role = "target", kernels: str | None = None) -> DeviceProfile:
    """The GPU group as the cost model sees it, for one role of pass.

    ``role`` picks the sampler priced per sampled token: the target's chain, the
    draft's (llama.cpp drafts with top-k 10 alone) or none ("bench": kernel-only
    benchmarks such as llama-bench). ``host_sampling`` False is the same as role
    "bench" (kept for callers written before roles). ``kernels`` names a release
    line of the engine's quantised-kernel regimes (engines.yaml); None: the current one.
    """
    if role not in ROLES:
        raise SpecplanError(f"unknown pass role {role!r}; choose from {', '.join(ROLES)}")
    c = engine.cost_for(gpu.memory_class)
    s = engine.sampling
    sampled = host_sampling and role != "bench"
    per_vocab_ns = (s.draft_ns_per_vocab if role == "draft" and s is not None else c.sampling_ns_per_vocab) if sampled else 0.0
    # Unified memory and the host CPU itself read the logits where they lie: no copy over a link.
    on_host = sampled and s is not None and s.where == "host" and gpu.memory_class not in ("unified", "cpu")
    copy_s = _LOGIT_BYTES / (s.host_link_gb_s * GB) if on_host and s is not None else 0.0
    q = engine.kernels_for(kernels, gpu.memory_class)
    units = _dot_units_flops(gpu)
    mv_rate = units[q.quant_matvec_dot] * q.quant_matvec_eta_dot * _FLOPS_PER_MAC / q.quant_matvec_ops_per_weight if q else np.inf
    mm_peak = units[q.quant_matmul_dot] if q else np.inf
    matvec_rows = q.gemm_matvec_rows if q is not None and q.gemm_matvec_rows else c.gemm_matvec_rows
    small, mid, large = _tiles(c.gemm_tile_rows)
    return DeviceProfile(
        bandwidth_bytes_s=gpu.memory_bandwidth_gb_s * GB,
        peak_flops=tuple(peak_tflops(gpu, d) * TERA for d in DTYPES),  # type: ignore[arg-type]
        eta_mem=c.eta_mem, eta_mem_quant=c.eta_mem_quant, eta_kv=c.eta_kv, eta_compute=c.eta_compute,
        tau_layer_s=c.tau_layer_us * MICRO, tau_step_s=c.tau_step_us * MICRO,
        sampling_s_per_vocab=per_vocab_ns * NANO,
        link_latency_s=c.link_latency_us * MICRO, gpus=gpus,
        # Parts without a link run alone; an infinite link keeps the (zero) traffic term finite.
        link_bytes_s=gpu.interconnect.unidirectional_gb_s * GB or np.inf,
        hop_latency_s=_HOP_LATENCY_US[gpu.interconnect.kind] * MICRO,
        tensor_parallel=engine.parallelism == "tensor",
        logits_copy_s_per_vocab=copy_s,
        gemm_matvec_rows=float(matvec_rows), gemm_tile_small=small, gemm_tile_mid=mid,
        gemm_tile_large=large,
        quant_matvec_rows=float(q.quant_matvec_max_rows) if q else float(_NO_QUANT_KERNELS),
        quant_matvec_dot_flops=mv_rate,
        quant_matmul_tile_rows=float(q.quant_matmul_tile_rows) if q else 1.0,
        quant_matmul_tile_step=float(q.quant_matmul_tile_step) if q else 1.0,
        quant_matmul_dot_flops=mm_peak * q.quant_matmul_eta_dot if q else np.inf,
        kquant_matvec_rows=float(q.kquant_matvec_min_rows) if q else 1.0,
        decode_hides_host=1.0 if engine.decode_overlaps_host else 0.0,
    )

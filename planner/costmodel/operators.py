"""One forward pass priced operator by operator (DESIGN.md section 3).

For a model on a GPU group at batch B, n new tokens per sequence (M = B n rows) and
context L, each operator costs the slower of its bytes and its flops, and the pass is
their sum:

    qkv, o, mlp, lm_head   weight matmuls (gemm.py: tile padding, GGUF kernel regimes)
    experts                routed MoE experts: expected distinct experts' bytes, top-k flops
    attention              bytes = KV read + written, flops = 4 heads head_dim L per token per layer
    sampling               logits to the host (4 B x vocab) + the sampler's host work per entry
    all_reduce             ring all-reduces or layer hand-offs (comm.py)
    launches               layers x tau_layer + tau_step

Operators run one after another on the GPU, so memory-bound attention does not hide
under compute-bound GEMMs. Every function broadcasts: batch, context, new tokens and
profile fields may be arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray

from planner.catalog.schemas import GpuSpec
from planner.costmodel.comm import comm_s
from planner.costmodel.gemm import gemm_s, padded_rows, weight_matmul_s
from planner.costmodel.profiles import DeviceProfile, ModelProfile
from planner.units import GB

__all__ = ["PassCost", "OPERATORS", "expected_experts_touched", "pass_cost", "decode_cost", "verify_cost",
           "baseline_step_s", "roofline_decode_s"]

Array = NDArray[np.float64]
_FLOPS_PER_MAC = 2
WEIGHT_OPERATORS = ("qkv", "o", "mlp", "experts", "lm_head")
BOUNDED_OPERATORS = WEIGHT_OPERATORS + ("attention",)  # the ones with a memory- or compute-bound regime
OPERATORS = BOUNDED_OPERATORS + ("sampling", "all_reduce", "launches")


@dataclass(frozen=True)
class PassCost:
    """Time of one forward pass by operator, seconds (arrays broadcast over the inputs).

    ``operators`` maps each operator name to its time; ``memory_parts`` and
    ``compute_parts`` hold the byte and flop times of the bounded ones (a GGUF matmul's
    compute part is its extra dot passes), built only when asked for: the search needs
    the totals alone.
    """

    operators: dict[str, Array]
    parts: Callable[[], tuple[dict[str, Array], dict[str, Array]]] = field(compare=False, repr=False)

    @cached_property
    def memory_parts(self) -> dict[str, Array]:
        """Byte time of each bounded operator, s."""
        return self.parts()[0]

    @cached_property
    def compute_parts(self) -> dict[str, Array]:
        """Flop time of each bounded operator, s (GGUF matmuls: the dot passes after the loads)."""
        return self.parts()[1]

    @property
    def compute_bound_parts(self) -> dict[str, NDArray[np.bool_]]:
        """Per bounded operator: True where its flops (or extra dot passes) outlast its bytes."""
        return {k: np.asarray(self.compute_parts[k] > self.memory_parts[k]) for k in self.compute_parts}

    @cached_property
    def total_s(self) -> Array:
        """Wall time of the pass, s: the sum of its operators."""
        ops = iter(self.operators.values())
        total = next(ops)
        for t in ops:
            total = total + t
        return total

    @property
    def weights_s(self) -> Array:
        """Time to stream the weights at the achieved bandwidth, s."""
        return sum((self.memory_parts[k] for k in WEIGHT_OPERATORS), np.float64(0.0))  # type: ignore[return-value]

    @property
    def kv_s(self) -> Array:
        """Time to read and write the KV cache, s."""
        return self.memory_parts["attention"]

    @property
    def memory_s(self) -> Array:
        """Time to move the bytes at the achieved bandwidth, s."""
        return self.weights_s + self.kv_s

    @property
    def compute_s(self) -> Array:
        """Time of the (padded) flops at the achieved throughput, s."""
        return sum(self.compute_parts.values(), np.float64(0.0))  # type: ignore[return-value]

    @property
    def comm_s(self) -> Array:
        """GPU-to-GPU time, s."""
        return self.operators["all_reduce"]

    @property
    def overhead_s(self) -> Array:
        """Fixed and per-token host time: launches plus sampling, s."""
        return self.operators["launches"] + self.operators["sampling"]

    @property
    def compute_bound(self) -> NDArray[np.bool_]:
        """True where the tensor cores, not the memory bus, set the pace: more time in compute-bound operators."""
        bound = np.float64(0.0)
        flags = self.compute_bound_parts
        for name in BOUNDED_OPERATORS:
            t = self.operators[name]
            bound = bound + np.where(flags[name], t, -t)
        return np.asarray(bound > 0)

    @property
    def bound_by(self) -> NDArray[np.str_]:
        """Name of the operator that takes the most time, per configuration."""
        names = list(self.operators)
        times = np.stack(np.broadcast_arrays(*(self.operators[k] for k in names)))
        return np.asarray(names)[np.argmax(times, axis=0)]

    @property
    def bound_by_compute(self) -> NDArray[np.bool_]:
        """True where that operator is compute-bound (False: memory-bound or a fixed cost)."""
        flags = {k: self.compute_bound_parts.get(k, np.False_) for k in self.operators}
        top = self.bound_by
        out = np.zeros(np.shape(top), dtype=bool)
        for name, flag in flags.items():
            out = np.where(top == name, flag, out)
        return out


def expected_experts_touched(num_experts: ArrayLike, experts_per_token: ArrayLike, tokens: ArrayLike) -> Array:
    """Expected distinct experts one MoE layer reads for ``tokens`` routed tokens (uniform top-k).

    Each token picks k of E experts; an expert stays unread with probability (1 - k/E)^T.
    """
    t = np.asarray(tokens, dtype=np.float64)
    e = np.maximum(num_experts, 1)  # dense models (E = 0) touch nothing here
    return np.where(np.asarray(num_experts) > 0, e * (1.0 - (1.0 - experts_per_token / e) ** t), 0.0)


def _kv_read_bytes(p: ModelProfile, context: Array) -> Array:
    """KV bytes one sequence reads per pass at ``context`` cached tokens."""
    window = np.minimum(context, p.window_tokens)  # window bytes are 0 for models without one
    return p.kv_bytes_per_token_full * context + p.kv_bytes_per_token_window * window


def _attention(p: ModelProfile, d: DeviceProfile, b: Array, ctx: Array, n: Array, tokens: Array) -> tuple[Array, Array]:
    """(memory s, compute s) of attention over the KV cache: the cache read once per sequence per pass."""
    kv = b * (_kv_read_bytes(p, ctx) + n * (p.kv_bytes_per_token_full + p.kv_bytes_per_token_window))
    flops = tokens * p.attn_flops_per_token_ctx * ctx
    return kv / (d.bandwidth_bytes_s * d.eta_kv), flops / (d.peak_flops[0] * d.eta_compute)


def _sampling_s(p: ModelProfile, d: DeviceProfile, tokens: Array) -> Array:
    """Per-token sampling time of a pass, s: logits copied to the host plus the sampler's work per vocab entry."""
    per_token = p.vocab * (d.sampling_s_per_vocab + d.logits_copy_s_per_vocab)
    return tokens * per_token if np.any(per_token) else np.zeros(())  # GPU samplers: nothing per token


def pass_cost(p: ModelProfile, d: DeviceProfile, batch: ArrayLike, context: ArrayLike, new_tokens: ArrayLike) -> PassCost:
    """Time of one forward pass over ``new_tokens`` per sequence for ``batch`` sequences.

    A layer split (llama.cpp, transformers) runs the GPUs one after another, so a
    single stream sees one GPU's bandwidth for the whole model; tensor parallelism
    splits every matrix (``p.shard``) and adds all-reduces.
    """
    b, ctx, n = (np.asarray(x, dtype=np.float64) for x in (batch, context, new_tokens))
    tokens = b * n
    eta = np.where(p.quantized, d.eta_mem_quant, d.eta_mem)
    stream = d.bandwidth_bytes_s * eta  # achieved bytes/s of the weights
    rate = np.choose(p.dtype_index, d.peak_flops) * d.eta_compute
    # Padded rows over the achieved rate: one array shared by every dense weight GEMM, s per flop per row.
    padded_s_per_flop = padded_rows(tokens, d.gemm_matvec_rows, d.gemm_tile_small, d.gemm_tile_large, d.gemm_tile_mid) / rate
    weights = {"qkv": (p.qkv_params, p.bytes_per_param), "o": (p.o_params, p.bytes_per_param),
               "mlp": (p.mlp_params, p.bytes_per_param), "lm_head": (p.lm_head_params, p.lm_head_bytes_per_param)}
    gguf = np.any(p.block_quant & (d.quant_matvec_rows > 0))
    priced = {k: weight_matmul_s(np.asarray(q * per / stream), _FLOPS_PER_MAC * q, tokens, padded_s_per_flop,
                                 p.block_quant, d, p.kquant) for k, (q, per) in weights.items()} if gguf else {}
    ops = {k: v[0] for k, v in priced.items()} or _dense_gemms_s(p, stream, padded_s_per_flop)
    experts = _experts(p, d, tokens, stream, rate)
    attention = _attention(p, d, b, ctx, n, tokens)
    ops["experts"] = experts[0]
    ops["attention"] = np.maximum(*attention)
    ops["sampling"] = _sampling_s(p, d, tokens)
    ops["all_reduce"] = comm_s(p, d, tokens)
    ops["launches"] = np.asarray(p.layers * d.tau_layer_s + d.tau_step_s)  # per pass, whatever the tokens

    def parts() -> tuple[dict[str, Array], dict[str, Array]]:
        by_op = priced or {k: gemm_s(np.asarray(q * per / stream), _FLOPS_PER_MAC * q, padded_s_per_flop)
                           for k, (q, per) in weights.items()}
        mem = {k: v[1] for k, v in by_op.items()} | {"experts": experts[1], "attention": attention[0]}
        comp = {k: v[2] for k, v in by_op.items()} | {"experts": experts[2], "attention": attention[1]}
        return mem, comp

    return PassCost(operators=ops, parts=parts)


def _dense_gemms_s(p: ModelProfile, stream: Array, padded_s_per_flop: Array) -> dict[str, Array]:
    """Tensor-core GEMM times, s: P x max(bytes per param / stream, 2 x padded rows / rate).

    The same as max(bytes, flops) per operator, factored so that the projections and the
    MLP, which share one bytes-per-parameter figure, share one full-size max (the
    search's hot path); the lm_head has its own storage format.
    """
    flop_s = _FLOPS_PER_MAC * padded_s_per_flop
    linear = np.maximum(p.bytes_per_param / stream, flop_s)
    head = np.maximum(p.lm_head_bytes_per_param / stream, flop_s)
    return {"qkv": p.qkv_params * linear, "o": p.o_params * linear, "mlp": p.mlp_params * linear,
            "lm_head": p.lm_head_params * head}


def _experts(p: ModelProfile, d: DeviceProfile, tokens: Array, stream: Array, rate: Array) -> tuple[Array, Array, Array]:
    """(time, memory s, compute s) of the routed experts.

    Bytes: the expected distinct experts the tokens touch. Flops: each token through
    top-k experts, each expert's rows padded to the GEMM tile.
    """
    if not np.any(p.num_experts):
        zero = np.zeros(())  # broadcasts against every other operator
        return zero, zero, zero
    touched = expected_experts_touched(p.num_experts, p.experts_per_token, tokens)
    mem = p.expert_bytes * touched / stream
    per_expert = tokens * p.experts_per_token / np.maximum(touched, 1e-12)
    rows = padded_rows(per_expert, d.gemm_matvec_rows, d.gemm_tile_small, d.gemm_tile_large, d.gemm_tile_mid)
    comp = _FLOPS_PER_MAC * p.expert_params * touched * rows / rate
    return np.maximum(mem, comp), mem, comp


def decode_cost(p: ModelProfile, d: DeviceProfile, batch: ArrayLike = 1, context: ArrayLike = 0) -> PassCost:
    """One plain decode step (one new token per sequence)."""
    return pass_cost(p, d, batch, context, 1)


def verify_cost(p: ModelProfile, d: DeviceProfile, k: ArrayLike, batch: ArrayLike = 1, context: ArrayLike = 0) -> PassCost:
    """One verification pass over k drafted tokens plus the bonus position (k + 1 tokens)."""
    return pass_cost(p, d, batch, context, np.asarray(k) + 1)


def baseline_step_s(decode_s: ArrayLike, d: DeviceProfile) -> Array:
    """Wall time of one plain decode step without speculation, s.

    An overlap scheduler (SGLang's, engines.yaml decode_overlaps_host) prepares step n + 1 and
    processes step n's results on the host while the GPU runs step n, so the step's host time
    (tau_step) shows only where it is longer than the GPU's: max(pass - tau_step, tau_step).
    Elsewhere, and in every speculative pass (the engines turn the overlap off there), the host
    time adds to the GPU's: the pass as priced.
    """
    t = np.asarray(decode_s, dtype=np.float64)
    return np.where(np.asarray(d.decode_hides_host) > 0, np.maximum(t - d.tau_step_s, d.tau_step_s), t)


def roofline_decode_s(p: ModelProfile, gpu: GpuSpec, context: float = 0.0) -> float:
    """Pure roofline decode time at batch 1, s: bytes / peak bandwidth, no efficiency, no overheads."""
    kv = float(_kv_read_bytes(p, np.asarray(context, dtype=np.float64)))
    return (p.dense_weight_bytes + p.expert_bytes * p.experts_per_token + kv) / (gpu.memory_bandwidth_gb_s * GB)

"""A proposer's step as a ModelProfile: an EAGLE/EAGLE-3 head or an MTP module priced by the same operators.

One proposal step of a head is one pass of a one-layer model: its q/k/v/o, its MLP (plus the
fusion fc where that runs), an lm_head (EAGLE-3's own reduced one; EAGLE-1/2 and MTP read the
target's), its own KV cache over the context, launches and sampling. Putting that in a
ModelProfile lets ``planner.costmodel.decode_cost`` and ``verify_cost`` price head steps with the
GEMM tiles, kernel regimes and overheads the target's passes get, so c is the ratio of two passes
priced alike. Host-only lookups (n-gram, suffix) have no profile.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from planner.catalog.precisions import KvFormat, WeightFormat
from planner.catalog.schemas import GpuSpec, ModelSpec
from planner.catalog.tensor_paths import matmul_dtype, own_path
from planner.costmodel.profiles import DTYPES, ModelProfile
from planner.footprint import attention_params, dense_mlp_params, expert_params, kv_elements_per_token_per_layer, moe_layer_params
from planner.proposers.heads import head_params
from planner.proposers.layers import kv_bytes_per_token
from planner.proposers.proposer import Proposer

__all__ = ["proposer_profile", "vocab_bytes_per_param"]

_FLOPS_PER_MAC = 2
_ATTN_FLOPS_PER_CTX = 4  # as profiles.py: QK^T and PV, 2 flops per multiply-accumulate each
_HIGH_PRECISION_BYTES = 2  # non-GGUF quantizers keep lm_head and norms in 16 bits (planner.footprint)


def vocab_bytes_per_param(fmt: WeightFormat) -> float:
    """Bytes per lm_head weight at ``fmt``: GGUF applies its own figure, other quantizers keep 16 bits."""
    return fmt.bytes_per_weight if fmt.kind == "gguf" else max(fmt.bytes_per_weight, _HIGH_PRECISION_BYTES)


def _dequantising(fmt: WeightFormat, gpu: GpuSpec | None) -> tuple[bool, int]:
    path = matmul_dtype(fmt, gpu) if gpu is not None else own_path(fmt)
    return path.weight_only or (fmt.kind == "gguf" and fmt.bits_per_weight < 8), DTYPES.index(path.dtype)


def _head_profile(p: Proposer, target_fmt: WeightFormat, kv: KvFormat, shard: int, gpu: GpuSpec | None,
                  k: ArrayLike) -> ModelProfile:
    h = p.layout
    assert h is not None
    fmt = p.format_for(target_fmt)
    params = head_params(h)
    o = float(h.num_layers * h.num_attention_heads * h.head_dim * h.hidden_size)
    # EAGLE-3's fc fuses the target's features once per round (later steps feed the head's own
    # hidden state back: SafeAILab/EAGLE cnets.py topK_genrate, vLLM eagle.py combine_hidden_states);
    # EAGLE-1/2 run their fc on every step. Spread over the round's k steps it is fusion / k per step.
    fusion = params.fusion / np.asarray(k, dtype=np.float64) if h.method == "eagle3" else float(params.fusion)
    mlp = params.mlp_active + fusion + params.norms
    if h.method == "eagle3":
        lm_head, lm_bpp, vocab = float(params.lm_head), vocab_bytes_per_param(fmt), h.draft_vocab_size or h.vocab_size
    else:  # the target's lm_head, in the target's format
        lm_head, lm_bpp, vocab = float(h.vocab_size * h.hidden_size), vocab_bytes_per_param(target_fmt), h.vocab_size
    bpp = fmt.bytes_per_weight
    quantized, dtype_index = _dequantising(fmt, gpu)
    qkv = params.attention - o
    return ModelProfile(
        layers=h.num_layers, hidden=h.hidden_size, vocab=vocab,
        dense_weight_bytes=((qkv + o + mlp) * bpp + lm_head * lm_bpp) / shard, expert_bytes=0.0,
        num_experts=0, experts_per_token=0,
        kv_bytes_per_token_full=kv_bytes_per_token(h.num_layers, h.num_kv_heads, h.head_dim, kv.bytes_per_element, shard),
        kv_bytes_per_token_window=0.0, window_tokens=0,
        flops_per_token=_FLOPS_PER_MAC * (qkv + o + mlp + lm_head) / shard,
        attn_flops_per_token_ctx=_ATTN_FLOPS_PER_CTX * h.num_layers * h.num_attention_heads * h.head_dim / shard,
        quantized=quantized, dtype_index=dtype_index, shard=shard,
        qkv_params=qkv / shard, o_params=o / shard, mlp_params=mlp / shard, lm_head_params=lm_head / shard,
        bytes_per_param=bpp, lm_head_bytes_per_param=lm_bpp,
    )


def _mtp_profile(p: Proposer, m: ModelSpec, target_fmt: WeightFormat, kv: KvFormat, shard: int,
                 gpu: GpuSpec | None) -> ModelProfile:
    """One MTP module step: enorm/hnorm, eh_proj (2d -> d), one decoder layer of the model, the target's lm_head."""
    fmt = p.format_for(target_fmt)
    d = m.hidden_size
    attn = float(attention_params(m))
    o = float(m.num_attention_heads * (m.mla.v_head_dim if m.mla else m.head_dim) * d)
    eh_proj = 2.0 * d * d
    if m.moe is not None:
        shared = float(moe_layer_params(m, 0))  # router and shared experts: read by every token
        one_expert = float(expert_params(m))
        experts, top = m.moe.num_experts, m.moe.experts_per_token
    else:
        shared, one_expert, experts, top = float(dense_mlp_params(m, m.intermediate_size)), 0.0, 0, 0
    mlp = shared + eh_proj
    lm_head, lm_bpp = float(m.vocab_size * d), vocab_bytes_per_param(target_fmt)
    bpp = fmt.bytes_per_weight
    quantized, dtype_index = _dequantising(fmt, gpu)
    per_layer_kv = kv_elements_per_token_per_layer(m, shard) * kv.bytes_per_element
    return ModelProfile(
        layers=1, hidden=d, vocab=m.vocab_size,
        dense_weight_bytes=(attn + mlp) * bpp / shard + lm_head * lm_bpp / shard,
        expert_bytes=one_expert * bpp / shard, num_experts=experts, experts_per_token=top,
        kv_bytes_per_token_full=per_layer_kv, kv_bytes_per_token_window=0.0, window_tokens=0,
        flops_per_token=_FLOPS_PER_MAC * (attn + mlp + top * one_expert + lm_head) / shard,
        attn_flops_per_token_ctx=_ATTN_FLOPS_PER_CTX * m.num_attention_heads * m.head_dim / shard,
        quantized=quantized, dtype_index=dtype_index, shard=shard,
        qkv_params=(attn - o) / shard, o_params=o / shard, mlp_params=mlp / shard, lm_head_params=lm_head / shard,
        expert_params=one_expert / shard, bytes_per_param=bpp, lm_head_bytes_per_param=lm_bpp,
    )


def proposer_profile(p: Proposer, target: ModelSpec, target_fmt: WeightFormat, kv: KvFormat, shard: int = 1,
                     gpu: GpuSpec | None = None, k: ArrayLike = 1) -> ModelProfile | None:
    """What one proposal step of ``p`` reads and computes on one GPU of a ``shard``-way split (None: host lookup).

    ``k`` (tokens proposed per round, may be an array) spreads EAGLE-3's once-per-round fusion over
    the round's steps; the other fields do not depend on it.
    """
    if p.host_only:
        return None
    if p.method == "mtp":
        return _mtp_profile(p, target, target_fmt, kv, shard, gpu)
    return _head_profile(p, target_fmt, kv, shard, gpu, k)

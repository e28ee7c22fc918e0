"""Per-component formulas of a proposer's own layers (EAGLE heads), each in parameters, bytes or FLOPs.

MTP modules reuse planner.footprint's per-layer counts (they are one layer of the target); an
EAGLE head's decoder layer differs (its q/k/v read 2d in EAGLE-3), so its shapes are counted here.
"""

from __future__ import annotations

__all__ = [
    "linear_params",
    "head_attention_params",
    "gated_mlp_params",
    "rms_norm_params",
    "vocab_map_bytes",
    "kv_bytes_per_token",
    "gqa_attention_flops",
    "mla_attention_flops",
    "matmul_flops",
]

_GATED_MATRICES = 3  # gate, up, down: every published EAGLE head uses a SwiGLU MLP
_KV_TENSORS = 2  # one K and one V per layer
_FLOPS_PER_MAC = 2
_D2T_BYTES = 8  # d2t: int64 offset per draft token (torch.long buffer)
_T2D_BYTES = 1  # t2d: bool per target token


def linear_params(in_features: int, out_features: int, bias: bool = False) -> int:
    """One nn.Linear: in x out weights plus out biases when ``bias``, in parameters."""
    return in_features * out_features + (out_features if bias else 0)


def head_attention_params(input_width: int, hidden_size: int, heads: int, kv_heads: int, head_dim: int) -> int:
    """Attention of a head's decoder layer whose q/k/v read ``input_width`` channels, in parameters.

    EAGLE-3 feeds the normed token embedding concatenated with the fused feature (2d); EAGLE-1
    feeds the fc's output (d). o_proj maps heads*head_dim back to ``hidden_size``.
    """
    q_dim, kv_dim = heads * head_dim, kv_heads * head_dim
    return linear_params(input_width, q_dim) + 2 * linear_params(input_width, kv_dim) + linear_params(q_dim, hidden_size)


def gated_mlp_params(hidden_size: int, intermediate_size: int) -> int:
    """SwiGLU MLP (gate, up, down, no biases), in parameters."""
    return _GATED_MATRICES * hidden_size * intermediate_size


def rms_norm_params(width: int, count: int = 1) -> int:
    """``count`` RMSNorm weight vectors of ``width`` channels, in parameters."""
    return width * count


def vocab_map_bytes(draft_vocab_size: int, vocab_size: int) -> int:
    """EAGLE-3's d2t (int64 per draft token) and t2d (bool per target token) buffers, in bytes."""
    return _D2T_BYTES * draft_vocab_size + _T2D_BYTES * vocab_size


def kv_bytes_per_token(layers: int, kv_heads: int, head_dim: int, bytes_per_element: float, tp: int = 1) -> float:
    """K and V of ``layers`` GQA layers for one token on one GPU of a tp group, in bytes/token.

    KV heads are split over the group and replicated when tp exceeds them.
    """
    return layers * _KV_TENSORS * max(1, kv_heads // tp) * head_dim * bytes_per_element


def gqa_attention_flops(context_tokens: int, heads: int, head_dim: int) -> float:
    """Scores (q.k) plus weighted values (p.v) of one query token over the context, in FLOPs."""
    return 2 * _FLOPS_PER_MAC * context_tokens * heads * head_dim


def mla_attention_flops(context_tokens: int, heads: int, kv_lora_rank: int, rope_dim: int) -> float:
    """MLA with the up-projections absorbed (decode): scores over latent+rope, values over the latent, FLOPs."""
    return _FLOPS_PER_MAC * context_tokens * heads * (kv_lora_rank + rope_dim + kv_lora_rank)


def matmul_flops(params: int, tokens: int = 1) -> float:
    """Multiply-accumulates of ``tokens`` tokens through ``params`` weights, in FLOPs (2 per weight per token)."""
    return _FLOPS_PER_MAC * params * tokens

"""What a model weighs: parameter counts, weight bytes and KV-cache bytes per token.

Parameter counts follow the per-layer formula of research/ecosystem.md (e),
checked against published totals for every catalogue entry in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.catalog.precisions import KvFormat, WeightFormat
from planner.catalog.schemas import ModelSpec

__all__ = [
    "ParamCounts",
    "WeightBytes",
    "attention_params",
    "dense_mlp_params",
    "moe_layer_params",
    "parameter_counts",
    "weight_bytes",
    "kv_elements_per_token_per_layer",
    "kv_cache_bytes_per_token",
    "kv_cache_bytes",
    "kv_heads_per_gpu",
]

_MLP_MATRICES_GATED = 3  # gate, up, down (SwiGLU / GeGLU)
_MLP_MATRICES_PLAIN = 2
_KV_TENSORS = 2  # one K and one V per layer


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts by component, in parameters (not bytes)."""

    embedding: int
    lm_head: int
    attention: int
    mlp: int
    mlp_active: int
    norms: int

    @property
    def total(self) -> int:
        """All parameters stored in the checkpoint (MTP heads excluded)."""
        return self.embedding + self.lm_head + self.attention + self.mlp + self.norms

    @property
    def active(self) -> int:
        """Parameters used per token, counting the input embedding (published convention)."""
        return self.embedding + self.lm_head + self.attention + self.mlp_active + self.norms

    @property
    def streamed_per_token(self) -> int:
        """Parameters read from memory per decode step: active minus the embedding lookup."""
        return self.active - self.embedding

    @property
    def linear(self) -> int:
        """Parameters in quantizable matrices of the blocks (attention + MLP)."""
        return self.attention + self.mlp


def attention_params(m: ModelSpec) -> int:
    """Attention parameters of one layer (standard GQA or DeepSeek MLA), in parameters."""
    d, h = m.hidden_size, m.num_attention_heads
    if m.mla is not None:
        a = m.mla
        qk_dim = a.qk_nope_head_dim + a.qk_rope_head_dim
        q = d * a.q_lora_rank + a.q_lora_rank + a.q_lora_rank * h * qk_dim if a.q_lora_rank else d * h * qk_dim
        kv_down = d * (a.kv_lora_rank + a.qk_rope_head_dim) + a.kv_lora_rank
        kv_up = a.kv_lora_rank * h * (a.qk_nope_head_dim + a.v_head_dim)
        return q + kv_down + kv_up + h * a.v_head_dim * d
    q_dim, kv_dim = h * m.head_dim, m.num_kv_heads * m.head_dim
    params = d * q_dim + 2 * d * kv_dim + q_dim * d
    if m.attention_bias:
        params += q_dim + 2 * kv_dim
    if m.qk_norm:
        params += 2 * m.head_dim
    return params


def dense_mlp_params(m: ModelSpec, width: int) -> int:
    """Parameters of one dense MLP of the given intermediate width."""
    matrices = _MLP_MATRICES_GATED if m.mlp_gated else _MLP_MATRICES_PLAIN
    return matrices * m.hidden_size * width


def moe_layer_params(m: ModelSpec, experts: int) -> int:
    """Parameters of one MoE layer counting ``experts`` routed experts (all, or top-k)."""
    assert m.moe is not None
    e, d = m.moe, m.hidden_size
    router = d * e.num_experts + (e.num_experts if e.router_bias else 0)
    shared = dense_mlp_params(m, e.shared_expert_intermediate_size) + (d if e.shared_expert_gate else 0)
    return router + experts * dense_mlp_params(m, e.expert_intermediate_size) + shared


def parameter_counts(m: ModelSpec) -> ParamCounts:
    """Count parameters by component from the architecture alone."""
    embedding = m.vocab_size * m.hidden_size
    lm_head = 0 if m.tie_word_embeddings else embedding
    if m.moe is None:
        mlp = mlp_active = m.num_layers * dense_mlp_params(m, m.intermediate_size)
    else:
        dense_layers = m.moe.first_dense_layers
        moe_layers = m.num_layers - dense_layers
        dense = dense_layers * dense_mlp_params(m, m.intermediate_size)
        mlp = dense + moe_layers * moe_layer_params(m, m.moe.num_experts)
        mlp_active = dense + moe_layers * moe_layer_params(m, m.moe.experts_per_token)
    norms = m.num_layers * m.norms_per_layer * m.hidden_size + m.hidden_size
    return ParamCounts(
        embedding=embedding,
        lm_head=lm_head,
        attention=m.num_layers * attention_params(m),
        mlp=mlp,
        mlp_active=mlp_active,
        norms=norms,
    )


@dataclass(frozen=True)
class WeightBytes:
    """Bytes of weights held in memory, by component."""

    linear: float
    embeddings: float
    norms: float

    @property
    def total(self) -> float:
        """All weight bytes."""
        return self.linear + self.embeddings + self.norms


_HIGH_PRECISION_BYTES = 2  # embeddings/lm_head/norms kept in 16 bits by non-GGUF quantizers


def weight_bytes(m: ModelSpec, fmt: WeightFormat, counts: ParamCounts | None = None) -> WeightBytes:
    """Weight memory of the whole model at format ``fmt``, in bytes.

    AWQ, GPTQ, FP8 and INT8 checkpoints keep the embedding, lm_head and norms in
    16 bits; GGUF files quantize them too and their published bits per weight are
    whole-file averages, so GGUF applies one figure to everything.
    """
    c = counts or parameter_counts(m)
    emb = c.embedding + c.lm_head
    if fmt.kind == "gguf" or fmt.bits_per_weight >= 8 * _HIGH_PRECISION_BYTES:
        per = fmt.bytes_per_weight
        return WeightBytes(linear=c.linear * per, embeddings=emb * per, norms=c.norms * per)
    return WeightBytes(
        linear=c.linear * fmt.bytes_per_weight,
        embeddings=emb * _HIGH_PRECISION_BYTES,
        norms=c.norms * _HIGH_PRECISION_BYTES,
    )


def kv_heads_per_gpu(m: ModelSpec, tp: int) -> int:
    """KV heads each GPU of a tensor-parallel group stores (replicated when tp > kv_heads)."""
    return max(1, m.num_kv_heads // tp)


def kv_elements_per_token_per_layer(m: ModelSpec, tp: int = 1) -> int:
    """Cached elements per token per layer on one GPU: 2*kv_heads*head_dim, or MLA's latent.

    MLA caches one compressed latent (kv_lora_rank + rope dims) shared by all heads,
    and tensor-parallel engines replicate it on every GPU.
    """
    if m.mla is not None:
        return m.mla.kv_lora_rank + m.mla.qk_rope_head_dim
    return _KV_TENSORS * kv_heads_per_gpu(m, tp) * m.head_dim


def kv_cache_bytes_per_token(m: ModelSpec, fmt: KvFormat, tp: int = 1) -> float:
    """KV-cache bytes per token (all layers) on one GPU of a tp-way group, in bytes/token."""
    return m.num_layers * kv_elements_per_token_per_layer(m, tp) * fmt.bytes_per_element


def kv_cache_bytes(
    m: ModelSpec, fmt: KvFormat, tokens: int, tp: int = 1, sliding_window: bool = True
) -> float:
    """KV-cache bytes for ``tokens`` cached tokens of one sequence on one GPU, in bytes.

    With ``sliding_window`` the layers that attend through a window keep at most
    ``sliding_window_tokens`` entries (engines with a hybrid/SWA cache do this).
    """
    per_layer = kv_elements_per_token_per_layer(m, tp) * fmt.bytes_per_element
    windowed = m.sliding_window_layers if (sliding_window and m.sliding_window_tokens) else 0
    window = min(tokens, m.sliding_window_tokens or tokens)
    return per_layer * ((m.num_layers - windowed) * tokens + windowed * window)

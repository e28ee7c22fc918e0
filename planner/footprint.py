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
    "moe_layer_count",
    "expert_params",
    "embedding_params",
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
    """Parameter counts by component, in parameters (not bytes).

    ``experts`` / ``experts_active`` are the routed experts' share of ``mlp`` /
    ``mlp_active`` (their weights and biases): a format with ``experts_only`` applies to
    them alone. ``positions`` is a learned absolute position table (OPT, GPT-BigCode), a
    lookup like the token embedding. ``vision`` is a multimodal checkpoint's vision
    encoder and projector: vLLM and SGLang load it with the language model, so it costs
    memory and counts in ``total``, but a decoded token never reads it (not in ``active``).
    """

    embedding: int
    lm_head: int
    attention: int
    mlp: int
    mlp_active: int
    norms: int
    experts: int = 0
    experts_active: int = 0
    positions: int = 0
    vision: int = 0

    @property
    def total(self) -> int:
        """All parameters stored in the checkpoint (MTP heads excluded)."""
        return self.embedding + self.positions + self.lm_head + self.attention + self.mlp + self.norms + self.vision

    @property
    def active(self) -> int:
        """Parameters used per text token, counting the input embedding (published convention)."""
        return self.embedding + self.positions + self.lm_head + self.attention + self.mlp_active + self.norms

    @property
    def streamed_per_token(self) -> int:
        """Parameters read from memory per decode step: active minus the embedding and position lookups."""
        return self.active - self.embedding - self.positions

    @property
    def linear(self) -> int:
        """Parameters in quantizable matrices of the blocks (attention + MLP)."""
        return self.attention + self.mlp


def _norm_params(m: ModelSpec, width: int) -> int:
    """Parameters of one norm of ``width`` channels: RMSNorm a weight, LayerNorm also a bias."""
    return width * (2 if m.norm_type == "layer" else 1)


def attention_params(m: ModelSpec) -> int:
    """Attention parameters of one layer (standard GQA or DeepSeek MLA), in parameters.

    Biases on q/k/v (``attention_bias``) and on the output (``attention_out_bias``),
    per-head q/k norms and gpt-oss's one learned sink logit per head are included.
    """
    d, h = m.hidden_size, m.num_attention_heads
    sinks = h if m.attention_sinks else 0
    if m.mla is not None:
        a = m.mla
        qk_dim = a.qk_nope_head_dim + a.qk_rope_head_dim
        q = d * a.q_lora_rank + a.q_lora_rank + a.q_lora_rank * h * qk_dim if a.q_lora_rank else d * h * qk_dim
        kv_down = d * (a.kv_lora_rank + a.qk_rope_head_dim) + a.kv_lora_rank
        kv_up = a.kv_lora_rank * h * (a.qk_nope_head_dim + a.v_head_dim)
        return q + kv_down + kv_up + h * a.v_head_dim * d + sinks
    q_dim, kv_dim = h * m.head_dim, m.num_kv_heads * m.head_dim
    params = d * q_dim + 2 * d * kv_dim + q_dim * d + sinks
    if m.attention_bias:
        params += q_dim + 2 * kv_dim
    if m.attention_out_bias:
        params += d
    if m.qk_norm:
        params += 2 * _norm_params(m, m.head_dim)
    return params


def dense_mlp_params(m: ModelSpec, width: int, bias: bool | None = None) -> int:
    """Parameters of one MLP of the given intermediate width (its biases when ``bias``, default mlp_bias)."""
    matrices = _MLP_MATRICES_GATED if m.mlp_gated else _MLP_MATRICES_PLAIN
    params = matrices * m.hidden_size * width
    if m.mlp_bias if bias is None else bias:
        params += (matrices - 1) * width + m.hidden_size  # gate/up (or fc_in) biases + down (fc_out) bias
    return params


def expert_params(m: ModelSpec) -> int:
    """Parameters of one routed expert of one MoE layer, its biases included (gpt-oss), in parameters."""
    assert m.moe is not None
    return dense_mlp_params(m, m.moe.expert_intermediate_size, bias=m.moe.expert_bias)


def moe_layer_params(m: ModelSpec, experts: int) -> int:
    """Parameters of one MoE layer counting ``experts`` routed experts (all, or top-k)."""
    assert m.moe is not None
    e, d = m.moe, m.hidden_size
    router = d * e.num_experts + (e.num_experts if e.router_bias else 0) + (e.num_experts if e.router_linear_bias else 0)
    shared = dense_mlp_params(m, e.shared_expert_intermediate_size) + (d if e.shared_expert_gate else 0)
    return router + experts * expert_params(m) + shared


def moe_layer_count(m: ModelSpec) -> int:
    """MoE layers: every ``layer_step``-th layer after the leading dense ones (Llama-4 Maverick: 24 of 48)."""
    assert m.moe is not None
    return (m.num_layers - m.moe.first_dense_layers) // m.moe.layer_step


def embedding_params(m: ModelSpec) -> int:
    """Token embedding table, plus OPT's project_in/project_out when it is narrower than the blocks."""
    width = m.word_embed_proj_dim or m.hidden_size
    projections = 2 * width * m.hidden_size if width != m.hidden_size else 0
    return m.vocab_size * width + projections


def parameter_counts(m: ModelSpec) -> ParamCounts:
    """Count parameters by component from the architecture alone."""
    embedding = embedding_params(m)
    lm_head = 0 if m.tie_word_embeddings else m.vocab_size * (m.word_embed_proj_dim or m.hidden_size)
    lm_head += m.vocab_size if m.lm_head_bias else 0
    experts = experts_active = 0
    if m.moe is None:
        mlp = mlp_active = m.num_layers * dense_mlp_params(m, m.intermediate_size)
    else:
        moe_layers = moe_layer_count(m)
        dense = (m.num_layers - moe_layers) * dense_mlp_params(m, m.intermediate_size)
        mlp = dense + moe_layers * moe_layer_params(m, m.moe.num_experts)
        mlp_active = dense + moe_layers * moe_layer_params(m, m.moe.experts_per_token)
        experts = moe_layers * m.moe.num_experts * expert_params(m)
        experts_active = moe_layers * m.moe.experts_per_token * expert_params(m)
    norms = (m.num_layers * m.norms_per_layer + 1) * _norm_params(m, m.hidden_size)
    return ParamCounts(
        embedding=embedding,
        lm_head=lm_head,
        attention=m.num_layers * attention_params(m),
        mlp=mlp,
        mlp_active=mlp_active,
        norms=norms,
        experts=experts,
        experts_active=experts_active,
        positions=m.position_embedding_rows * m.hidden_size,
        vision=m.vision_params,
    )


@dataclass(frozen=True)
class WeightBytes:
    """Bytes of weights held in memory, by component (``experts`` is the routed experts' part of ``linear``)."""

    linear: float
    embeddings: float
    norms: float
    experts: float = 0.0
    vision: float = 0.0

    @property
    def total(self) -> float:
        """All weight bytes."""
        return self.linear + self.embeddings + self.norms + self.vision


_HIGH_PRECISION_BYTES = 2  # embeddings/lm_head/norms kept in 16 bits by non-GGUF quantizers


def weight_bytes(m: ModelSpec, fmt: WeightFormat, counts: ParamCounts | None = None) -> WeightBytes:
    """Weight memory of the whole model at format ``fmt``, in bytes.

    AWQ, GPTQ, FP8 and INT8 checkpoints keep the embedding, lm_head and norms in
    16 bits; GGUF files quantize them too and their published bits per weight are
    whole-file averages, so GGUF applies one figure to everything. A format with
    ``experts_only`` (gpt-oss's MXFP4) applies to the routed experts alone: attention,
    router, shared expert, dense MLPs, embeddings and norms take the format's
    ``non_expert_bits_per_weight`` (16 for the HF checkpoint, Q8_0 for GGUF MXFP4_MOE). A vision
    encoder stays 16-bit (quantizers leave it out: modules_to_not_convert); a GGUF
    file holds none (llama.cpp reads it from a separate --mmproj file): 0 bytes.
    """
    c = counts or parameter_counts(m)
    emb = c.embedding + c.positions + c.lm_head
    vision = 0.0 if fmt.kind == "gguf" else c.vision * max(fmt.bytes_per_weight, _HIGH_PRECISION_BYTES)
    if fmt.experts_only:
        experts = c.experts * fmt.bytes_per_weight
        rest = fmt.non_expert_bits_per_weight / 8
        return WeightBytes(linear=(c.linear - c.experts) * rest + experts, embeddings=emb * rest,
                           norms=c.norms * rest, experts=experts, vision=vision)
    if fmt.kind == "gguf":
        per = fmt.bytes_per_weight
        return WeightBytes(linear=c.linear * per, embeddings=emb * per, norms=c.norms * per,
                           experts=c.experts * per, vision=0.0)
    high = max(fmt.bytes_per_weight, _HIGH_PRECISION_BYTES)
    return WeightBytes(
        linear=c.linear * fmt.bytes_per_weight,
        embeddings=emb * high,
        norms=c.norms * high,
        experts=c.experts * fmt.bytes_per_weight,
        vision=vision,
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
    """KV-cache bytes per token (all layers) on one GPU of a tp-way group, in bytes/token.

    Every layer caches each token it has seen, windowed and chunked ones included, until
    the window or chunk is full; gpt-oss's attention sinks are learned logits, not cached
    tokens, and add nothing.
    """
    return m.num_layers * kv_elements_per_token_per_layer(m, tp) * fmt.bytes_per_element


def kv_cache_bytes(
    m: ModelSpec, fmt: KvFormat, tokens: int, tp: int = 1, sliding_window: bool = True,
    chunked: bool | None = None,
) -> float:
    """KV-cache bytes for ``tokens`` cached tokens of one sequence on one GPU, in bytes.

    With ``sliding_window`` the layers that attend through a window keep at most
    ``sliding_window_tokens`` entries (engines with a hybrid/SWA cache do this). With
    ``chunked`` (default: as ``sliding_window``) chunked-local layers keep at most one
    chunk, ``chunked_attention_tokens`` (vLLM's ChunkedLocalAttentionManager frees the
    blocks of finished chunks; llama.cpp's llama_kv_cache_iswa caches LLAMA_SWA_TYPE_CHUNKED
    layers in its SWA cache).
    """
    chunked = sliding_window if chunked is None else chunked
    per_layer = kv_elements_per_token_per_layer(m, tp) * fmt.bytes_per_element
    windowed = m.sliding_window_layers if (sliding_window and m.sliding_window_tokens) else 0
    chunk_layers = m.chunked_attention_layers if (chunked and m.chunked_attention_tokens) else 0
    window = min(tokens, m.sliding_window_tokens or tokens)
    chunk = min(tokens, m.chunked_attention_tokens or tokens)
    full = m.num_layers - windowed - chunk_layers
    return per_layer * (full * tokens + windowed * window + chunk_layers * chunk)

"""Write a ModelSpec back as a transformers-style config.json dict (for tests and the probe)."""

from __future__ import annotations

from typing import Any

from planner.catalog.hf_import.rules import ArchRules, rules
from planner.catalog.hf_import.spec import OPT_POSITION_OFFSET
from planner.catalog.schemas import ModelSpec

__all__ = ["spec_to_config"]


def _flag_keys(m: ModelSpec, r: ArchRules) -> dict[str, Any]:
    """The config keys that make the importer read back the spec's bias and norm flags."""
    out: dict[str, Any] = {}
    for name, value in (("qkv_bias", m.attention_bias), ("out_bias", m.attention_out_bias),
                        ("mlp_bias", m.mlp_bias), ("qk_norm", m.qk_norm)):
        key = getattr(r, name)
        if isinstance(key, str):
            out[key] = out.get(key, False) or value
    return out


def _local_attention(m: ModelSpec, r: ArchRules) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    if m.chunked_attention_tokens:
        cfg["attention_chunk_size"] = m.chunked_attention_tokens
        # Llama-4: the chunked layers are the RoPE ones; the global (NoPE) layers come last here.
        cfg["no_rope_layers"] = [1] * m.chunked_attention_layers + [0] * (m.num_layers - m.chunked_attention_layers)
    elif r.sliding == "chunked":
        cfg["attention_chunk_size"] = None
    if m.sliding_window_tokens:
        cfg["sliding_window"] = m.sliding_window_tokens
        if r.sliding in ("layer_types", "pattern") or (r.sliding == "all" and m.sliding_window_layers < m.num_layers):
            slide = m.sliding_window_layers
            cfg["layer_types"] = ["sliding_attention"] * slide + ["full_attention"] * (m.num_layers - slide)
        elif m.architecture not in {"gemma2", "mistral", "phi3"}:
            cfg["use_sliding_window"] = True
    return cfg


def _moe_to_config(m: ModelSpec, r: ArchRules) -> dict[str, Any]:
    e = m.moe
    assert e is not None
    if r.moe in ("deepseek", "glm4_moe"):
        return {
            "n_routed_experts": e.num_experts, "num_experts_per_tok": e.experts_per_token,
            "moe_intermediate_size": e.expert_intermediate_size, "n_shared_experts": e.num_shared_experts,
            "first_k_dense_replace": e.first_dense_layers,
            "topk_method": "noaux_tc" if e.router_bias else "greedy",
        }
    if r.moe == "llama4":
        return {"num_local_experts": e.num_experts, "num_experts_per_tok": e.experts_per_token,
                "intermediate_size": e.expert_intermediate_size, "intermediate_size_mlp": m.intermediate_size,
                "interleave_moe_layer_step": e.layer_step}
    if r.moe in ("mixtral", "gpt_oss"):
        return {"num_local_experts": e.num_experts, "num_experts_per_tok": e.experts_per_token}
    out = {"num_experts": e.num_experts, "num_experts_per_tok": e.experts_per_token,
           "moe_intermediate_size": e.expert_intermediate_size, "decoder_sparse_step": e.layer_step}
    if e.shared_expert_intermediate_size:
        out["shared_expert_intermediate_size"] = e.shared_expert_intermediate_size
    return out


def spec_to_config(m: ModelSpec) -> dict[str, Any]:
    """A transformers-style config.json dict of ``m`` that spec_from_config reads back to the same layout.

    Multimodal architectures (gemma3, llama4, mistral3) nest the language model under
    ``text_config``; the vision encoder's size travels as specplan's own ``vision_params`` key.
    """
    outer = rules()[m.architecture]
    inner = m.architecture if outer.wrapper_of is None else outer.wrapper_of
    r = rules()[inner]
    cfg: dict[str, Any] = {
        "model_type": inner,
        "num_hidden_layers": m.num_layers,
        "hidden_size": m.hidden_size,
        "num_attention_heads": m.num_attention_heads,
        "num_key_value_heads": m.num_kv_heads,
        "head_dim": m.head_dim,
        "intermediate_size": m.intermediate_size,
        "vocab_size": m.vocab_size,
        "tie_word_embeddings": m.tie_word_embeddings,
        "max_position_embeddings": m.max_context_tokens,
        "torch_dtype": m.torch_dtype,
        **_flag_keys(m, r),
        **_local_attention(m, r),
    }
    if r.positions == "max_position_embeddings+2" and m.position_embedding_rows:
        cfg["max_position_embeddings"] = m.position_embedding_rows - OPT_POSITION_OFFSET
    elif r.positions == "n_positions":
        cfg["n_positions"] = m.position_embedding_rows
    if r.multi_query_key:
        cfg[r.multi_query_key] = m.num_kv_heads == 1
    if r.dense_width_key:
        cfg[r.dense_width_key] = m.intermediate_size
    if m.word_embed_proj_dim:
        cfg["word_embed_proj_dim"] = m.word_embed_proj_dim
    if m.moe is not None:
        cfg.update(_moe_to_config(m, r))
    if m.mla is not None:
        cfg.update(m.mla.model_dump())
    if outer.wrapper_of is None:
        return {**cfg, "vision_params": m.vision_params} if m.vision_params else cfg
    return {"model_type": m.architecture, "tie_word_embeddings": m.tie_word_embeddings,
            "torch_dtype": m.torch_dtype, "vision_params": m.vision_params, "text_config": cfg}

"""Translate one config.json dict into a ModelSpec by the rules of its model_type."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from planner.catalog.hf_import.fields import (
    MAX_CONTEXT, MAX_HEADS, MAX_LAYERS, first, flag, int_field, opt_int, require,
)
from planner.catalog.hf_import.layout import local_attention, moe_spec
from planner.catalog.hf_import.names import name_or_path
from planner.catalog.hf_import.quant import checkpoint_format
from planner.catalog.hf_import.rules import ArchRules, rules, supported_model_types
from planner.catalog.hf_import.vision import vision_params
from planner.catalog.loading import format_validation_error
from planner.catalog.schemas import MLASpec, ModelSpec
from planner.errors import ConfigImportError
from planner.inputs import shown

__all__ = ["spec_from_config", "merged_config", "OPT_POSITION_OFFSET"]

OPT_POSITION_OFFSET = 2  # OPTLearnedPositionalEmbedding: num_embeddings + 2 (padding offset)


def _mla(cfg: dict[str, Any], label: str) -> MLASpec | None:
    if cfg.get("kv_lora_rank") is None:
        return None
    return MLASpec(
        q_lora_rank=opt_int(cfg, label, "q_lora_rank"), kv_lora_rank=int_field(cfg, label, "kv_lora_rank"),
        qk_nope_head_dim=int_field(cfg, label, "qk_nope_head_dim", high=MAX_HEADS),
        qk_rope_head_dim=int_field(cfg, label, "qk_rope_head_dim", high=MAX_HEADS),
        v_head_dim=int_field(cfg, label, "v_head_dim", high=MAX_HEADS),
    )


def _default_head_dim(cfg: dict[str, Any], label: str, hidden: int, heads: int) -> int:
    """Per-head query/key width: MLA's nope + rope dims, else hidden / heads (LlamaConfig's rule)."""
    if cfg.get("kv_lora_rank") is not None:
        return (int_field(cfg, label, "qk_nope_head_dim", high=MAX_HEADS)
                + int_field(cfg, label, "qk_rope_head_dim", high=MAX_HEADS))
    return max(hidden // heads, 1)


def _model_type(cfg: dict[str, Any], label: str) -> str:
    model_type = require(cfg, label, "model_type")
    if not isinstance(model_type, str) or model_type not in rules():
        raise ConfigImportError(f"{label}: field model_type: {shown(model_type, 40)} is not supported "
                                f"(known: {', '.join(supported_model_types())})")
    return model_type


def merged_config(cfg: dict[str, Any], label: str) -> tuple[str, ArchRules, dict[str, Any]]:
    """(architecture, rules of the language model, config with text_config and class defaults merged in).

    A multimodal config keeps its language model under ``text_config``; its keys win over the
    outer ones (the outer model_type is the architecture vLLM loads, e.g. gemma3, llama4).
    """
    text = cfg.get("text_config") or {}
    if not isinstance(text, dict):
        raise ConfigImportError(f"{label}: field text_config: expected an object")
    outer = _model_type(cfg, label)
    inner_type = rules()[outer].wrapper_of or text.get("model_type") or outer
    merged = {**cfg, **text, "model_type": inner_type}
    arch = _model_type(merged, label)
    body = rules()[arch]
    merged = {**body.defaults, **{k: v for k, v in merged.items() if v is not None}}
    return outer, body, merged


def _positions(cfg: dict[str, Any], r: ArchRules, label: str) -> int:
    if r.positions == "max_position_embeddings+2":
        return int_field(cfg, label, "max_position_embeddings", high=MAX_CONTEXT) + OPT_POSITION_OFFSET
    if r.positions == "n_positions":
        return int_field(cfg, label, "n_positions", "max_position_embeddings", high=MAX_CONTEXT)
    return 0


def _widths(cfg: dict[str, Any], r: ArchRules, label: str, hidden: int) -> int:
    """The dense MLP width: Llama-4's intermediate_size_mlp, CodeGen/GPT-BigCode's n_inner or 4 x hidden."""
    keys = (r.dense_width_key,) if r.dense_width_key else ()
    default = 4 * hidden if r.width_default == "4x_hidden" else None
    return int_field(cfg, label, *keys, "intermediate_size", "ffn_dim", "n_inner", default=default)


def spec_from_config(cfg: dict[str, Any], label: str, model_id: str | None = None) -> ModelSpec:
    """Translate one config.json dict into a ModelSpec (raises ConfigImportError with the field)."""
    outer, r, cfg = merged_config(cfg, label)
    layers = int_field(cfg, label, "num_hidden_layers", "n_layer", "n_layers", "num_layers", high=MAX_LAYERS)
    hidden = int_field(cfg, label, "hidden_size", "d_model", "n_embd")
    heads = int_field(cfg, label, "num_attention_heads", "n_head", high=MAX_HEADS)
    vocab = int_field(cfg, label, "vocab_size")
    kv_default = 1 if r.multi_query_key and flag(cfg, label, r.multi_query_key) else heads
    local = local_attention(cfg, r, layers, label)
    name = model_id or name_or_path(cfg, label) or label
    tied = cfg.get("tie_word_embeddings", r.tied_default)
    if not isinstance(tied, bool):
        raise ConfigImportError(f"{label}: field tie_word_embeddings: expected true or false, got {shown(tied, 40)}")
    moe = moe_spec(cfg, r, label, layers)
    proj = opt_int(cfg, label, "word_embed_proj_dim")
    raw = {
        "id": name,
        "family": outer.split("_")[0],
        "generation": "local",
        "architecture": outer,
        "tokenizer": f"unknown:{outer}:{vocab}",
        "tokenizer_vocab_size": vocab,
        "vocab_size": vocab,
        "num_layers": layers,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_kv_heads": int_field(cfg, label, "num_key_value_heads", high=heads, default=kv_default),
        "head_dim": int_field(cfg, label, "head_dim", high=MAX_HEADS, default=_default_head_dim(cfg, label, hidden, heads)),
        "intermediate_size": _widths(cfg, r, label, hidden),
        "mlp_gated": r.mlp_gated,
        "attention_bias": r.flag("qkv_bias", cfg),
        "attention_out_bias": r.flag("out_bias", cfg),
        "mlp_bias": r.flag("mlp_bias", cfg),
        "lm_head_bias": r.lm_head_bias,
        "qk_norm": r.flag("qk_norm", cfg),
        "norms_per_layer": r.norms_per_layer,
        "norm_type": r.norm_type,
        "sliding_window_tokens": local.window,
        "sliding_window_layers": local.windowed,
        "chunked_attention_tokens": local.chunk,
        "chunked_attention_layers": local.chunked,
        "attention_sinks": r.sinks,
        "position_embedding_rows": _positions(cfg, r, label),
        "word_embed_proj_dim": proj if proj != hidden else None,
        "vision_params": vision_params(cfg, hidden, label),
        "weight_format": checkpoint_format(cfg.get("quantization_config"), label, moe is not None),
        "tie_word_embeddings": tied,
        "max_context_tokens": int_field(cfg, label, "max_position_embeddings", "n_positions", high=MAX_CONTEXT),
        "torch_dtype": first(cfg, "torch_dtype", "dtype", default="bfloat16"),
        "moe": moe,
        "mla": _mla(cfg, label),
        "source": label,
    }
    try:
        return ModelSpec.model_validate(raw)
    except ValidationError as err:
        raise ConfigImportError(format_validation_error(label, repr(name), err)) from None
    except (KeyError, TypeError) as err:
        raise ConfigImportError(f"{label}: field {err}: missing or malformed") from None

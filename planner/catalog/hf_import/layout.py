"""Which layers attend locally (sliding window, chunked) and how the MoE layers are laid out."""

from __future__ import annotations

from typing import Any, NamedTuple

from planner.catalog.hf_import.fields import MAX_CONTEXT, MAX_HEADS, first, int_field, int_list, opt_int, str_list
from planner.catalog.hf_import.rules import ArchRules
from planner.catalog.schemas import MoESpec
from planner.errors import ConfigImportError

__all__ = ["LocalAttention", "local_attention", "moe_spec"]

# Default global-layer interval of Llama-4 (Llama4TextConfig.no_rope_layer_interval) and Gemma-3
# (Gemma3TextConfig.sliding_window_pattern) when the config gives neither the list nor the number.
_LLAMA4_NOPE_INTERVAL = 4


class LocalAttention(NamedTuple):
    """Layers that attend locally: a sliding window, or chunked local attention (Llama-4)."""

    window: int | None = None
    windowed: int = 0
    chunk: int | None = None
    chunked: int = 0


def _from_layer_types(kinds: list[str], window: int | None, chunk: int | None, layers: int) -> LocalAttention:
    """Count the layer kinds transformers >= 4.53 writes into ``layer_types``."""
    sliding = min(sum(t == "sliding_attention" for t in kinds), layers) if window else 0
    chunked = min(sum(t == "chunked_attention" for t in kinds), layers) if chunk else 0
    return LocalAttention(window if sliding else None, sliding, chunk if chunked else None, chunked)


def _llama4_chunked(cfg: dict[str, Any], label: str, layers: int) -> int:
    """Chunked layers of Llama-4: the RoPE layers (no_rope_layers[i] == 1); the NoPE ones attend globally.

    Llama4TextConfig: no_rope_layers defaults to every no_rope_layer_interval-th layer being NoPE.
    """
    flags = int_list(cfg, label, "no_rope_layers")
    if flags is not None:
        return min(sum(1 for f in flags[:layers] if f), layers)
    interval = int_field(cfg, label, "no_rope_layer_interval", default=_LLAMA4_NOPE_INTERVAL, high=layers + 1)
    return layers - layers // interval


def local_attention(cfg: dict[str, Any], rules: ArchRules, layers: int, label: str) -> LocalAttention:
    """Where each layer kind sits, from layer_types when the config has it, else the model_type's rule."""
    chunk = opt_int(cfg, label, "attention_chunk_size", high=MAX_CONTEXT) if rules.sliding == "chunked" else None
    use_window = cfg.get("sliding_window") and cfg.get("use_sliding_window") is not False
    window = opt_int(cfg, label, "sliding_window", high=MAX_CONTEXT) if use_window else None
    kinds = str_list(cfg, label, "layer_types")
    if kinds is not None:
        if len(kinds) != layers:  # transformers' layer_type_validation refuses such a config too
            raise ConfigImportError(
                f"{label}: field layer_types: {len(kinds)} entries for {layers} layers (num_hidden_layers)")
        return _from_layer_types(kinds, window, chunk, layers)
    if rules.sliding == "chunked":
        chunked = _llama4_chunked(cfg, label, layers) if chunk else 0
        return LocalAttention(chunk=chunk if chunked else None, chunked=chunked)
    if window is None or rules.sliding == "none":
        return LocalAttention()
    if rules.sliding == "alternate":
        return LocalAttention(window, layers // 2)  # even layers slide, odd layers attend globally
    if rules.sliding == "pattern":
        # Gemma3: layer i is global when (i + 1) % sliding_window_pattern == 0.
        pattern = int_field(cfg, label, "sliding_window_pattern", high=layers + 1)
        return LocalAttention(window, layers - layers // pattern)
    return LocalAttention(window, layers)


def _experts(cfg: dict[str, Any], label: str) -> tuple[int, int] | None:
    experts = first(cfg, "num_local_experts", "num_experts", "n_routed_experts")
    if experts is None or experts in (0, 1):
        return None
    experts = int_field(cfg, label, "num_local_experts", "num_experts", "n_routed_experts", high=MAX_HEADS)
    return experts, int_field(cfg, label, "num_experts_per_tok", "experts_per_token", high=experts)


def moe_spec(cfg: dict[str, Any], rules: ArchRules, label: str, layers: int) -> MoESpec | None:
    """The MoE layout of a config, by the model_type's MoE rule (None for dense models)."""
    counts = _experts(cfg, label)
    if counts is None or rules.moe == "none":
        return None
    experts, per_token = counts
    common = {"num_experts": experts, "experts_per_token": per_token}
    if rules.moe in ("deepseek", "glm4_moe"):
        width = int_field(cfg, label, "moe_intermediate_size")
        shared = opt_int(cfg, label, "n_shared_experts", low=0, high=MAX_HEADS) or 0
        # GLM-4.5's router always holds e_score_correction_bias; DeepSeek's only with noaux_tc.
        biased = rules.moe == "glm4_moe" or cfg.get("topk_method") == "noaux_tc"
        return MoESpec(**common, expert_intermediate_size=width, num_shared_experts=shared,
                       shared_expert_intermediate_size=shared * width, router_bias=biased,
                       first_dense_layers=opt_int(cfg, label, "first_k_dense_replace", low=0, high=layers) or 0)
    if rules.moe == "llama4":
        width = int_field(cfg, label, "intermediate_size")
        return MoESpec(**common, expert_intermediate_size=width, num_shared_experts=1,
                       shared_expert_intermediate_size=width,
                       layer_step=int_field(cfg, label, "interleave_moe_layer_step", high=layers, default=1))
    if rules.moe == "gpt_oss":
        return MoESpec(**common, expert_intermediate_size=int_field(cfg, label, "intermediate_size"),
                       router_linear_bias=True, expert_bias=True)
    shared_width = opt_int(cfg, label, "shared_expert_intermediate_size", low=0) or 0
    if cfg.get("mlp_only_layers"):
        raise ConfigImportError(f"{label}: field mlp_only_layers: dense layers at listed positions are not supported")
    return MoESpec(
        **common, expert_intermediate_size=int_field(cfg, label, "moe_intermediate_size", "intermediate_size"),
        num_shared_experts=1 if shared_width else 0, shared_expert_intermediate_size=shared_width,
        shared_expert_gate=bool(shared_width),
        layer_step=int_field(cfg, label, "decoder_sparse_step", high=layers, default=1),
    )

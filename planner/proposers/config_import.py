"""Proposer specs from config.json dicts: an EAGLE/EAGLE-3 head folder's, and a target's MTP layer count.

Every field goes through planner.catalog.hf_import.fields, so a bad value is a one-line
ConfigImportError naming the file and the field.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from planner.catalog.hf_import.fields import MAX_HEADS, MAX_LAYERS, first, int_field
from planner.errors import ConfigImportError
from planner.proposers.heads import HeadLayout

__all__ = ["EAGLE3_ARCHITECTURES", "head_layout_from_config", "mtp_layers_from_config"]

# SafeAILab/EAGLE and SpecForge write LlamaForCausalLMEagle3; vLLM registers Eagle3LlamaForCausalLM too;
# the speculators format (vllm-project/speculators) writes Eagle3Speculator / Eagle3DraftModel with the
# layer fields nested under transformer_layer_config.
EAGLE3_ARCHITECTURES = ("LlamaForCausalLMEagle3", "Eagle3LlamaForCausalLM", "Eagle3Speculator", "Eagle3DraftModel")
_SPECULATORS_LAYER_KEY = "transformer_layer_config"


def _architectures(cfg: dict[str, Any], label: str) -> list[str]:
    archs = cfg.get("architectures") or []
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise ConfigImportError(f"{label}: field architectures: expected a list of strings")
    return archs


def _aux_hidden_states(cfg: dict[str, Any], label: str) -> bool:
    eagle = cfg.get("eagle_config")
    if eagle is None:
        return True
    if not isinstance(eagle, dict):
        raise ConfigImportError(f"{label}: field eagle_config: expected a mapping")
    value = eagle.get("use_aux_hidden_state", True)
    if not isinstance(value, bool):
        raise ConfigImportError(f"{label}: field eagle_config.use_aux_hidden_state: expected true or false")
    return value


def head_layout_from_config(cfg: dict[str, Any], label: str = "config.json", method: str | None = None,
                            stores_embedding: bool = False) -> HeadLayout:
    """An EAGLE-3 (or, with ``method="eagle"``, EAGLE-1/2) head's shapes from its config.json dict.

    EAGLE-3 is recognised from ``architectures``; an EAGLE-1 config is a plain one-layer
    LlamaForCausalLM, so it must be asked for. ``draft_vocab_size`` defaults to ``vocab_size``
    (a full-vocabulary head), ``target_hidden_size`` to ``hidden_size``.
    """
    if not isinstance(cfg, dict):
        raise ConfigImportError(f"{label}: expected a JSON object")
    archs = _architectures(cfg, label)
    is_eagle3 = any(a in EAGLE3_ARCHITECTURES for a in archs)
    method = method or ("eagle3" if is_eagle3 else None)
    if method not in ("eagle", "eagle3"):
        raise ConfigImportError(f"{label}: field architectures: {archs or 'none'} is not an EAGLE-3 head "
                                f"({', '.join(EAGLE3_ARCHITECTURES)}); an EAGLE-1/2 head needs method 'eagle'")
    layer = cfg.get(_SPECULATORS_LAYER_KEY, cfg)
    if not isinstance(layer, dict):
        raise ConfigImportError(f"{label}: field {_SPECULATORS_LAYER_KEY}: expected a mapping")
    hidden = int_field(layer, label, "hidden_size")
    heads = int_field(layer, label, "num_attention_heads", high=MAX_HEADS)
    # The speculators format keeps vocab_size with the layer fields; the EAGLE format at the top.
    vocab = int_field(layer if first(layer, "vocab_size") is not None else cfg, label, "vocab_size")
    fields = {
        "method": method, "hidden_size": hidden, "num_attention_heads": heads,
        "num_kv_heads": int_field(layer, label, "num_key_value_heads", high=MAX_HEADS, default=heads),
        "head_dim": int_field(layer, label, "head_dim", default=max(1, hidden // heads)),
        "intermediate_size": int_field(layer, label, "intermediate_size"),
        "num_layers": int_field(layer, label, "num_hidden_layers", high=MAX_LAYERS, default=1),
        "vocab_size": vocab,
        "target_hidden_size": int_field(cfg, label, "target_hidden_size", default=hidden),
        "draft_vocab_size": int_field(cfg, label, "draft_vocab_size", default=vocab) if method == "eagle3" else None,
        "stores_embedding": stores_embedding,
        "uses_aux_hidden_states": _aux_hidden_states(cfg, label),
    }
    try:
        return HeadLayout(**fields)
    except ValidationError as err:
        raise ConfigImportError(f"{label}: {err.errors()[0]['msg'].removeprefix('Value error, ')}") from None


def mtp_layers_from_config(cfg: dict[str, Any], label: str = "config.json") -> int:
    """MTP modules a target checkpoint ships (``num_nextn_predict_layers``); none is a one-line error.

    DeepSeek-V3/R1, GLM-4.5 and MiMo-7B write num_nextn_predict_layers in config.json; a checkpoint
    without it (or with 0) has no MTP layers to draft with.
    """
    if not isinstance(cfg, dict):
        raise ConfigImportError(f"{label}: expected a JSON object")
    layers = int_field(cfg, label, "num_nextn_predict_layers", low=0, high=MAX_LAYERS, default=0)
    if layers == 0:
        raise ConfigImportError(f"{label}: field num_nextn_predict_layers: the checkpoint ships no MTP layers")
    return layers

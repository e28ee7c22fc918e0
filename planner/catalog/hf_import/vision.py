"""Parameters of the vision encoder and projector of a multimodal checkpoint, from its vision_config.

Each formula follows the transformers module that vLLM and SGLang load beside the language model;
the tests check the totals against the checkpoints' published parameter counts (Gemma-3 27B,
Llama-4 Scout / Maverick, Mistral-Small-3.1).
"""

from __future__ import annotations

from typing import Any

from planner.catalog.hf_import.fields import MAX_LAYERS, MAX_WIDTH, int_field
from planner.errors import ConfigImportError

__all__ = ["vision_params"]

_RGB = 3


def _linear(n_in: int, n_out: int, bias: bool) -> int:
    """A Linear layer's parameters."""
    return n_in * n_out + (n_out if bias else 0)


def siglip_params(v: dict[str, Any], text_hidden: int, label: str) -> int:
    """SigLIP vision tower (no pooling head) + Gemma-3's projector (RMSNorm + one matrix), in parameters.

    modeling_siglip: conv patch embedding with bias, learned positions per patch, q/k/v/out and
    fc1/fc2 with biases, two LayerNorms per layer and a post LayerNorm; Gemma3MultiModalProjector:
    mm_soft_emb_norm (vision width) and mm_input_projection_weight (vision x text width).
    """
    h, i, layers, patch, image = _vit_shape(v, label, default_channels=_RGB)
    patches = (image // patch) ** 2
    layer = 4 * _linear(h, h, True) + _linear(h, i, True) + _linear(i, h, True) + 2 * 2 * h
    tower = _RGB * patch * patch * h + h + patches * h + layers * layer + 2 * h
    return tower + h + h * text_hidden


def llama4_vision_params(v: dict[str, Any], text_hidden: int, label: str) -> int:
    """Llama-4 vision model + pixel-shuffle adapter + projector, in parameters.

    modeling_llama4: unfold-conv patch linear without bias, class embedding, positions for every
    patch + class, LayerNorm pre/post, layers with biased q/k/v/o and fc1/fc2 and two LayerNorms;
    Llama4VisionPixelShuffleMLP fc1 (hidden / ratio^2 -> projector_input_dim) and fc2
    (projector_output_dim^2) without bias; Llama4MultiModalProjector (vision_output_dim -> text).
    """
    h, i, layers, patch, image = _vit_shape(v, label, default_channels=_RGB)
    patches = (image // patch) ** 2 + 1
    layer = 4 * _linear(h, h, True) + _linear(h, i, True) + _linear(i, h, True) + 2 * 2 * h
    tower = _RGB * patch * patch * h + h + patches * h + 2 * 2 * h + layers * layer
    ratio = v.get("pixel_shuffle_ratio", 0.5)
    if not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        raise ConfigImportError(f"{label}: field vision_config.pixel_shuffle_ratio: expected a number in (0, 1]")
    proj_in = int_field(v, label, "projector_input_dim")
    proj_out = int_field(v, label, "projector_output_dim")
    adapter = int(h / ratio**2) * proj_in + proj_out * proj_out
    return tower + adapter + int_field(v, label, "vision_output_dim") * text_hidden


def pixtral_params(v: dict[str, Any], cfg: dict[str, Any], text_hidden: int, label: str) -> int:
    """Pixtral vision encoder + Mistral-3 projector, in parameters.

    modeling_pixtral: conv patch embedding without bias, RMSNorm ln_pre, layers with bias-free
    q/k/v/o and gated gate/up/down, two RMSNorms (2D RoPE: no position table);
    Mistral3MultiModalProjector: RMSNorm, patch merger (h * merge^2 -> h), linear_1 and linear_2.
    """
    h, i, layers, patch, _ = _vit_shape(v, label, default_channels=_RGB)
    layer = 4 * h * h + 3 * h * i + 2 * h
    tower = _RGB * patch * patch * h + h + layers * layer
    merge = int_field(cfg, label, "spatial_merge_size", default=2, high=64)
    bias = bool(cfg.get("multimodal_projector_bias"))
    projector = h + h * merge * merge * h + _linear(h, text_hidden, bias) + _linear(text_hidden, text_hidden, bias)
    return tower + projector


def _vit_shape(v: dict[str, Any], label: str, default_channels: int) -> tuple[int, int, int, int, int]:
    channels = int_field(v, label, "num_channels", default=default_channels, high=16)
    if channels != _RGB:
        raise ConfigImportError(f"{label}: field vision_config.num_channels: only RGB (3) encoders are counted")
    return (int_field(v, label, "hidden_size"), int_field(v, label, "intermediate_size"),
            int_field(v, label, "num_hidden_layers", high=MAX_LAYERS), int_field(v, label, "patch_size", high=4096),
            int_field(v, label, "image_size", high=MAX_WIDTH, default=1))


def vision_params(cfg: dict[str, Any], text_hidden: int, label: str) -> int:
    """Vision parameters of a multimodal config.json (0 when it has no vision_config).

    specplan's own ``vision_params`` key (written by spec_to_config) wins over vision_config.
    """
    if cfg.get("vision_params") is not None:
        return int_field(cfg, label, "vision_params", low=0, high=10**13)
    v = cfg.get("vision_config")
    if v is None:
        return 0
    if not isinstance(v, dict):
        raise ConfigImportError(f"{label}: field vision_config: expected an object")
    kind = v.get("model_type")
    where = f"{label}: vision_config"
    if kind in ("siglip_vision_model", "siglip"):
        return siglip_params(v, text_hidden, where)
    if kind == "llama4_vision_model":
        return llama4_vision_params(v, text_hidden, where)
    if kind == "pixtral":
        return pixtral_params(v, cfg, text_hidden, where)
    raise ConfigImportError(f"{label}: field vision_config.model_type: {kind!r} is not counted "
                            "(known: siglip_vision_model, llama4_vision_model, pixtral)")

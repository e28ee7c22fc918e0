"""Build a ModelSpec from a Hugging Face config.json (and safetensors headers when present).

Field names follow transformers' configuration classes; multimodal checkpoints
nest the language model under ``text_config``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from planner.catalog.loading import format_validation_error
from planner.catalog.safetensors import CheckpointSummary, summarize_checkpoint
from planner.catalog.schemas import MLASpec, MoESpec, ModelSpec
from planner.errors import ConfigImportError, SpecplanError
from planner.catalog.tokenizers import token_pairs
from planner.inputs import check_name, read_json, shown

__all__ = ["ImportedModel", "SUPPORTED_MODEL_TYPES", "spec_from_config", "load_model_dir", "spec_to_config"]

# Architectures whose parameter layout specplan knows (tests cover each).
SUPPORTED_MODEL_TYPES = (
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe",
    "gemma", "gemma2", "phi3", "deepseek_v2", "deepseek_v3",
)
# transformers' class defaults for tie_word_embeddings when the key is absent.
_TIED_BY_DEFAULT = {"gemma", "gemma2"}
_QKV_BIAS_HARDCODED = {"qwen2", "qwen2_moe"}
_QK_NORM = {"qwen3", "qwen3_moe"}
_FOUR_NORMS = {"gemma2"}
_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
_QUANT_TO_FORMAT = {"awq": "int4-awq", "gptq": "int4-gptq", "fp8": "fp8"}
# Upper bounds far above any released model; past them a config.json is corrupt or hostile
# (10^12 layers would make every later sum meaningless).
_MAX_LAYERS = 10_000
_MAX_WIDTH = 10_000_000  # hidden, MLP and vocabulary sizes
_MAX_HEADS = 100_000
_MAX_CONTEXT = 1_000_000_000


@dataclass(frozen=True)
class ImportedModel:
    """A footprint read from disk, with what the checkpoint itself says."""

    spec: ModelSpec
    checkpoint: CheckpointSummary | None
    precision: str | None  # weight format named by quantization_config, if any


def _first(cfg: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        if cfg.get(key) is not None:
            return cfg[key]
    return default


def _require(cfg: dict[str, Any], label: str, *keys: str) -> Any:
    value = _first(cfg, *keys)
    if value is None:
        raise ConfigImportError(f"{label}: field {keys[0]}: missing")
    return value


def _whole(value: Any, label: str, key: str, low: int, high: int) -> int:
    """``value`` as a whole number from ``low`` to ``high``, or a one-line error naming the field."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigImportError(f"{label}: field {key}: expected a whole number, got {shown(value, 40)}")
    if not low <= value <= high:
        raise ConfigImportError(f"{label}: field {key}: {shown(value, 40)} is outside {low}..{high}")
    return value


def _int(cfg: dict[str, Any], label: str, *keys: str, low: int = 1, high: int = _MAX_WIDTH,
         default: int | None = None) -> int:
    """A required (or defaulted) integer field, checked; the first of ``keys`` present counts."""
    key = next((k for k in keys if cfg.get(k) is not None), None)
    if key is None:
        if default is not None:
            return default
        raise ConfigImportError(f"{label}: field {keys[0]}: missing")
    return _whole(cfg[key], label, key, low, high)


def _opt_int(cfg: dict[str, Any], label: str, key: str, low: int = 1, high: int = _MAX_WIDTH) -> int | None:
    return None if cfg.get(key) is None else _whole(cfg[key], label, key, low, high)


def _moe(cfg: dict[str, Any], model_type: str, label: str, layers: int) -> MoESpec | None:
    experts = _first(cfg, "num_local_experts", "num_experts", "n_routed_experts")
    if experts is None or experts == 0 or experts == 1:
        return None
    experts = _int(cfg, label, "num_local_experts", "num_experts", "n_routed_experts", high=_MAX_HEADS)
    per_token = _int(cfg, label, "num_experts_per_tok", high=experts)
    if model_type.startswith("deepseek"):
        width = _int(cfg, label, "moe_intermediate_size")
        shared = _opt_int(cfg, label, "n_shared_experts", low=0, high=_MAX_HEADS) or 0
        return MoESpec(
            num_experts=experts, experts_per_token=per_token,
            expert_intermediate_size=width, num_shared_experts=shared,
            shared_expert_intermediate_size=shared * width,
            first_dense_layers=_opt_int(cfg, label, "first_k_dense_replace", low=0, high=layers) or 0,
            router_bias=cfg.get("topk_method") == "noaux_tc",
        )
    shared_width = _opt_int(cfg, label, "shared_expert_intermediate_size", low=0) or 0
    return MoESpec(
        num_experts=experts, experts_per_token=per_token,
        expert_intermediate_size=_int(cfg, label, "moe_intermediate_size", "intermediate_size"),
        num_shared_experts=1 if shared_width else 0, shared_expert_intermediate_size=shared_width,
        shared_expert_gate=bool(shared_width),
    )


def _mla(cfg: dict[str, Any], label: str) -> MLASpec | None:
    if cfg.get("kv_lora_rank") is None:
        return None
    return MLASpec(
        q_lora_rank=_opt_int(cfg, label, "q_lora_rank"), kv_lora_rank=_int(cfg, label, "kv_lora_rank"),
        qk_nope_head_dim=_int(cfg, label, "qk_nope_head_dim", high=_MAX_HEADS),
        qk_rope_head_dim=_int(cfg, label, "qk_rope_head_dim", high=_MAX_HEADS),
        v_head_dim=_int(cfg, label, "v_head_dim", high=_MAX_HEADS),
    )


def _default_head_dim(cfg: dict[str, Any], label: str, hidden: int, heads: int) -> int:
    """Per-head query/key width: MLA's nope + rope dims, else hidden / heads (LlamaConfig's rule)."""
    if cfg.get("kv_lora_rank") is not None:
        return (_int(cfg, label, "qk_nope_head_dim", high=_MAX_HEADS)
                + _int(cfg, label, "qk_rope_head_dim", high=_MAX_HEADS))
    return max(hidden // heads, 1)


def _sliding(cfg: dict[str, Any], model_type: str, layers: int, label: str) -> tuple[int | None, int]:
    if not cfg.get("sliding_window") or cfg.get("use_sliding_window") is False:
        return None, 0
    window = _int(cfg, label, "sliding_window", high=_MAX_CONTEXT)
    if "layer_types" in cfg:
        kinds = cfg["layer_types"]
        if not isinstance(kinds, list) or not all(isinstance(t, str) for t in kinds):
            raise ConfigImportError(f"{label}: field layer_types: expected a list of strings")
        return window, min(sum(t == "sliding_attention" for t in kinds), layers)
    if model_type == "gemma2":
        return window, layers // 2  # even layers slide, odd layers attend globally
    return window, layers


def spec_from_config(cfg: dict[str, Any], label: str, model_id: str | None = None) -> ModelSpec:
    """Translate one config.json dict into a ModelSpec (raises ConfigImportError with the field)."""
    text = cfg.get("text_config") or {}
    if not isinstance(text, dict):
        raise ConfigImportError(f"{label}: field text_config: expected an object")
    cfg = {**cfg, **text}
    model_type = _require(cfg, label, "model_type")
    if not isinstance(model_type, str) or model_type not in SUPPORTED_MODEL_TYPES:
        raise ConfigImportError(
            f"{label}: field model_type: {shown(model_type, 40)} is not supported (known: {', '.join(SUPPORTED_MODEL_TYPES)})"
        )
    layers = _int(cfg, label, "num_hidden_layers", "n_layer", "n_layers", "num_layers", high=_MAX_LAYERS)
    hidden = _int(cfg, label, "hidden_size", "d_model", "n_embd")
    heads = _int(cfg, label, "num_attention_heads", "n_head", high=_MAX_HEADS)
    vocab = _int(cfg, label, "vocab_size")
    window, windowed = _sliding(cfg, model_type, layers, label)
    name = model_id or _name_or_path(cfg, label) or label
    tied = cfg.get("tie_word_embeddings", model_type in _TIED_BY_DEFAULT)
    if not isinstance(tied, bool):
        raise ConfigImportError(f"{label}: field tie_word_embeddings: expected true or false, got {shown(tied, 40)}")
    raw = {
        "id": name,
        "family": model_type.split("_")[0],
        "generation": "local",
        "architecture": model_type,
        "tokenizer": f"unknown:{model_type}:{vocab}",
        "tokenizer_vocab_size": vocab,
        "vocab_size": vocab,
        "num_layers": layers,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_kv_heads": _int(cfg, label, "num_key_value_heads", high=heads, default=heads),
        "head_dim": _int(cfg, label, "head_dim", high=_MAX_HEADS, default=_default_head_dim(cfg, label, hidden, heads)),
        "intermediate_size": _int(cfg, label, "intermediate_size", "ffn_dim", "n_inner"),
        "attention_bias": model_type in _QKV_BIAS_HARDCODED or bool(cfg.get("attention_bias")),
        "qk_norm": model_type in _QK_NORM,
        "norms_per_layer": 4 if model_type in _FOUR_NORMS else 2,
        "sliding_window_tokens": window,
        "sliding_window_layers": windowed,
        "tie_word_embeddings": tied,
        "max_context_tokens": _int(cfg, label, "max_position_embeddings", "n_positions", high=_MAX_CONTEXT),
        "torch_dtype": _first(cfg, "torch_dtype", "dtype", default="bfloat16"),
        "moe": _moe(cfg, model_type, label, layers),
        "mla": _mla(cfg, label),
        "source": label,
    }
    try:
        return ModelSpec.model_validate(raw)
    except ValidationError as err:
        raise ConfigImportError(format_validation_error(label, repr(name), err)) from None
    except (KeyError, TypeError) as err:
        raise ConfigImportError(f"{label}: field {err}: missing or malformed") from None


# transformers writes into ``_name_or_path`` the string from_pretrained was given: a Hub repo id or
# the folder the checkpoint was saved from. Both are made of the POSIX portable file-name characters
# (Hub ids are a subset) plus path separators, a drive colon, '~', spaces and '+', '@', '=', ','.
# Anything else (markup, quotes, shell syntax) means a damaged or hand-edited config: refused.
_NAME_OR_PATH = re.compile(r"[A-Za-z0-9._\-/\\:~ +@=,]+")


def _name_or_path(cfg: dict[str, Any], label: str) -> str | None:
    """config.json's ``_name_or_path``: a Hub repo id or a saved-from path, on one line."""
    name = cfg.get("_name_or_path")
    if name is None or name == "":
        return None
    if not isinstance(name, str):
        raise ConfigImportError(f"{label}: field _name_or_path: expected a string, got {shown(name, 40)}")
    try:
        name = check_name(name, f"{label}: field _name_or_path")
    except SpecplanError as exc:
        raise ConfigImportError(str(exc)) from None
    if not _NAME_OR_PATH.fullmatch(name):
        raise ConfigImportError(
            f"{label}: field _name_or_path {shown(name, 60)} is neither a Hugging Face repo id nor a path "
            "(letters, digits, . _ - / \\ : ~ space + @ = , only)"
        )
    return name


def _read_config(path: Path) -> dict[str, Any]:
    try:
        doc = read_json(path)
    except SpecplanError as exc:
        raise ConfigImportError(str(exc)) from None
    if not isinstance(doc, dict):
        raise ConfigImportError(f"{path}: expected a JSON object")
    return doc


def _tokenizer_identity(folder: Path) -> tuple[str, int] | None:
    """(identity, len(tokenizer)) from tokenizer.json: a hash of the token -> id map.

    Two checkpoints whose tokenizers map every token to the same id get the same
    identity, which is what speculative decoding needs.
    """
    path = folder / "tokenizer.json"
    if not path.is_file():
        return None
    try:
        pairs = token_pairs(read_json(path))
    except SpecplanError:
        return None
    if pairs is None:
        return None  # not a token -> id map: no identity (the vocab size stays the config's)
    digest = hashlib.sha256(json.dumps(sorted(pairs.items())).encode()).hexdigest()[:16]
    return f"sha256:{digest}", len(set(pairs.values()))


def load_model_dir(path: str | Path) -> ImportedModel:
    """Import a model from a folder holding config.json (or the config file itself)."""
    path = Path(path)
    config = path / "config.json" if path.is_dir() else path
    if not config.is_file():
        raise ConfigImportError(f"{path}: no config.json found")
    cfg = _read_config(config)
    spec = spec_from_config(cfg, str(config), model_id=_name_or_path(cfg, str(config)) or config.parent.name)
    checkpoint = summarize_checkpoint(config.parent)
    updates: dict[str, Any] = {}
    if checkpoint is not None:
        params = checkpoint.total_params
        if params is None and checkpoint.dtype is None and not cfg.get("quantization_config"):
            params = checkpoint.total_bytes // _DTYPE_BYTES.get(spec.torch_dtype, 2)
        if params:
            updates["total_params"] = params
        if checkpoint.has_lm_head is not None and "tie_word_embeddings" not in cfg:
            updates["tie_word_embeddings"] = not checkpoint.has_lm_head
        if checkpoint.dtype in _DTYPE_BYTES:
            updates["torch_dtype"] = checkpoint.dtype
        updates["source"] = [str(config), checkpoint.source]
    tok = _tokenizer_identity(config.parent)
    if tok is not None and tok[1] <= spec.vocab_size:
        updates["tokenizer"], updates["tokenizer_vocab_size"] = tok
        updates["tokenizer_file"] = str((config.parent / "tokenizer.json").resolve())
    if updates:
        spec = spec.model_copy(update=updates)
    quant_cfg = cfg.get("quantization_config") or {}
    if not isinstance(quant_cfg, dict):
        raise ConfigImportError(f"{config}: field quantization_config: expected an object")
    quant = quant_cfg.get("quant_method")
    if quant is not None and not isinstance(quant, str):
        raise ConfigImportError(f"{config}: field quantization_config.quant_method: expected a string")
    return ImportedModel(spec=spec, checkpoint=checkpoint, precision=_QUANT_TO_FORMAT.get(str(quant)))


def spec_to_config(m: ModelSpec) -> dict[str, Any]:
    """Write a ModelSpec back as a transformers-style config.json dict (for tests and the probe)."""
    cfg: dict[str, Any] = {
        "model_type": m.architecture,
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
    }
    if m.attention_bias and m.architecture not in _QKV_BIAS_HARDCODED:
        cfg["attention_bias"] = True
    if m.sliding_window_tokens:
        cfg["sliding_window"] = m.sliding_window_tokens
        if m.architecture not in {"gemma2", "mistral", "phi3"}:
            cfg["use_sliding_window"] = True
    if m.moe is not None:
        cfg.update(_moe_to_config(m))
    if m.mla is not None:
        cfg.update(m.mla.model_dump())
    return cfg


def _moe_to_config(m: ModelSpec) -> dict[str, Any]:
    e = m.moe
    assert e is not None
    if m.architecture.startswith("deepseek"):
        return {
            "n_routed_experts": e.num_experts, "num_experts_per_tok": e.experts_per_token,
            "moe_intermediate_size": e.expert_intermediate_size, "n_shared_experts": e.num_shared_experts,
            "first_k_dense_replace": e.first_dense_layers,
            "topk_method": "noaux_tc" if e.router_bias else "greedy",
        }
    if m.architecture == "mixtral":
        return {"num_local_experts": e.num_experts, "num_experts_per_tok": e.experts_per_token}
    out = {"num_experts": e.num_experts, "num_experts_per_tok": e.experts_per_token,
           "moe_intermediate_size": e.expert_intermediate_size}
    if e.shared_expert_intermediate_size:
        out["shared_expert_intermediate_size"] = e.shared_expert_intermediate_size
    return out

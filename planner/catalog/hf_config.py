"""Build a ModelSpec from a Hugging Face config.json (and safetensors headers when present).

Field names follow transformers' configuration classes; multimodal checkpoints
nest the language model under ``text_config``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from planner.catalog.loading import format_validation_error
from planner.catalog.safetensors import CheckpointSummary, summarize_checkpoint
from planner.catalog.schemas import MLASpec, MoESpec, ModelSpec
from planner.errors import ConfigImportError

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


def _moe(cfg: dict[str, Any], model_type: str) -> MoESpec | None:
    experts = _first(cfg, "num_local_experts", "num_experts", "n_routed_experts")
    if not experts or experts <= 1:
        return None
    if model_type.startswith("deepseek"):
        shared = cfg.get("n_shared_experts") or 0
        return MoESpec(
            num_experts=experts, experts_per_token=cfg["num_experts_per_tok"],
            expert_intermediate_size=cfg["moe_intermediate_size"], num_shared_experts=shared,
            shared_expert_intermediate_size=shared * cfg["moe_intermediate_size"],
            first_dense_layers=cfg.get("first_k_dense_replace", 0),
            router_bias=cfg.get("topk_method") == "noaux_tc",
        )
    shared_width = cfg.get("shared_expert_intermediate_size") or 0
    return MoESpec(
        num_experts=experts, experts_per_token=cfg["num_experts_per_tok"],
        expert_intermediate_size=_first(cfg, "moe_intermediate_size", "intermediate_size"),
        num_shared_experts=1 if shared_width else 0, shared_expert_intermediate_size=shared_width,
        shared_expert_gate=bool(shared_width),
    )


def _mla(cfg: dict[str, Any]) -> MLASpec | None:
    if cfg.get("kv_lora_rank") is None:
        return None
    return MLASpec(
        q_lora_rank=cfg.get("q_lora_rank"), kv_lora_rank=cfg["kv_lora_rank"],
        qk_nope_head_dim=cfg["qk_nope_head_dim"], qk_rope_head_dim=cfg["qk_rope_head_dim"],
        v_head_dim=cfg["v_head_dim"],
    )


def _default_head_dim(cfg: dict[str, Any], hidden: int, heads: int) -> int:
    """Per-head query/key width: MLA's nope + rope dims, else hidden / heads (LlamaConfig's rule)."""
    if cfg.get("kv_lora_rank") is not None:
        return int(cfg["qk_nope_head_dim"]) + int(cfg["qk_rope_head_dim"])
    return hidden // heads


def _sliding(cfg: dict[str, Any], model_type: str, layers: int) -> tuple[int | None, int]:
    window = cfg.get("sliding_window")
    if not window or cfg.get("use_sliding_window") is False:
        return None, 0
    if isinstance(cfg.get("layer_types"), list):
        return window, sum(t == "sliding_attention" for t in cfg["layer_types"])
    if model_type == "gemma2":
        return window, layers // 2  # even layers slide, odd layers attend globally
    return window, layers


def spec_from_config(cfg: dict[str, Any], label: str, model_id: str | None = None) -> ModelSpec:
    """Translate one config.json dict into a ModelSpec (raises ConfigImportError with the field)."""
    text = cfg.get("text_config") or {}
    cfg = {**cfg, **text} if isinstance(text, dict) else cfg
    model_type = str(_require(cfg, label, "model_type"))
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ConfigImportError(
            f"{label}: field model_type: {model_type!r} is not supported (known: {', '.join(SUPPORTED_MODEL_TYPES)})"
        )
    layers = _require(cfg, label, "num_hidden_layers", "n_layer", "n_layers", "num_layers")
    hidden = _require(cfg, label, "hidden_size", "d_model", "n_embd")
    heads = _require(cfg, label, "num_attention_heads", "n_head")
    vocab = _require(cfg, label, "vocab_size")
    window, windowed = _sliding(cfg, model_type, layers)
    name = model_id or cfg.get("_name_or_path") or label
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
        "num_kv_heads": _first(cfg, "num_key_value_heads", default=heads),
        "head_dim": _first(cfg, "head_dim", default=_default_head_dim(cfg, hidden, heads)),
        "intermediate_size": _require(cfg, label, "intermediate_size", "ffn_dim", "n_inner"),
        "attention_bias": model_type in _QKV_BIAS_HARDCODED or bool(cfg.get("attention_bias")),
        "qk_norm": model_type in _QK_NORM,
        "norms_per_layer": 4 if model_type in _FOUR_NORMS else 2,
        "sliding_window_tokens": window,
        "sliding_window_layers": windowed,
        "tie_word_embeddings": cfg.get("tie_word_embeddings", model_type in _TIED_BY_DEFAULT),
        "max_context_tokens": _require(cfg, label, "max_position_embeddings", "n_positions"),
        "torch_dtype": _first(cfg, "torch_dtype", "dtype", default="bfloat16"),
        "moe": _moe(cfg, model_type),
        "mla": _mla(cfg),
        "source": label,
    }
    try:
        return ModelSpec.model_validate(raw)
    except ValidationError as err:
        raise ConfigImportError(format_validation_error(label, repr(name), err)) from None
    except (KeyError, TypeError) as err:
        raise ConfigImportError(f"{label}: field {err}: missing or malformed") from None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigImportError(f"{path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigImportError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
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
        doc = json.loads(path.read_text(encoding="utf-8"))
        vocab = doc["model"]["vocab"]
        pairs = dict(vocab) if isinstance(vocab, dict) else {str(t[0]): i for i, t in enumerate(vocab)}
        pairs.update({t["content"]: t["id"] for t in doc.get("added_tokens", [])})
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    digest = hashlib.sha256(json.dumps(sorted(pairs.items())).encode()).hexdigest()[:16]
    return f"sha256:{digest}", len(set(pairs.values()))


def load_model_dir(path: str | Path) -> ImportedModel:
    """Import a model from a folder holding config.json (or the config file itself)."""
    path = Path(path)
    config = path / "config.json" if path.is_dir() else path
    if not config.is_file():
        raise ConfigImportError(f"{path}: no config.json found")
    cfg = _read_config(config)
    spec = spec_from_config(cfg, str(config), model_id=cfg.get("_name_or_path") or config.parent.name)
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
    if updates:
        spec = spec.model_copy(update=updates)
    quant = (cfg.get("quantization_config") or {}).get("quant_method")
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

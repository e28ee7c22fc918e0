"""The per-model_type layout rules of model_types.yaml, validated once."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from planner.catalog.schemas import Frozen

__all__ = ["ArchRules", "rules", "supported_model_types"]

_RULES_FILE = Path(__file__).with_name("model_types.yaml")

# A flag: fixed true/false, or the config.json key whose truth value sets it.
Flag = bool | str


class ArchRules(Frozen):
    """How one model_type stores its parameters (see model_types.yaml)."""

    source: str
    wrapper_of: str | None = Field(None, description="multimodal: model_type of the language model in text_config")
    tied_default: bool = False
    norms_per_layer: int = Field(2, ge=1)
    norm_type: Literal["rms", "layer"] = "rms"
    qkv_bias: Flag = False
    out_bias: Flag = False
    mlp_bias: Flag = False
    qk_norm: Flag = False
    sinks: bool = False
    mlp_gated: bool = True
    lm_head_bias: bool = False
    sliding: Literal["none", "all", "alternate", "pattern", "chunked", "layer_types"] = "all"
    moe: Literal["none", "mixtral", "qwen", "deepseek", "llama4", "gpt_oss", "glm4_moe"] = "none"
    positions: Literal["none", "max_position_embeddings+2", "n_positions"] = "none"
    dense_width_key: str | None = None
    width_default: Literal["none", "4x_hidden"] = "none"
    multi_query_key: str | None = None
    defaults: dict[str, Any] = Field(default_factory=dict)

    def flag(self, name: str, cfg: dict[str, Any]) -> bool:
        """The value of flag ``name`` for this config: fixed, or read from its key."""
        value = getattr(self, name)
        return value if isinstance(value, bool) else bool(cfg.get(value))


@lru_cache(maxsize=1)
def rules() -> dict[str, ArchRules]:
    """model_type -> its rules."""
    raw = yaml.safe_load(_RULES_FILE.read_text())
    return {name: ArchRules.model_validate(body) for name, body in raw.items()}


def supported_model_types() -> tuple[str, ...]:
    """Every model_type the importer knows, in file order."""
    return tuple(rules())

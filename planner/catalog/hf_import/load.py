"""Import a model from a folder holding config.json (safetensors headers and tokenizer.json when present)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planner.catalog.hf_import.names import name_or_path
from planner.catalog.hf_import.spec import spec_from_config
from planner.catalog.safetensors import CheckpointSummary, summarize_checkpoint
from planner.catalog.schemas import ModelSpec
from planner.catalog.tokenizers import token_pairs
from planner.errors import ConfigImportError, SpecplanError
from planner.inputs import read_json

__all__ = ["ImportedModel", "load_model_dir", "read_config_dict"]

_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


@dataclass(frozen=True)
class ImportedModel:
    """A footprint read from disk, with what the checkpoint itself says."""

    spec: ModelSpec
    checkpoint: CheckpointSummary | None
    precision: str | None  # weight format named by quantization_config, if any (= spec.weight_format)


def read_config_dict(path: Path) -> dict[str, Any]:
    """A config.json as a dict (size-limited, safe JSON); anything else is a one-line ConfigImportError."""
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


def _checkpoint_updates(cfg: dict[str, Any], spec: ModelSpec, checkpoint: CheckpointSummary, config: Path) -> dict:
    updates: dict[str, Any] = {}
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
    return updates


def load_model_dir(path: str | Path) -> ImportedModel:
    """Import a model from a folder holding config.json (or the config file itself)."""
    path = Path(path)
    config = path / "config.json" if path.is_dir() else path
    if not config.is_file():
        raise ConfigImportError(f"{path}: no config.json found")
    cfg = read_config_dict(config)
    spec = spec_from_config(cfg, str(config), model_id=name_or_path(cfg, str(config)) or config.parent.name)
    checkpoint = summarize_checkpoint(config.parent)
    updates = _checkpoint_updates(cfg, spec, checkpoint, config) if checkpoint is not None else {}
    tok = _tokenizer_identity(config.parent)
    if tok is not None and tok[1] <= spec.vocab_size:
        updates["tokenizer"], updates["tokenizer_vocab_size"] = tok
        updates["tokenizer_file"] = str((config.parent / "tokenizer.json").resolve())
    if updates:
        spec = spec.model_copy(update=updates)
    return ImportedModel(spec=spec, checkpoint=checkpoint, precision=spec.weight_format)

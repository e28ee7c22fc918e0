"""Resolve what the user typed (catalogue name or local path) into catalogue entries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from planner.catalog.hf_config import load_model_dir
from planner.catalog.loading import hardware_catalog, model_catalog
from planner.catalog.names import resolve
from planner.catalog.schemas import GpuSpec, ModelSpec
from planner.errors import IncompatiblePairError

__all__ = ["ResolvedModel", "find_gpu", "find_model", "check_tokenizers", "looks_like_path"]


@dataclass(frozen=True)
class ResolvedModel:
    """A model footprint plus where it came from and the precision its checkpoint implies."""

    spec: ModelSpec
    origin: str  # "catalog" or the path it was read from
    checkpoint_precision: str | None = None


def find_gpu(name: str) -> GpuSpec:
    """A catalogue accelerator by id, name or alias (case-insensitive)."""
    cat = hardware_catalog()
    return resolve(name, cat.index, "GPU")


def looks_like_path(name: str) -> bool:
    """True when ``name`` is meant as a local folder or config.json rather than a catalogue name."""
    p = Path(name).expanduser()
    return p.exists() or name.startswith((".", "/", "~")) or name.endswith(".json")


def _architecture_key(m: ModelSpec) -> tuple:
    return (m.architecture, m.num_layers, m.hidden_size, m.num_attention_heads, m.num_kv_heads,
            m.head_dim, m.intermediate_size, m.vocab_size, m.moe, m.mla)


def _adopt_catalog_identity(spec: ModelSpec) -> ModelSpec:
    """Give a config-only import the tokenizer identity of the catalogue entry it matches.

    A checkpoint with the same repo id, or with exactly the architecture of one
    catalogue entry, is that model (or a fine-tune of it), and fine-tunes keep the
    tokenizer. A tokenizer.json hash from disk is kept as it is.
    """
    cat = model_catalog()
    entry = cat.index.get(spec.id.lower())
    if entry is None:
        matches = [m for m in cat if _architecture_key(m) == _architecture_key(spec)]
        entry = matches[0] if len({m.tokenizer for m in matches}) == 1 else None
    if entry is None:
        return spec
    update = {"family": entry.family, "generation": entry.generation}
    if spec.tokenizer.startswith("unknown:"):
        update |= {"tokenizer": entry.tokenizer, "tokenizer_vocab_size": entry.tokenizer_vocab_size}
    return spec.model_copy(update=update)


def find_model(name: str) -> ResolvedModel:
    """A model from the catalogue, or from a local folder / config.json when given a path."""
    if looks_like_path(name):
        imported = load_model_dir(Path(name).expanduser())
        spec = _adopt_catalog_identity(imported.spec)
        return ResolvedModel(spec=spec, origin=str(Path(name).expanduser()), checkpoint_precision=imported.precision)
    cat = model_catalog()
    return ResolvedModel(spec=resolve(name, cat.index, "model"), origin="catalog")


def check_tokenizers(target: ModelSpec, draft: ModelSpec, allow_mismatch: bool = False) -> str | None:
    """Refuse a draft whose tokenizer differs from the target's; return a warning when overridden.

    Speculative decoding compares token ids, so the two models must share one
    tokenizer; padded embedding sizes may differ (Qwen2.5 0.5B vs 72B).
    """
    if target.tokenizer == draft.tokenizer:
        return None
    unverified = target.tokenizer.startswith("unknown:") or draft.tokenizer.startswith("unknown:")
    reason = (
        f"cannot verify that draft {draft.id} and target {target.id} share a tokenizer (no tokenizer.json)"
        if unverified
        else f"draft {draft.id} uses tokenizer {draft.tokenizer!r} ({draft.tokenizer_vocab_size} tokens) "
        f"but target {target.id} uses {target.tokenizer!r} ({target.tokenizer_vocab_size} tokens)"
    )
    if not allow_mismatch:
        raise IncompatiblePairError(f"{reason}; token ids would not match (--allow-tokenizer-mismatch overrides)")
    return f"{reason}; proceeding because --allow-tokenizer-mismatch was given"

"""The catalogue of published heads and MTP checkpoints (``head_db/``) and the heads of a target."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator, model_validator

from planner.catalog.loading import Catalog, load_entries
from planner.catalog.lookup import find_model
from planner.catalog.schemas import Frozen
from planner.paths import data_dir
from planner.proposers.heads import HeadLayout
from planner.proposers.methods import require_sources

__all__ = ["HeadEntry", "head_catalog", "heads_for", "HEAD_METHODS"]

HEAD_METHODS = ("eagle", "eagle3", "mtp")
# Figures a feature-level head takes from its own config.json; an MTP entry takes them from its target.
_LAYER_FIELDS = ("hidden_size", "num_attention_heads", "num_kv_heads", "head_dim", "intermediate_size", "vocab_size")


class HeadEntry(Frozen):
    """One published proposer checkpoint: an EAGLE/EAGLE-3 head repo, or a release's own MTP layers."""

    id: str = Field(description="Hugging Face repo id of the head (for MTP: the release that ships the layers)")
    aliases: list[str] = Field(default_factory=list)
    method: Literal["eagle", "eagle3", "mtp"]
    targets: list[str] = Field(min_length=1, description="catalogue release ids the head was trained for")
    hidden_size: int | None = Field(None, gt=0)
    target_hidden_size: int | None = Field(None, gt=0, description="when the fc reads another width than hidden_size")
    num_attention_heads: int | None = Field(None, gt=0)
    num_kv_heads: int | None = Field(None, gt=0)
    head_dim: int | None = Field(None, gt=0)
    intermediate_size: int | None = Field(None, gt=0)
    num_layers: int = Field(1, gt=0)
    vocab_size: int | None = Field(None, gt=0, description="the target vocabulary (t2d rows)")
    draft_vocab_size: int | None = Field(None, gt=0, description="EAGLE-3 lm_head rows")
    stores_embedding: bool = False
    torch_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    num_nextn_predict_layers: int | None = Field(None, gt=0, description="MTP modules in the checkpoint")
    published_bytes: int | None = Field(None, gt=0, description="weight file size shown on the Hub, bytes")
    source: list[str]
    notes: str | None = None

    _sourced = field_validator("source")(require_sources)

    @model_validator(mode="after")
    def _fields_of_method(self) -> HeadEntry:
        given = [f for f in _LAYER_FIELDS if getattr(self, f) is not None]
        if self.method == "mtp":
            if self.num_nextn_predict_layers is None:
                raise ValueError("an mtp entry needs num_nextn_predict_layers")
            if given or self.draft_vocab_size is not None:
                raise ValueError(f"an mtp entry takes its layer shapes from its target; drop {', '.join(given)}")
        else:
            missing = [f for f in _LAYER_FIELDS if getattr(self, f) is None]
            if missing:
                raise ValueError(f"a {self.method} head needs {', '.join(missing)}")
            if self.num_nextn_predict_layers is not None:
                raise ValueError("num_nextn_predict_layers belongs to mtp entries")
            self.layout  # noqa: B018 - validates the shapes (heads divide, draft vocab fits)
        return self

    @property
    def layout(self) -> HeadLayout:
        """The head's shapes for planner.proposers.heads (EAGLE/EAGLE-3 entries only)."""
        if self.method == "mtp":
            raise ValueError(f"{self.id}: an MTP entry has no head layout of its own (use planner.proposers.mtp)")
        return HeadLayout(method=self.method, hidden_size=self.hidden_size,
                          target_hidden_size=self.target_hidden_size or self.hidden_size,
                          num_attention_heads=self.num_attention_heads, num_kv_heads=self.num_kv_heads,
                          head_dim=self.head_dim, intermediate_size=self.intermediate_size,
                          num_layers=self.num_layers, vocab_size=self.vocab_size,
                          draft_vocab_size=self.draft_vocab_size, stores_embedding=self.stores_embedding)

    @property
    def names(self) -> list[str]:
        """Every string that resolves to this entry."""
        return [self.id, *self.aliases]


@lru_cache(maxsize=1)
def head_catalog() -> Catalog:
    """Every head and MTP entry in the built-in ``head_db/``."""
    return load_entries(data_dir("head_db"), "heads", HeadEntry, "head_db")  # type: ignore[type-var]


def heads_for(target: str, method: str | None = None) -> list[HeadEntry]:
    """Catalogued heads (optionally of one method) trained for the release ``target`` names.

    ``target`` is any name planner.catalog.lookup.find_model accepts; a head lists the exact
    releases it serves (an Instruct head does not serve the base release), matched on the
    catalogue release id.
    """
    spec = find_model(target).spec
    keys = {k.lower() for k in (spec.catalog_id, spec.id) if k}
    return [h for h in head_catalog() if {t.lower() for t in h.targets} & keys
            and (method is None or h.method == method)]

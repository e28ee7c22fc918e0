"""The proposal methods specplan knows, and what each one is, as data (methods.yaml beside this file)."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from typing import Literal, get_args

from pydantic import Field, field_validator, model_validator

from planner.catalog.loading import load_entries
from planner.catalog.schemas import Frozen
from planner.errors import CatalogError

__all__ = ["Method", "METHODS", "MethodInfo", "method_table", "method_info", "require_sources"]

Method = Literal["draft", "eagle", "eagle3", "mtp", "ngram", "suffix"]
METHODS: tuple[str, ...] = get_args(Method)


def require_sources(value: list[str]) -> list[str]:
    """A data entry's sources: at least one, none blank."""
    if not value or not all(s.strip() for s in value):
        raise ValueError("every entry needs a non-empty source")
    return value


class MethodInfo(Frozen):
    """What one proposal method is and what a proposal step reads (methods.yaml)."""

    method: Method
    what: str
    reads_per_step: str
    reuses_target_embedding: bool = Field(description="the engine points the proposer at the target's embedding")
    reuses_target_lm_head: bool = Field(description="the proposer's logits go through the target's lm_head")
    own_kv_cache: bool = Field(description="the proposer's own layer(s) cache K/V for every context token")
    host_only: bool = Field(description="runs on the host CPU: no GPU weights, no GPU KV cache")
    host_step_us: float | None = Field(None, ge=0, description="host time of one proposal step, microseconds")
    host_step_note: str | None = None
    own_lm_head_engines: list[str] = Field(default_factory=list,
                                           description="engines that load the proposer's own output head beside the target's")
    own_lm_head_source: list[str] = Field(default_factory=list)
    source: list[str]

    _sourced = field_validator("source")(require_sources)

    @model_validator(mode="after")
    def _host_consistent(self) -> MethodInfo:
        if self.host_only and (self.own_kv_cache or self.reuses_target_lm_head):
            raise ValueError("a host-only method holds no KV cache and runs no lm_head")
        if self.host_only and self.host_step_us is None and not self.host_step_note:
            raise ValueError("a host-only method needs host_step_us or a host_step_note saying why there is none")
        return self

    @property
    def id(self) -> str:
        """Catalogue key (load_entries indexes entries by id)."""
        return self.method

    @property
    def names(self) -> list[str]:
        """Strings that resolve to this entry."""
        return [self.method]


@lru_cache(maxsize=1)
def method_table() -> dict[str, MethodInfo]:
    """Every method's description, keyed by method name; the YAML must describe each method once."""
    entries = load_entries(files("planner.proposers"), "methods", MethodInfo, "planner/proposers")  # type: ignore[type-var]
    table = {e.method: e for e in entries}
    missing = [m for m in METHODS if m not in table]
    if missing:
        raise CatalogError(f"planner/proposers/methods.yaml: no entry for method(s) {', '.join(missing)}")
    return table


def method_info(method: Method) -> MethodInfo:
    """The description of one method."""
    return method_table()[method]

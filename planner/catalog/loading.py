"""Read catalogue YAML files into validated, frozen entries.

Errors name the file, the entry and the field on one line, so a user editing a
catalogue can find the mistake without reading a traceback.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources.abc import Traversable
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from planner.catalog.schemas import GpuSpec, ModelSpec, ModelVariant
from planner.errors import CatalogError
from planner.paths import data_dir

__all__ = [
    "Catalog",
    "load_entries",
    "hardware_catalog",
    "model_catalog",
    "format_validation_error",
    "safe_load",
]

Entry = TypeVar("Entry", GpuSpec, ModelSpec)


class Catalog(tuple):  # type: ignore[type-arg]
    """An ordered tuple of entries with a name index (ids and aliases, case-insensitive)."""

    index: dict[str, Any]

    def __new__(cls, entries: list[Any], origin: dict[str, str]) -> Catalog:
        self = super().__new__(cls, entries)
        self.index = _build_index(entries, origin)
        return self


def _lookup_names(entry: Any) -> list[str]:
    """Lower-cased names that resolve to ``entry``: id, aliases, and the repo name after the organisation.

    The repo name alone (``Llama-3.2-1B-Instruct``) resolves too, so a table that shows
    only that part still prints something that can be typed back.
    """
    tail = [entry.id.rsplit("/", 1)[-1]] if "/" in entry.id else []
    return list(dict.fromkeys(n.lower() for n in [*entry.names, *tail]))


def _build_index(entries: list[Any], origin: dict[str, str]) -> dict[str, Any]:
    index: dict[str, Any] = {}
    for entry in entries:
        for name in _lookup_names(entry):
            clash = index.get(name)
            if clash is not None and clash is not entry:
                raise CatalogError(
                    f"{origin[entry.id]}: entry {entry.id!r}: name {name!r} is already used by "
                    f"{clash.id!r} in {origin[clash.id]}"
                )
            index[name] = entry
    return index


def format_validation_error(where: str, entry_label: str, err: ValidationError) -> str:
    """One line naming the file, the entry and the first offending field."""
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(entry)"
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{where}: entry {entry_label}: field {field}: {first['msg']}{more}"


# libyaml's safe loader when PyYAML was built with it (5-10x faster start-up), else the
# pure-Python one; both construct plain Python types only.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """Parse YAML with a safe loader (no arbitrary Python objects)."""
    return yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 - the loader is a SafeLoader


def _read_yaml(file: Traversable, label: str) -> Any:
    try:
        return safe_load(file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{label}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CatalogError(f"{label}:{line}: invalid YAML: {problem}") from None


def load_entries(folder: Traversable, key: str, schema: type[Entry], folder_label: str) -> Catalog:
    """Load every ``*.yaml`` in ``folder``; each file holds a list under ``key``."""
    entries: list[Entry] = []
    origin: dict[str, str] = {}
    files = sorted((f for f in folder.iterdir() if f.name.endswith((".yaml", ".yml"))), key=lambda f: f.name)
    for file in files:
        label = f"{folder_label}/{file.name}"
        doc = _read_yaml(file, label)
        if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
            raise CatalogError(f"{label}: expected a top-level list under {key!r}")
        for position, raw in enumerate(doc[key], start=1):
            for entry in _releases(schema, raw, label, position):
                if entry.id in origin:
                    raise CatalogError(f"{label}: entry {entry.id!r}: duplicate id (also in {origin[entry.id]})")
                origin[entry.id] = label
                entries.append(entry)
    return Catalog(entries, origin)


def _entry_label(raw: Any, position: int) -> str:
    name = raw.get("id") if isinstance(raw, dict) else None
    return f"{name!r}" if name else f"#{position}"


def _validate(schema: type[Entry], raw: Any, label: str, position: int) -> Entry:
    entry_label = _entry_label(raw, position)
    if not isinstance(raw, dict):
        raise CatalogError(f"{label}: entry {entry_label}: expected a mapping of fields")
    try:
        return schema.model_validate(raw)
    except ValidationError as err:
        raise CatalogError(format_validation_error(label, entry_label, err)) from None
    except (OverflowError, ValueError) as err:  # e.g. 1e400 (inf) where an integer belongs
        raise CatalogError(f"{label}: entry {entry_label}: {type(err).__name__}: {err}") from None


# Fields of a model entry that the loader fills in; a YAML file setting them would contradict it.
_LOADER_FIELDS = ("variant_of", "catalog_id")


def _as_list(source: str | list[str]) -> list[str]:
    return [source] if isinstance(source, str) else list(source)


def _releases(schema: type[Entry], raw: Any, label: str, position: int) -> list[Entry]:
    """One catalogue entry, or for a model its architecture entry followed by each released variant.

    A variant is its own ModelSpec: the entry's architecture with the variant's id,
    aliases, kind and source, ``variant_of`` naming the entry it shares the figures with.
    """
    if schema is not ModelSpec or not isinstance(raw, dict):
        return [_validate(schema, raw, label, position)]
    fields = dict(raw)
    variants = fields.pop("variants", None) or []
    for name in _LOADER_FIELDS:
        if name in fields:
            raise CatalogError(f"{label}: entry {_entry_label(raw, position)}: field {name}: set by the loader, "
                               "not in the file (list other releases under variants)")
    fields["catalog_id"] = fields.get("id")
    entry = _validate(ModelSpec, fields, label, position)
    if not isinstance(variants, list):
        raise CatalogError(f"{label}: entry {entry.id!r}: field variants: expected a list of releases")
    out: list[Any] = [entry]
    for number, item in enumerate(variants, start=1):
        variant = _validate(ModelVariant, item, label, number)
        release = variant.model_dump(exclude_none=True)
        # The figures are the entry's, so its sources stay with them after the release's own.
        release["source"] = [*_as_list(variant.source), *_as_list(entry.source)]
        out.append(entry.model_copy(update={**release, "variant_of": entry.id, "catalog_id": variant.id}))
    return out


@lru_cache(maxsize=1)
def hardware_catalog() -> Catalog:
    """All accelerators in the built-in ``hardware_db/``."""
    return load_entries(data_dir("hardware_db"), "gpus", GpuSpec, "hardware_db")


@lru_cache(maxsize=1)
def model_catalog() -> Catalog:
    """All models in the built-in ``model_db/``."""
    return load_entries(data_dir("model_db"), "models", ModelSpec, "model_db")


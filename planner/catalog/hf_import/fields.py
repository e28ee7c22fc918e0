"""Reading checked fields out of a config.json dict: one-line errors that name the file and field."""

from __future__ import annotations

from typing import Any

from planner.errors import ConfigImportError
from planner.inputs import shown

# Upper bounds far above any released model; past them a config.json is corrupt or hostile
# (10^12 layers would make every later sum meaningless).
MAX_LAYERS = 10_000
MAX_WIDTH = 10_000_000  # hidden, MLP and vocabulary sizes
MAX_HEADS = 100_000
MAX_CONTEXT = 1_000_000_000


def first(cfg: dict[str, Any], *keys: str, default: Any = None) -> Any:
    """The value of the first of ``keys`` that is present and not null."""
    for key in keys:
        if cfg.get(key) is not None:
            return cfg[key]
    return default


def require(cfg: dict[str, Any], label: str, *keys: str) -> Any:
    """Like ``first``, but a missing field is a one-line error."""
    value = first(cfg, *keys)
    if value is None:
        raise ConfigImportError(f"{label}: field {keys[0]}: missing")
    return value


def whole(value: Any, label: str, key: str, low: int, high: int) -> int:
    """``value`` as a whole number from ``low`` to ``high``, or a one-line error naming the field."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigImportError(f"{label}: field {key}: expected a whole number, got {shown(value, 40)}")
    if not low <= value <= high:
        raise ConfigImportError(f"{label}: field {key}: {shown(value, 40)} is outside {low}..{high}")
    return value


def int_field(cfg: dict[str, Any], label: str, *keys: str, low: int = 1, high: int = MAX_WIDTH,
              default: int | None = None) -> int:
    """A required (or defaulted) integer field, checked; the first of ``keys`` present counts."""
    key = next((k for k in keys if cfg.get(k) is not None), None)
    if key is None:
        if default is not None:
            return default
        raise ConfigImportError(f"{label}: field {keys[0]}: missing")
    return whole(cfg[key], label, key, low, high)


def opt_int(cfg: dict[str, Any], label: str, key: str, low: int = 1, high: int = MAX_WIDTH) -> int | None:
    """An optional integer field, checked (None when absent or null)."""
    return None if cfg.get(key) is None else whole(cfg[key], label, key, low, high)


def flag(cfg: dict[str, Any], label: str, key: str) -> bool:
    """A true/false field (absent or null: false)."""
    value = cfg.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ConfigImportError(f"{label}: field {key}: expected true or false, got {shown(value, 40)}")
    return value


def _typed_list(cfg: dict[str, Any], label: str, key: str, ok: Any, what: str) -> list[Any] | None:
    """A list field whose items all pass ``ok``, or None when absent."""
    value = cfg.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(ok(t) for t in value):
        raise ConfigImportError(f"{label}: field {key}: expected a list of {what}")
    return value


def str_list(cfg: dict[str, Any], label: str, key: str) -> list[str] | None:
    """A list-of-strings field (layer_types), or None when absent."""
    return _typed_list(cfg, label, key, lambda t: isinstance(t, str), "strings")


def int_list(cfg: dict[str, Any], label: str, key: str) -> list[int] | None:
    """A list-of-integers field (no_rope_layers), or None when absent."""
    return _typed_list(cfg, label, key, lambda t: isinstance(t, int) and not isinstance(t, bool), "whole numbers")

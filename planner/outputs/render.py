"""Emit a result as a rich table, JSON or YAML on stdout."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

import yaml

__all__ = ["OutputFormat", "FORMATS", "dump", "console"]

OutputFormat = Literal["table", "json", "yaml"]
FORMATS: tuple[str, ...] = ("table", "json", "yaml")


def console():  # type: ignore[no-untyped-def]
    """A rich console on stdout; created per call so test runners capture it."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def dump(data: Any, fmt: str, table: Callable[[Any], None]) -> str | None:
    """Serialise ``data`` as JSON/YAML text, or draw it with ``table`` (returns None then)."""
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=False)
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    table(data)
    return None

"""Exact, case-insensitive name lookup with a "did you mean" for misses."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from planner.errors import UnknownNameError

__all__ = ["nearest_names", "did_you_mean", "resolve"]

T = TypeVar("T")


def _similarity(query: str, name: str) -> float:
    """difflib ratio of the whole names, or of the parts after an organisation prefix."""
    q, n = query.lower(), name.lower()
    whole = difflib.SequenceMatcher(None, q, n).ratio()
    tail = difflib.SequenceMatcher(None, q.rsplit("/", 1)[-1], n.rsplit("/", 1)[-1]).ratio()
    return max(whole, tail)


def nearest_names(query: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The ``n`` choices most similar to ``query`` (case-insensitive)."""
    return sorted(dict.fromkeys(choices), key=lambda c: (-_similarity(query, c), c))[:n]


def did_you_mean(query: str, choices: Iterable[str]) -> str:
    """A short "nearest: a, b, c" phrase for error messages."""
    return "nearest: " + ", ".join(nearest_names(query, choices))


def resolve(query: str, index: Mapping[str, T], what: str) -> T:
    """Find ``query`` among the lower-cased names in ``index``, else list the three nearest ids.

    Each entry is scored by its best-matching name (id or alias) and shown by its id.
    """
    hit = index.get(query.strip().lower())
    if hit is not None:
        return hit
    best: dict[str, float] = {}
    for name, entry in index.items():
        entry_id = _entry_id(entry)
        best[entry_id] = max(best.get(entry_id, 0.0), _similarity(query, name))
    nearest = sorted(best, key=lambda i: (-best[i], i))[:3]
    raise UnknownNameError(f"unknown {what} {query!r}; nearest: {', '.join(nearest)}")


def _entry_id(entry: Any) -> str:
    return str(entry.id)

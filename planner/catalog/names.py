"""Exact, case-insensitive name lookup with a "did you mean" for misses."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import TypeVar

from planner.errors import UnknownNameError

__all__ = ["nearest_names", "did_you_mean", "resolve"]

T = TypeVar("T")


def nearest_names(query: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The ``n`` choices most similar to ``query`` (difflib ratio, case-insensitive)."""
    q = query.lower()
    scored = sorted(
        dict.fromkeys(choices),
        key=lambda c: (-difflib.SequenceMatcher(None, q, c.lower()).ratio(), c),
    )
    return scored[:n]


def did_you_mean(query: str, choices: Iterable[str]) -> str:
    """A short "nearest: a, b, c" phrase for error messages."""
    return "nearest: " + ", ".join(nearest_names(query, choices))


def resolve(query: str, index: Mapping[str, T], what: str, canonical: Iterable[str]) -> T:
    """Find ``query`` among the lower-cased names in ``index``.

    ``canonical`` are the names shown in the "nearest" suggestion (ids and aliases).
    """
    hit = index.get(query.strip().lower())
    if hit is None:
        raise UnknownNameError(f"unknown {what} {query!r}; {did_you_mean(query, canonical)}")
    return hit

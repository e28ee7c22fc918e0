"""Release numbers as servers print them: the one reader for exports (flag syntax per release) and for
the planner (draft-loop and kernel lines per release).

Dotted releases: ``0.9.2``, ``v0.14.0rc1``, ``0.8.5.post1``. llama.cpp is versioned by build number,
in any spelling llama.cpp itself uses (``b8672``, ``8672``, ``version: 11312 (0c1e570)``,
``0.5.0-dev (build 11312, commit 0c1e570)``): its dotted prefix is not the release.
"""

from __future__ import annotations

import re

from planner.errors import SpecplanError

__all__ = ["parse_version", "parse_build", "release_key", "BUILD_NUMBERED"]

BUILD_NUMBERED = frozenset({"llamacpp"})  # engines whose releases are build numbers

# 1.2.3, v0.14.0rc1, 0.8.5.post1, 0.6.1.post2, 4.57.1, 1.2.0rc5, 0.11.0.dev0+g1234abc
_DOTTED = re.compile(r"v?(\d+(?:\.\d+){0,3})(?:[.-]?(?:rc|post|dev|a|b|alpha|beta)(\d*))?(?:\+[0-9A-Za-z.]+)?",
                     re.IGNORECASE)
# llama.cpp: b8672 / 8672, "version: 11312 (0c1e570)", "0.5.0-dev (build 11312, commit 0c1e570)"
_BUILD_FORMS = (
    re.compile(r"b?(\d+)"),
    re.compile(r"(?:version:\s*)?(\d+)\s*\(\s*[0-9a-f]{4,40}\s*\)", re.IGNORECASE),
    re.compile(r"(?:version:\s*)?v?\d+(?:\.\d+)*(?:-\w+)?\s*\(\s*build\s+(\d+)\s*(?:,\s*commit\s+[0-9a-f]{4,40}\s*)?\)",
               re.IGNORECASE),
)


def _ints(parts: list[str], text: str) -> tuple[int, ...]:
    # no release number has more digits; keeps a 4,300-digit "version" away from int()
    if any(len(p) > 9 for p in parts):
        raise SpecplanError(f"cannot read a release number in {text!r}: a part has more than 9 digits")
    return tuple(int(p) for p in parts)


def parse_version(text: str) -> tuple[int, ...]:
    """``"0.7.3"``, ``"v0.14.0rc1"``, ``"0.8.5.post1"`` -> (0, 7, 3), (0, 14, 0, 1), (0, 8, 5, 1).

    The whole string must be a version; anything else is refused with one line.
    """
    m = _DOTTED.fullmatch(text.strip())
    if m is None:
        raise SpecplanError(f"cannot read a release number in {text!r} (expected e.g. 0.9.2 or v1.2.0rc5)")
    parts = m.group(1).split(".") + ([m.group(2)] if m.group(2) else [])
    return _ints(parts, text)


def parse_build(text: str) -> tuple[int]:
    """A llama.cpp build number from ``b8672``, ``8672`` or llama-server's own ``--version`` line."""
    stripped = " ".join(text.split())
    for form in _BUILD_FORMS:
        if m := form.fullmatch(stripped):
            (build,) = _ints([m.group(1)], text)
            return (build,)
    raise SpecplanError(
        f"cannot read a llama.cpp build number in {text!r} (expected b8672, 8672, or what `llama-server --version` "
        "prints, e.g. 'version: 11312 (0c1e570)')")



def release_key(engine: str, text: str) -> tuple[int, ...]:
    """The comparable release of ``text`` for ``engine``: its build number for llama.cpp, else its dotted version."""
    return parse_build(text) if engine in BUILD_NUMBERED else parse_version(text)

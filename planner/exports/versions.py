"""Release lines: which argument set a server release takes, from what ``--server-version`` says.

The lines and the arguments each accepts are data (planner/exports/server_args/<server>.yaml,
with the source file and release they were read from). A version is read as the server
prints it: ``0.9.2``, ``v0.14.0rc1``, ``0.8.5.post1``; for llama.cpp the build number
matters, in any of the spellings llama.cpp itself uses (``b8672``, ``8672``,
``version: 11312 (0c1e570)``, ``0.5.0-dev (build 11312, commit 0c1e570)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

from planner.catalog.loading import safe_load
from planner.errors import SpecplanError
from planner.exports.text import check_text
from planner.versions import parse_build, parse_version

__all__ = ["ServerLine", "server_args", "parse_version", "parse_build", "line_entry", "select_line"]

@dataclass(frozen=True)
class ServerLine:
    """One release line of a server: the arguments it accepts, or why it is refused."""

    server: str
    name: str
    version: str
    args: dict[str, Any] = field(default_factory=dict)  # the line's entry of server_args/<server>.yaml


@cache
def server_args(server: str) -> dict[str, Any]:
    """planner/exports/server_args/<server>.yaml as read (lines, sources, accepted arguments)."""
    path = files("planner.exports") / "server_args" / f"{server}.yaml"
    return safe_load(path.read_text(encoding="utf-8"))


def _in_line(version: tuple[int, ...], entry: dict[str, Any], parse: Any) -> bool:
    """True when ``min <= version < below`` (missing bounds are open; parts compared as numbers)."""
    low = parse(str(entry["min"])) if "min" in entry else None
    high = parse(str(entry["below"])) if "below" in entry else None
    n = max(len(version), len(low or ()), len(high or ()))

    def pad(v: tuple[int, ...]) -> tuple[int, ...]:
        return v + (0,) * (n - len(v))

    if low is not None and pad(version) < pad(low):
        return False
    return high is None or pad(version) < pad(high)


def line_entry(server: str, server_version: str | None) -> dict[str, Any]:
    """The server_args/<server>.yaml entry of the line covering ``server_version`` (None: the current line).

    Refused lines are returned too: whether a line is refused depends on what runs on it
    (a draft model here, a speculation method in planner/exports/method_args.py).
    """
    doc = server_args(server)
    entries = doc["lines"]
    if server_version is None or not server_version.strip():
        entry = next(e for e in entries if e["name"] == doc["default_line"])
    else:
        check_text(server_version, "--server-version")
        wanted = " ".join(server_version.split()).lower()
        named = [e for e in entries if wanted == e["name"].lower() or wanted in (a.lower() for a in e.get("aliases", ()))]
        if named:
            entry = named[0]
        else:
            parse = parse_build if doc.get("version_kind") == "build" else parse_version
            version = parse(wanted)
            matches = [e for e in entries if _in_line(version, e, parse)]
            if not matches:
                raise SpecplanError(f"no {doc['label']} release line covers version {server_version!r}")
            entry = matches[0]
    return entry


def select_line(server: str, server_version: str | None) -> ServerLine:
    """The release line for ``server_version`` (None: the current line); refused lines raise."""
    doc = server_args(server)
    entry = line_entry(server, server_version)
    if "refuse" in entry:
        raise SpecplanError(f"{doc['label']} {server_version or entry['name']}: {' '.join(entry['refuse'].split())}")
    return ServerLine(server=server, name=entry["name"], version=" ".join(str(entry["version"]).split()), args=entry)

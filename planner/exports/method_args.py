"""Each server's keys for a speculation method on a release line, or why the line cannot run it.

``method_args(server, settings, line)`` is pure: it reads planner/exports/server_args/
methods.yaml (which keys each line takes for each method, with the sources they were read
in) and returns them filled from ``MethodSettings``. Where the line lacks the method the
error is one line naming the first release line that has it, or the nearest alternative.

The keys are what goes into one place of each server's input (``MethodArgs.section``):
vLLM's ``--speculative-config`` JSON (0.6-0.8.1: the separate ``--speculative-*`` flags),
SGLang's ``--config`` YAML keys, TensorRT-LLM's ``speculative_config`` mapping and
llama-server's command-line flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from planner.catalog.loading import safe_load
from planner.errors import SpecplanError
from planner.exports.method_settings import DERIVED_FROM, MethodSettings
from planner.exports.versions import ServerLine, line_entry

__all__ = ["MethodArgs", "method_data", "method_line", "method_args", "lines_with", "serves"]


@dataclass(frozen=True)
class MethodArgs:
    """The keys one method takes on one release line of a server."""

    server: str
    line: str
    method: str
    section: str  # speculative-config | config_keys | speculative_config | cli_flags
    keys: dict[str, Any]
    notes: tuple[str, ...] = ()
    source: tuple[str, ...] = ()


@cache
def method_data() -> dict[str, Any]:
    """planner/exports/server_args/methods.yaml as read."""
    return safe_load((files("planner.exports") / "server_args" / "methods.yaml").read_text(encoding="utf-8"))


def method_line(server: str, server_version: str | None) -> ServerLine:
    """The release line for ``server_version`` whether or not a draft model runs there."""
    entry = line_entry(server, server_version)
    version = " ".join(str(entry.get("version", entry["name"])).split())
    return ServerLine(server=server, name=entry["name"], version=version, args=entry)


def lines_with(server: str, method: str) -> list[str]:
    """Names of the server's release lines that run ``method``, oldest first."""
    return [name for name, entry in method_data()[server]["lines"].items() if method in entry.get("methods", {})]


def serves(server: str, line: str, method: str) -> bool:
    """True when release line ``line`` of ``server`` runs ``method`` (a draft model included)."""
    entry = method_data()[server]["lines"].get(line, {})
    if "refuse" in entry or (method == "draft" and "refuse_draft" in entry):
        return False
    return method in entry.get("methods", {})


def _value(template: Any, settings: MethodSettings) -> Any:
    if isinstance(template, str) and template.startswith("$"):
        return getattr(settings, template[1:])
    return template


def _filled(key: str, template: Any, settings: MethodSettings, spec: dict[str, Any]) -> Any:
    """The key's value from the settings, else the server's own default that methods.yaml records (so the
    file says what runs), else None (the key is left out)."""
    value = _value(template, settings)
    return spec.get("defaults", {}).get(key) if value is None else value


def _unread(settings: MethodSettings, templates: dict[str, Any]) -> list[str]:
    """Settings the user gave that no key of this line reads (they are left to the server's default)."""
    read: set[str] = set()
    for tmpl in templates.values():
        if isinstance(tmpl, str) and tmpl.startswith("$"):
            read |= DERIVED_FROM.get(tmpl[1:], {tmpl[1:]})
    given = settings.model_fields_set - {"method", "llamacpp_ngram_type"}
    return sorted(given - read)


def _refuse(server: str, line: ServerLine, method: str, why: str) -> SpecplanError:
    doc = method_data()[server]
    later = lines_with(server, method)
    alternative = doc.get("alternatives", {}).get(method)
    where = f"first in release line {later[0]}" if later else f"no {doc['label']} release line specplan read has it"
    if alternative:
        where += f"; nearest alternative: {alternative}"
    return SpecplanError(f"{doc['label']} {line.name}: {why}: {where}")


def method_args(server: str, settings: MethodSettings, line: ServerLine) -> MethodArgs:
    """The keys of ``settings.method`` on ``line`` of ``server``; SpecplanError when the line lacks it."""
    doc = method_data()[server]
    entry = doc["lines"].get(line.name)
    if entry is None:
        raise SpecplanError(f"{doc['label']} release line {line.name} is not in methods.yaml")
    method = settings.method
    if "refuse" in entry:
        raise _refuse(server, line, method, " ".join(entry["refuse"].split()))
    if method == "draft" and "refuse_draft" in entry:
        raise SpecplanError(f"{doc['label']} {line.name}: {' '.join(entry['refuse_draft'].split())}")
    spec = entry.get("methods", {}).get(method)
    if spec is None:
        raise _refuse(server, line, method, f"no {method} method")
    if settings.is_tree and not spec.get("tree"):
        alternative = doc.get("alternatives", {}).get("tree")
        raise SpecplanError(f"{doc['label']} {line.name} runs {method} as a chain only (topk 1), not a tree of topk "
                            f"{settings.breadth}" + (f"; nearest alternative: {alternative}" if alternative else ""))
    if settings.is_tree and spec.get("tree_nodes_max") == "topk_x_steps" and settings.tree_nodes > settings.breadth * settings.steps:
        raise SpecplanError(f"{doc['label']} {line.name}: a tree of {settings.tree_nodes} draft tokens exceeds topk "
                            f"{settings.breadth} x {settings.steps} steps = {settings.breadth * settings.steps} "
                            "(max_total_draft_tokens <= topK * max_draft_len); lower num_draft_tokens")
    templates = spec["variants"][getattr(settings, spec["by"])] if "by" in spec else spec["keys"]
    keys = {key: value for key, tmpl in templates.items() if (value := _filled(key, tmpl, settings, spec)) is not None}
    notes = [" ".join(spec["note"].split())] if "note" in spec else []
    if unused := _unread(settings, templates):
        notes.append(f"{', '.join(unused)}: no key on {doc['label']} {line.name}, left to the server")
    return MethodArgs(server=server, line=line.name, method=method, section=entry["section"], keys=keys,
                      notes=tuple(notes), source=tuple(entry.get("source", ())))

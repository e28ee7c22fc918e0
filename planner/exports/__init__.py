"""Server configuration exports: what vLLM, SGLang, llama.cpp, TensorRT-LLM and transformers read.

``export_plan(plan, server, server_version)`` turns a planned target + draft
configuration into the files that server reads, each starting with a comment block
(what specplan predicted, when, and how to measure acceptance afterwards).
``plan_from_json`` makes the plan from the JSON of ``specplan estimate`` or
``specplan recommend``; ``write_export`` writes the files atomically.

Refused with the reason (SpecplanError): a plan without a draft or that does not fit,
a draft with another tokenizer, formats the server cannot run, server releases that
cannot run a draft model (vLLM 0.10-0.13), and Ollama / TGI, which have no draft-model
speculative decoding.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from planner.atomic import write_text_atomic
from planner.errors import SpecplanError
from planner.exports import hf, llamacpp, ollama, sglang, tgi, trtllm, vllm
from planner.exports.common import (
    WORTHWHILE_SPEEDUP,
    Export,
    ExportPlan,
    check_plan,
    plan_from_json,
    select_line,
    server_args,
)

__all__ = [
    "SERVERS",
    "Export",
    "ExportPlan",
    "export_plan",
    "plan_from_json",
    "write_export",
    "server_lines", "check_server"]

SERVERS = ("vllm", "sglang", "llamacpp", "trtllm", "hf", "ollama", "tgi")
_EXPORTERS = {"vllm": vllm, "sglang": sglang, "llamacpp": llamacpp, "trtllm": trtllm, "hf": hf}
_REFUSERS = {"ollama": ollama, "tgi": tgi}
_ALIASES = {"llama.cpp": "llamacpp", "llama-cpp": "llamacpp", "llama-server": "llamacpp", "tensorrt-llm": "trtllm",
            "tensorrtllm": "trtllm", "transformers": "hf", "huggingface": "hf", "text-generation-inference": "tgi"}
_EXECUTABLE = 0o755
_READABLE = 0o644


def _server_name(server: str) -> str:
    key = server.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in SERVERS:
        raise SpecplanError(f"unknown server {server!r}; choose from {', '.join(SERVERS)}")
    return key


def server_lines(server: str) -> list[str]:
    """Release lines --server-version accepts for a server (refused lines included), default first."""
    key = _server_name(server)
    if key in _REFUSERS:
        return []
    doc = server_args(key)
    names = [e["name"] for e in doc["lines"]]
    return [doc["default_line"], *(n for n in names if n != doc["default_line"])]


def check_server(server: str) -> None:
    """Refuse servers that cannot run a draft model at all, before any planning."""
    key = _server_name(server)
    if key in _REFUSERS:
        _REFUSERS[key].refuse()


def export_plan(plan: ExportPlan, server: str, server_version: str | None = None, *,
                target_path: str | None = None, draft_path: str | None = None, stem: str | None = None) -> Export:
    """The files ``server`` reads for ``plan`` (release line from ``server_version``; None: the current one).

    ``target_path`` / ``draft_path`` replace the plan's model ids (a quantized export,
    a GGUF file, a local folder); ``stem`` names the files (default: the server name).
    """
    check_server(server)
    key = _server_name(server)
    check_plan(plan)
    module = _EXPORTERS[key]
    line = select_line(key, server_version)
    export = module.export(plan, line, stem or key, target_path, draft_path)
    if plan.speedup < WORTHWHILE_SPEEDUP:
        export = replace(export, summary=f"{export.summary}\nwarning: predicted {plan.speedup:.2f}x, speculation does "
                         "not pay for this configuration")
    return export


def write_export(export: Export, directory: str | os.PathLike[str], force: bool = False) -> list[Path]:
    """Write every file of ``export`` into ``directory`` atomically; nothing is written if one exists without force."""
    folder = Path(directory)
    targets = [folder / name for name in export.files]
    if not force:
        existing = [str(p) for p in targets if p.exists()]
        if existing:
            raise SpecplanError(f"{', '.join(existing)} exists; pass --force to overwrite")
    written = []
    for path, text in zip(targets, export.files.values(), strict=True):
        write_text_atomic(path, text, force=True)
        # mkstemp makes files 0600; scripts must run and configs be readable by the server's user.
        path.chmod(_EXECUTABLE if path.suffix == ".sh" else _READABLE)
        written.append(path)
    return written

"""Server configuration exports: what vLLM, SGLang, llama.cpp, TensorRT-LLM and transformers read.

``export_plan(plan, server, server_version)`` turns a planned target + draft
configuration into the files that server reads, each starting with a comment block
(what specplan predicted, when, and how to measure acceptance afterwards).
``read_plan_file`` / ``plan_from_json`` make the plan from the JSON of ``specplan
estimate`` or ``specplan recommend``; ``write_export`` writes the files as one atomic set.

A plan of a head / MTP / lookup method (EAGLE, EAGLE-3, MTP, n-gram, suffix) is written
with each server's keys for that method on the chosen release line (planner/exports/
method_args.py); a line without the method is refused with the nearest one that has it.

Refused with the reason (SpecplanError): a plan without speculation or that does not fit,
a draft with another tokenizer, formats the server cannot run, server releases that
cannot run this draft model (vLLM 0.10-0.14; vLLM 0.15-0.24 when the vocabularies
differ), names with control characters, and Ollama / TGI, which have no draft-model
speculative decoding (TGI runs n-gram speculation only, so its draft-model plans are refused).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from planner.atomic import write_files_atomic
from planner.errors import SpecplanError
from planner.exports import hf, llamacpp, ollama, sglang, tgi, trtllm, vllm
from planner.exports.common import WORTHWHILE_SPEEDUP, Export, ExportPlan, FileNames
from planner.exports.method_args import method_line, serves
from planner.exports.method_export import head_reference, method_keys
from planner.exports.plan_file import check_plan, plan_from_json, read_plan_file
from planner.exports.text import check_text, check_word
from planner.exports.versions import select_line, server_args

__all__ = [
    "SERVERS",
    "Export",
    "ExportPlan",
    "export_plan",
    "plan_from_json",
    "read_plan_file",
    "write_export",
    "output_name",
    "server_lines",
    "check_server",
    "plan_serves",
]

SERVERS = ("vllm", "sglang", "llamacpp", "trtllm", "hf", "ollama", "tgi")
_EXPORTERS = {"vllm": vllm, "sglang": sglang, "llamacpp": llamacpp, "trtllm": trtllm, "hf": hf, "tgi": tgi}
_REFUSERS = {"ollama": ollama}  # no speculative decoding at all (TGI runs n-grams: planner/exports/tgi.py)
_ALIASES = {"llama.cpp": "llamacpp", "llama-cpp": "llamacpp", "llama-server": "llamacpp", "tensorrt-llm": "trtllm",
            "tensorrtllm": "trtllm", "transformers": "hf", "huggingface": "hf", "text-generation-inference": "tgi"}
_EXECUTABLE = 0o777  # scripts (files starting with #!); less the umask, like open() + chmod +x
_READABLE = 0o666


def _server_name(server: str) -> str:
    key = check_text(server, "--server").strip().lower()
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


def output_name(output: str) -> tuple[Path, str]:
    """The folder and file name ``-o`` names; refused when it names no file or holds control characters."""
    check_text(output, "-o")
    if not output or output.endswith(("/", os.sep)) or Path(output).name in ("", ".", ".."):
        raise SpecplanError(f"-o {output!r} names no file; give a file name such as vllm.yaml")
    path = Path(output)
    return path.parent, path.name


def plan_serves(server: str, server_version: str | None) -> Callable[[str], bool]:
    """method -> whether ``server``'s release line for ``server_version`` runs it (to pick a plan's candidate)."""
    key = _server_name(server)
    if key in _REFUSERS:
        return lambda method: False
    line = method_line(key, server_version).name
    return lambda method: serves(key, line, method)


def export_plan(plan: ExportPlan, server: str, server_version: str | None = None, *,
                target_path: str | None = None, draft_path: str | None = None, main_file: str | None = None,
                head_path: str | None = None) -> Export:
    """The files ``server`` reads for ``plan`` (release line from ``server_version``; None: the current one).

    ``target_path`` / ``draft_path`` / ``head_path`` replace the plan's model ids (a quantized
    export, a GGUF file, a local folder); ``main_file`` names the main file (default: one per
    server, e.g. vllm.yaml), and the companion files are named after its stem.
    """
    check_server(server)
    key = _server_name(server)
    check_plan(plan, key)
    for value, flag in ((target_path, "--target-path"), (draft_path, "--draft-path"), (head_path, "--head-path")):
        if value is not None:
            check_word(value, flag)
    module = _EXPORTERS[key]
    if main_file is not None and (not check_text(main_file, "-o") or "/" in main_file or main_file in (".", "..")):
        raise SpecplanError(f"main file {main_file!r} must be a file name without a folder")
    names = FileNames(main_file or module.DEFAULT_MAIN)
    if plan.settings is None:
        if head_path is not None:
            raise SpecplanError("--head-path names an EAGLE head or MTP checkpoint; the plan runs a draft model "
                                "(--draft-path)")
        export = module.export(plan, select_line(key, server_version), names, target_path, draft_path)
    else:
        if draft_path is not None:
            raise SpecplanError(f"--draft-path names a draft model; the plan runs method {plan.method} "
                                "(give its checkpoint as --head-path)")
        line = method_line(key, server_version)  # a line refused for draft models may run the method
        args = method_keys(plan, key, line, head_reference(plan, head_path))
        export = module.export_method(plan, line, args, names, target_path)
    if plan.speedup < WORTHWHILE_SPEEDUP:
        export = replace(export, summary=f"{export.summary}\nwarning: predicted {plan.speedup:.2f}x, speculation does "
                         "not pay for this configuration")
    return export


def write_export(export: Export, directory: str | os.PathLike[str], force: bool = False) -> list[Path]:
    """Write every file of ``export`` into ``directory`` as one atomic set (planner/atomic.py says how).

    Without ``force`` nothing is written when one of the files exists; with it only
    regular files are replaced.
    """
    folder = Path(directory)
    files = {folder / name: text for name, text in export.files.items()}
    modes = {name: _EXECUTABLE if text.startswith("#!") else _READABLE for name, text in export.files.items()}
    return write_files_atomic(files, force=force, modes=modes)

"""TensorRT-LLM: a ``trtllm-serve`` YAML (PyTorch backend) with a draft-target ``speculative_config``.

Release lines (planner/exports/server_args/trtllm.yaml): 1.0-1.1 read the YAML through
``--extra_llm_api_options``, name the draft ``speculative_model_dir`` and the type
``DraftTarget``; 1.2 and later take ``--config``, ``speculative_model`` (the old spellings
stay aliases) and the type ``Draft_Target`` (the tag of llm_args' discriminated union).
TensorRT-LLM loads quantized weights only from quantized checkpoints (ModelOpt
exports); it does not quantize a 16-bit checkpoint when loading.
"""

from __future__ import annotations

import shlex
from typing import Any

import yaml

from planner.catalog.precisions import weight_format
from planner.engines import engine_spec
from planner.errors import SpecplanError
from planner.exports.common import (
    MARGIN,
    TORCH_DTYPE_NAMES,
    BesideScript,
    Export,
    ExportPlan,
    FileNames,
    check_runs,
    comment_block,
    fraction_up,
    header,
    needed_gib,
    shell_script,
)
from planner.exports.method_args import MethodArgs
from planner.exports.method_export import method_measure, method_notes
from planner.exports.names import model_reference
from planner.exports.versions import ServerLine

__all__ = ["SERVER", "LABEL", "DEFAULT_MAIN", "export", "export_method", "free_gpu_memory_fraction"]

SERVER = "trtllm"
LABEL = "TensorRT-LLM"
DEFAULT_MAIN = "trtllm.yaml"
_MAX_FRACTION = 0.95
_DTYPE = TORCH_DTYPE_NAMES
_CHUNK_TOKENS = 8192  # max_num_tokens default; longer prompts need chunked prefill (as the plan assumed)
_OLD_LINE = "1.0-1.1"


def free_gpu_memory_fraction(plan: ExportPlan) -> tuple[float, float]:
    """kv_cache_config.free_gpu_memory_fraction and the share of free memory the plan's KV cache needs.

    TensorRT-LLM gives this fraction of the memory left after weights and activations to
    the KV cache; the value is its default unless the plan needs more.
    """
    cap = plan.vram_capacity_gib
    fixed = needed_gib(plan, SERVER, ("target_weights", "draft_weights", "activations", "cuda_context"))
    free = cap - fixed
    kv = plan.component("kv_cache")
    if free <= 0:
        raise SpecplanError(f"TensorRT-LLM would have no memory left for the KV cache ({fixed:.1f} of {cap:.1f} GiB "
                            "per GPU go to weights and activations): re-plan with more GPUs or smaller formats")
    share = kv / free
    if share + MARGIN > _MAX_FRACTION:
        raise SpecplanError(f"the KV cache needs {share:.2f} of the memory left after weights ({kv:.1f} of {free:.1f} GiB"
                            f" per GPU); above {_MAX_FRACTION} TensorRT-LLM has no working room: re-plan first")
    default = engine_spec(SERVER).free_memory_fraction or 0.9
    return max(default, fraction_up(share + MARGIN)), share


def _measure() -> list[str]:
    return [
        "enable_iter_perf_stats is set: GET /metrics returns per-iteration stats as a JSON array (read once: each",
        "read consumes them); each entry has specDecodingStats {numDraftTokens, numAcceptedTokens,",
        "numRequestsWithDraftTokens, acceptanceLength}: acceptance rate = sum(numAcceptedTokens) / sum(numDraftTokens).",
        "(Field names are from consumers of the API; the upstream docstring was not read.)",
    ]


def export(plan: ExportPlan, line: ServerLine, names: FileNames, target_path: str | None,
           draft_path: str | None) -> Export:
    """trtllm-serve YAML + command line for the plan."""
    check_runs(plan, SERVER, LABEL)
    target = model_reference(plan.target, weight_format(plan.precision).name, target_path, LABEL, "target",
                             "--target-path", frozenset(), catalog_id=plan.target_catalog_id)
    draft = model_reference(plan.draft or "", weight_format(plan.draft_precision or plan.precision).name, draft_path,
                            LABEL, "draft", "--draft-path", frozenset(), catalog_id=plan.draft_catalog_id)
    fraction, share = free_gpu_memory_fraction(plan)
    old = line.name == _OLD_LINE
    draft_key = "speculative_model_dir" if old else "speculative_model"
    cfg = _target_keys(plan, fraction)
    decoding_type = line.args["draft_target_decoding_type"]
    cfg["speculative_config"] = {"decoding_type": decoding_type, "max_draft_len": plan.k, draft_key: draft}
    cfg["disable_overlap_scheduler"] = True
    cfg["enable_iter_perf_stats"] = True
    notes = [
        f"kv_cache_config.free_gpu_memory_fraction {fraction:.2f}: the plan's KV cache needs {share:.2f} of the memory",
        "  left after weights and activations; TensorRT-LLM's default 0.90 unless more is needed. Draft-target gives the",
        "  draft the target's KV settings (TensorRT-LLM issue #9279), so its KV cache comes out of the same memory.",
        "disable_overlap_scheduler: true, as the draft-target example of the speculative-decoding docs sets it.",
        f"decoding_type {decoding_type}: the spelling the {line.name} line's llm_args parses.",
        f"The draft is loaded with the target's parallel mapping (tensor_parallel_size {plan.tensor_parallel}).",
    ]
    if old:
        notes.append("1.0-1.1 line: the YAML goes to --extra_llm_api_options and the draft key is speculative_model_dir.")
    files = _files(plan, line, names, target, cfg, notes, _measure())
    summary = (f"{LABEL} {line.name}: {decoding_type} {draft}, max_draft_len {plan.k}, tp "
               f"{plan.tensor_parallel}, free_gpu_memory_fraction {fraction:.2f}; predicted {plan.speedup:.2f}x "
               f"({plan.speedup_low:.2f}-{plan.speedup_high:.2f})")
    return Export(files=files, summary=summary, server=SERVER, line=line.name)


def _target_keys(plan: ExportPlan, fraction: float) -> dict[str, Any]:
    cfg: dict[str, Any] = {"tensor_parallel_size": plan.tensor_parallel, "max_batch_size": plan.batch,
                           "max_seq_len": plan.context}
    prec = weight_format(plan.precision).name
    if prec in _DTYPE:
        cfg["dtype"] = _DTYPE[prec]
    if plan.context > _CHUNK_TOKENS:
        cfg["enable_chunked_prefill"] = True
    cfg["kv_cache_config"] = {"free_gpu_memory_fraction": fraction,
                              "dtype": "fp8" if plan.kv_precision == "fp8" else "auto"}
    return cfg


def _files(plan: ExportPlan, line: ServerLine, names: FileNames, target: str, cfg: dict[str, Any], notes: list[str],
           measure: list[str]) -> dict[str, str]:
    """The YAML and the -serve.sh that passes it with the line's flag."""
    flag = "--extra_llm_api_options" if line.name == _OLD_LINE else "--config"
    head = header(plan, LABEL, line, measure, notes)
    script_name = names.companion("-serve.sh")
    body = yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False, width=1000)
    options = [(flag, BesideScript(names.main))]
    return {
        names.main: comment_block(head + [f"Run: bash {shlex.quote(script_name)}   (or: trtllm-serve "
                                          f"{shlex.quote(target)} {flag} {shlex.quote(names.main)})"]) + body,
        script_name: shell_script(head, ["trtllm-serve", target], options),
    }


def export_method(plan: ExportPlan, line: ServerLine, args: MethodArgs, names: FileNames,
                  target_path: str | None) -> Export:
    """trtllm-serve YAML + command line for an EAGLE-3 / MTP / n-gram plan: its decoding config."""
    check_runs(plan, SERVER, LABEL)
    target = model_reference(plan.target, weight_format(plan.precision).name, target_path, LABEL, "target",
                             "--target-path", frozenset(), catalog_id=plan.target_catalog_id)
    fraction, share = free_gpu_memory_fraction(plan)
    cfg = _target_keys(plan, fraction)
    # no disable_overlap_scheduler: the docs set it only in the draft-target example (shared/research/servers.md 4)
    cfg["speculative_config"] = dict(args.keys)
    cfg["enable_iter_perf_stats"] = True
    notes = [
        f"kv_cache_config.free_gpu_memory_fraction {fraction:.2f}: the plan's KV cache needs {share:.2f} of the memory",
        "  left after weights (head included) and activations; TensorRT-LLM's default 0.90 unless more is needed.",
        *method_notes(args),
    ]
    files = _files(plan, line, names, target, cfg, notes, [*_measure(), method_measure(plan)])
    summary = (f"{LABEL} {line.name}: {args.keys.get('decoding_type')} "
               f"({', '.join(f'{k}={v}' for k, v in args.keys.items() if k != 'decoding_type')}), tp "
               f"{plan.tensor_parallel}, free_gpu_memory_fraction {fraction:.2f}; predicted {plan.speedup:.2f}x "
               f"({plan.speedup_low:.2f}-{plan.speedup_high:.2f})")
    return Export(files=files, summary=summary, server=SERVER, line=line.name)

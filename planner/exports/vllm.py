"""vLLM: a ``vllm serve --config`` YAML with the draft model, and the matching command line.

Release lines (planner/exports/server_args/vllm.yaml, which also says what each line
needs): 0.6-0.8.1 take the separate ``--speculative-model`` / ``--num-speculative-tokens``
flags; 0.8.2-0.9 take ``--speculative-config`` JSON and run a draft model on the V0
engine; 0.10-0.14 cannot run a draft model and are refused; >= 0.15 run ``method:
draft_model`` on V1. A pair whose config.json vocab_size differ (Qwen2.5-32B's 152064
against Qwen2.5-0.5B's 151936) gets ``use_heterogeneous_vocab: true`` from 0.25 and is
refused with the reason on 0.15-0.24.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import yaml

from planner.catalog.precisions import weight_format
from planner.engines import engine_spec
from planner.errors import SpecplanError
from planner.exports.common import (
    weight_keys,
    MARGIN,
    TORCH_DTYPE_NAMES,
    BesideScript,
    Export,
    ExportPlan,
    FileNames,
    check_runs,
    comment_block,
    draft_max_context,
    fraction_up,
    header,
    needed_gib,
    shell_script,
)
from planner.exports.method_args import MethodArgs, method_data
from planner.exports.method_export import method_measure, method_notes
from planner.exports.names import model_reference, vocab_sizes
from planner.exports.versions import ServerLine

__all__ = ["SERVER", "LABEL", "DEFAULT_MAIN", "export", "export_method", "gpu_memory_utilization"]

SERVER = "vllm"
LABEL = "vLLM"
DEFAULT_MAIN = "vllm.yaml"
# Above this vLLM leaves too little for what its profiler does not see (NCCL buffers, CUDA
# graphs, allocator fragmentation): vLLM issue #9995 reports OOM at 0.99 with a draft model.
_MAX_UTILIZATION = 0.95
_DTYPE = TORCH_DTYPE_NAMES
_ONLINE = frozenset({"fp8"})  # vLLM quantizes 16-bit checkpoints to fp8 when loading


def gpu_memory_utilization(plan: ExportPlan) -> tuple[float, float]:
    """--gpu-memory-utilization and the share of each GPU the plan needs.

    vLLM counts everything in its process against this fraction (weights of both
    models, KV cache, activations, CUDA context) and gives what is left of it to the KV
    cache, so a higher value only buys KV room: the value is the plan's share plus a
    margin, never below vLLM's default. Refused when even that does not fit.
    """
    cap = plan.vram_capacity_gib
    need = needed_gib(plan, SERVER, ("target_weights", "draft_weights", "kv_cache", "activations", "cuda_context"))
    low = need / cap + MARGIN
    if low > _MAX_UTILIZATION:
        raise SpecplanError(
            f"vLLM would need --gpu-memory-utilization {low:.2f} ({need:.1f} of {cap:.1f} GiB per GPU plus "
            f"{MARGIN:.2f} margin); above {_MAX_UTILIZATION} it runs out of memory outside its budget: re-plan "
            "with more GPUs or smaller formats"
        )
    default = engine_spec(SERVER).memory_fraction or 0.9
    return max(default, fraction_up(low)), need / cap


def _target_keys(plan: ExportPlan, model: str, utilization: float) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "model": model,
        "tensor-parallel-size": plan.tensor_parallel,
        "max-model-len": plan.context,
        "max-num-seqs": plan.batch,
        "gpu-memory-utilization": utilization,
    }
    cfg.update(weight_keys(plan.precision))
    # AWQ/GPTQ/int8 checkpoints carry their quantization_config: vLLM picks the fastest kernel itself.
    if plan.kv_precision == "fp8":
        cfg["kv-cache-dtype"] = "fp8"
    return cfg


def _vocab(plan: ExportPlan, line: ServerLine) -> tuple[dict[str, Any], list[str]]:
    """Speculative-config keys and header notes for the pair's vocabulary sizes on this line."""
    target_vocab, draft_vocab = vocab_sizes(plan.target, plan.draft, plan.target_catalog_id, plan.draft_catalog_id)
    if target_vocab is None or draft_vocab is None:
        unknown = plan.target if target_vocab is None else plan.draft
        return {}, [f"vocab_size of {unknown} unknown here: vLLM >= 0.15 refuses a pair whose config.json vocab_size "
                    "differ unless speculative_config use_heterogeneous_vocab is true (vLLM >= 0.25)."]
    if target_vocab == draft_vocab:
        return {}, []
    sizes = f"target vocab_size {target_vocab}, draft {draft_vocab}"
    if "refuse_different_vocab" in line.args:
        raise SpecplanError(f"{LABEL} {line.name}: {sizes}: {' '.join(line.args['refuse_different_vocab'].split())}")
    key = line.args["different_vocab"]
    return {key: True}, [f"{key}: true: {sizes} (padded embedding rows of one shared tokenizer); vLLM checks "
                         "vocab_size equality otherwise."]


def _speculative_config(plan: ExportPlan, draft: str, extra: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": draft,
        "method": "draft_model",
        "num_speculative_tokens": plan.k,
        "draft_tensor_parallel_size": plan.draft_tensor_parallel,
        "max_model_len": draft_max_context(plan),
    }
    if weight_format(plan.draft_precision or plan.precision).name == "fp8":
        spec["quantization"] = "fp8"
    return spec | extra


def _old_flags(plan: ExportPlan, draft: str) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "speculative-model": draft,
        "num-speculative-tokens": plan.k,
        "speculative-draft-tensor-parallel-size": plan.draft_tensor_parallel,
        "speculative-max-model-len": draft_max_context(plan),
    }
    if weight_format(plan.draft_precision or plan.precision).name == "fp8":
        cfg["speculative-model-quantization"] = "fp8"
    return cfg


def _measure(line: ServerLine, plan: ExportPlan) -> list[str]:
    if plan.settings is not None:
        return _metric_lines(line, method_measure(plan))
    calibrate = (f"specplan calibrate --vllm-metrics http://localhost:8000/metrics --vllm-metrics-before before.txt "
                 f"--target {shlex.quote(plan.target)} --draft {shlex.quote(plan.draft or '')} --k {plan.k} "
                 "-o calibration.yaml (save before.txt with `curl -s http://localhost:8000/metrics` before the "
                 "traffic window)")
    return _metric_lines(line, f"Calibrate the plan: {calibrate}")


def _metric_lines(line: ServerLine, replan: str) -> list[str]:
    if line.args.get("metrics") == "v1":
        return [
            "Prometheus GET /metrics (V1 engine): vllm:spec_decode_num_accepted_tokens_total (A, bonus token excluded),",
            "vllm:spec_decode_num_draft_tokens_total (D), vllm:spec_decode_num_drafts_total (S) and",
            "vllm:spec_decode_num_accepted_tokens_per_pos_total{position=\"i\"}; counters are cumulative, use the",
            "difference of two scrapes: acceptance rate = dA/dD, mean acceptance length = 1 + dA/dS.",
            "Log line every interval: \"SpecDecoding metrics: Mean acceptance length: ..., Per-position acceptance rate:",
            "..., Avg Draft acceptance rate: ...%\".",
            replan,
        ]
    return [
        "Prometheus GET /metrics (V0 engine, legacy names): vllm:spec_decode_draft_acceptance_rate (gauge),",
        "vllm:spec_decode_efficiency (gauge), vllm:spec_decode_num_accepted_tokens_total and",
        "vllm:spec_decode_num_draft_tokens_total (counters; use the difference of two scrapes).",
        replan,
    ]


def export(plan: ExportPlan, line: ServerLine, names: FileNames, target_path: str | None,
           draft_path: str | None) -> Export:
    """vLLM YAML + command line for the plan on the given release line."""
    check_runs(plan, SERVER, LABEL)
    target = model_reference(plan.target, weight_format(plan.precision).name, target_path, LABEL, "target",
                             "--target-path", _ONLINE, catalog_id=plan.target_catalog_id)
    draft = model_reference(plan.draft or "", weight_format(plan.draft_precision or plan.precision).name, draft_path,
                            LABEL, "draft", "--draft-path", _ONLINE, catalog_id=plan.draft_catalog_id)
    utilization, share = gpu_memory_utilization(plan)
    cfg = _target_keys(plan, target, utilization)
    notes = [
        f"gpu-memory-utilization {utilization:.2f}: the plan needs {share:.2f} of each GPU (weights, KV cache,",
        f"  activations, CUDA context) + {MARGIN:.2f} margin, never below vLLM's default (more only adds KV room).",
        (f"draft_tensor_parallel_size {plan.draft_tensor_parallel}: vLLM accepts only 1 or the target's "
        f"tensor-parallel-size ({plan.tensor_parallel})."),
    ]
    env = {str(k): str(v) for k, v in (line.args.get("set_env") or {}).items()}
    cli_extra: list[tuple[str, Any]] = [(flag, None) for flag in line.args.get("extra_cli") or ()]
    extra, vocab_notes = _vocab(plan, line)
    notes += vocab_notes
    if line.args["speculative_style"] == "flags":
        cfg.update(_old_flags(plan, draft))
        notes.append(f"{line.name} line: separate --speculative-* flags; --use-v2-block-manager is required by "
                     "0.6.0-0.6.1 and has no effect later.")
    else:
        cfg["speculative-config"] = json.dumps(_speculative_config(plan, draft, extra))
    if env:
        notes.append(f"{line.name} line: a draft model runs on the V0 engine only; the script sets "
                     + ", ".join(f"{k}={v}" for k, v in env.items()) + " (set it yourself when you pass only the YAML).")
    files = _files(plan, line, names, target, cfg, notes, env, cli_extra)
    summary = (f"{LABEL} {line.name}: draft {draft}, k={plan.k}, tp {plan.tensor_parallel} "
               f"(draft {plan.draft_tensor_parallel}), gpu-memory-utilization {cfg['gpu-memory-utilization']:.2f}; "
               f"predicted {plan.speedup:.2f}x ({plan.speedup_low:.2f}-{plan.speedup_high:.2f})")
    return Export(files=files, summary=summary, server=SERVER, line=line.name)


def _files(plan: ExportPlan, line: ServerLine, names: FileNames, target: str, cfg: dict[str, Any], notes: list[str],
           env: dict[str, str], cli_extra: list[tuple[str, Any]]) -> dict[str, str]:
    """The YAML and the -serve.sh that runs it."""
    head = header(plan, LABEL, line, _measure(line, plan), notes)
    script_name = names.companion("-serve.sh")
    body = yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False, width=1000)
    options = [("--config", BesideScript(names.main)), *cli_extra]
    return {
        names.main: comment_block(head + [f"Run: bash {shlex.quote(script_name)}   (or: vllm serve "
                                          f"{shlex.quote(target)} --config {shlex.quote(names.main)})"]) + body,
        script_name: shell_script(head, ["vllm", "serve", target], options, env=env),
    }


def export_method(plan: ExportPlan, line: ServerLine, args: MethodArgs, names: FileNames,
                  target_path: str | None) -> Export:
    """vLLM YAML + command line for a head / MTP / lookup plan: the method's keys of ``line``."""
    check_runs(plan, SERVER, LABEL)
    target = model_reference(plan.target, weight_format(plan.precision).name, target_path, LABEL, "target",
                             "--target-path", _ONLINE, catalog_id=plan.target_catalog_id)
    utilization, share = gpu_memory_utilization(plan)
    cfg = _target_keys(plan, target, utilization)
    if args.section == "speculative-config":
        cfg["speculative-config"] = json.dumps(args.keys)
    else:  # 0.6-0.8.1: the separate --speculative-* flags
        cfg.update(args.keys)
    notes = [
        f"gpu-memory-utilization {utilization:.2f}: the plan needs {share:.2f} of each GPU (weights, head, KV cache,",
        f"  activations, CUDA context) + {MARGIN:.2f} margin, never below vLLM's default (more only adds KV room).",
        *method_notes(args),
    ]
    v0 = _v0_engine(line)
    env = {str(k): str(v) for k, v in (line.args.get("set_env") or {}).items()} if v0 else {}
    cli_extra: list[tuple[str, Any]] = [(flag, None) for flag in line.args.get("extra_cli") or ()] if v0 else []
    if env:
        notes.append(f"{line.name} line: speculative decoding runs on the V0 engine; the script sets "
                     + ", ".join(f"{k}={v}" for k, v in env.items()) + " (set it yourself when you pass only the YAML).")
    files = _files(plan, line, names, target, cfg, notes, env, cli_extra)
    summary = (f"{LABEL} {line.name}: method {args.method} ({', '.join(f'{k}={v}' for k, v in args.keys.items())}), "
               f"tp {plan.tensor_parallel}, gpu-memory-utilization {utilization:.2f}; predicted {plan.speedup:.2f}x "
               f"({plan.speedup_low:.2f}-{plan.speedup_high:.2f})")
    return Export(files=files, summary=summary, server=SERVER, line=line.name)


def _v0_engine(line: ServerLine) -> bool:
    """True where methods.yaml says the line runs speculation on the V0 engine (its env and flags apply)."""
    return bool(method_data()[SERVER]["lines"].get(line.name, {}).get("v0_engine"))

"""SGLang: a ``launch_server --config`` YAML running the draft as ``STANDALONE``, and the command line.

From 0.5.7 the draft's weight format is named with ``--speculative-draft-model-quantization``;
before it the draft inherits the target's ``--quantization``, so a draft format that would
need the flag is refused with the reason (planner/exports/server_args/sglang.yaml).

With ``--speculative-eagle-topk 1`` the draft proposes one chain: ``speculative-num-steps``
is the planner's k and ``speculative-num-draft-tokens`` is k + 1 (SGLang docs: "If
topk=1, it is adjusted to num_steps + 1"); the three are set together, as the docs ask.
"""

from __future__ import annotations

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
    fraction_down,
    fraction_up,
    header,
    needed_gib,
    shell_script,
)
from planner.exports.method_args import MethodArgs
from planner.exports.method_export import method_measure, method_notes
from planner.exports.names import PRE_QUANTIZED, model_reference
from planner.exports.versions import ServerLine

__all__ = ["SERVER", "LABEL", "DEFAULT_MAIN", "export", "export_method", "mem_fraction_static"]

SERVER = "sglang"
LABEL = "SGLang"
DEFAULT_MAIN = "sglang.yaml"
_MAX_FRACTION = 0.95  # the rest of the GPU must hold CUDA graphs, activations and the draft's buffers
_DTYPE = TORCH_DTYPE_NAMES
_ONLINE = frozenset({"fp8"})  # SGLang quantizes 16-bit checkpoints to fp8 when loading ("online quantization")
# Checkpoint formats named explicitly for the draft: SGLang's draft inherits the target's
# --quantization unless told otherwise (server_args: _speculative_draft_quantization_explicitly_set).
# Checkpoint-native formats by the method SGLang's QUANTIZATION_CHOICES names them ("modelopt_fp4"
# for ModelOpt NVFP4, "fp8" reads weight_block_size); the target never gets a flag for them
# (SGLang reads its config.json quantization_config).
_DRAFT_QUANT = {"fp8": "fp8", "int4-awq": "awq", "int4-gptq": "gptq", "int8": "w8a8_int8",
                "nvfp4": "modelopt_fp4", "fp8-block": "fp8"}
# No flag for these: dense MXFP4 comes as compressed-tensors or AMD Quark (two methods), and
# "mxfp4" (gpt-oss) is not among the choices of the server_args.py read
# (planner/exports/server_args/sglang.yaml quantizations); the draft's own config.json names them.
_DRAFT_OWN_CONFIG = frozenset({"mxfp4", "mxfp4-moe"})


def mem_fraction_static(plan: ExportPlan) -> tuple[float, float, float]:
    """--mem-fraction-static and the bounds it was clamped to (low, high).

    SGLang's static pool holds both models' weights and the KV cache; activations,
    CUDA graphs and the CUDA context live outside it. The value is SGLang's usual
    default clamped to [static share + margin, 1 - dynamic share - margin].
    """
    cap = plan.vram_capacity_gib
    static = needed_gib(plan, SERVER, ("target_weights", "draft_weights", "kv_cache")) / cap
    dynamic = needed_gib(plan, SERVER, ("activations", "cuda_context")) / cap
    low = fraction_up(static + MARGIN)
    high = min(_MAX_FRACTION, fraction_down(1 - dynamic - MARGIN))
    if low > high:
        raise SpecplanError(
            f"SGLang would need --mem-fraction-static {low:.2f} for weights and KV cache but only {high:.2f} leaves room "
            "for activations and CUDA graphs: re-plan with more GPUs or smaller formats"
        )
    default = engine_spec(SERVER).memory_fraction or 0.88
    return min(max(default, low), high), low, high


def _draft_quantization(plan: ExportPlan) -> str | None:
    draft = weight_format(plan.draft_precision or plan.precision).name
    target = weight_format(plan.precision).name
    if draft in _DRAFT_QUANT:
        return _DRAFT_QUANT[draft]
    if draft in _DRAFT_OWN_CONFIG:
        return None
    return "unquant" if target not in _DTYPE else None  # a 16-bit draft next to a quantized target


def _older_draft_format(plan: ExportPlan, line: ServerLine, target_quant: str | None, quant: str) -> None:
    """Refuse a draft format that a line without --speculative-draft-model-quantization cannot load.

    There the draft is loaded with the target's --quantization: that is right when the
    two agree, or when the target has none and the draft's checkpoint names its own
    (AWQ/GPTQ/int8 exports, MXFP4/NVFP4/block-FP8 checkpoints); fp8 of the draft alone, or a 16-bit draft next to an
    fp8-on-load target, cannot be said.
    """
    draft = weight_format(plan.draft_precision or plan.precision).name
    if target_quant == quant or quant == "unquant" and target_quant is None:
        return
    if target_quant is None and draft in PRE_QUANTIZED:  # the draft's own quantization_config names it
        return
    raise SpecplanError(
        f"{LABEL} {line.name} has no --speculative-draft-model-quantization (it arrives in 0.5.7): the draft would be "
        f"loaded with the target's quantization ({target_quant or 'none'}), not as {draft}; use SGLang >= 0.5.7 or "
        "re-plan with --draft-precision equal to the target's"
    )


def _measure(plan: ExportPlan) -> list[str]:
    replan = (method_measure(plan) if plan.settings is not None else
              f"specplan calibrate --sglang-metrics-before before.txt --sglang-metrics http://localhost:30000/metrics "
              f"--target {shlex.quote(plan.target)} --draft {shlex.quote(plan.draft or '')} --k {plan.k} -o calibration.yaml")
    return [
        "Prometheus GET /metrics (enable-metrics is set): sglang:spec_accept_length (gauge, accepted draft tokens",
        "+ 1 bonus per verify step = tau) and sglang:spec_accept_rate (gauge, accepted / draft tokens); both cover the",
        "last logging window, so sample them repeatedly and weight by throughput. SGLang 0.5.23 also counts",
        "sglang:spec_verify_calls_total (0.5.3 does not): a window of two scrapes is read by",
        replan,
        "Log line: \"Decode batch. ... accept len: 2.17, accept rate: 0.54, ...\".",
        "Whole server lifetime: GET /get_server_info (newer: /server_info) -> internal_states[0].avg_spec_accept_length.",
        "With topk 1 and k drafted tokens, the per-token alpha solves tau = (1 - alpha^(k+1)) / (1 - alpha).",
    ]


def export(plan: ExportPlan, line: ServerLine, names: FileNames, target_path: str | None,
           draft_path: str | None) -> Export:
    """SGLang YAML + command line for the plan."""
    check_runs(plan, SERVER, LABEL)
    if plan.draft_tensor_parallel != plan.tensor_parallel:
        raise SpecplanError(
            f"SGLang runs a STANDALONE draft over the target's tensor-parallel group (tp-size {plan.tensor_parallel}), "
            f"but the plan could split draft {plan.draft} only over {plan.draft_tensor_parallel} GPU(s) (its attention "
            "heads do not divide evenly); use vLLM (draft_tensor_parallel_size 1) or a draft whose heads divide"
        )
    target = model_reference(plan.target, weight_format(plan.precision).name, target_path, LABEL, "target",
                             "--target-path", _ONLINE, catalog_id=plan.target_catalog_id)
    draft = model_reference(plan.draft or "", weight_format(plan.draft_precision or plan.precision).name, draft_path,
                            LABEL, "draft", "--draft-path", _ONLINE, catalog_id=plan.draft_catalog_id)
    fraction, low, high = mem_fraction_static(plan)
    cfg = _target_keys(plan, target, fraction)
    cfg.update({
        "speculative-algorithm": "STANDALONE",
        "speculative-draft-model-path": draft,
        "speculative-num-steps": plan.k,
        "speculative-eagle-topk": 1,
        "speculative-num-draft-tokens": (plan.k or 0) + 1,
    })
    if (quant := _draft_quantization(plan)) is not None:
        if line.args.get("draft_quantization_flag"):
            cfg["speculative-draft-model-quantization"] = quant
        else:
            _older_draft_format(plan, line, cfg.get("quantization"), quant)
    cfg["enable-metrics"] = True
    notes = [
        f"mem-fraction-static {fraction:.2f}: weights of both models + KV cache need {low - MARGIN:.2f} of each GPU, and",
        f"  activations + CUDA context leave room up to {high:.2f}; SGLang's usual default clamped to that range.",
        f"speculative-num-steps {plan.k} with eagle-topk 1 drafts one chain of k tokens; num-draft-tokens = k + 1.",
    ]
    summary = (f"{LABEL} {line.name}: STANDALONE draft {draft}, k={plan.k}, tp {plan.tensor_parallel}, "
               f"mem-fraction-static {fraction:.2f}; predicted {plan.speedup:.2f}x "
               f"({plan.speedup_low:.2f}-{plan.speedup_high:.2f})")
    return _export(plan, line, names, cfg, notes, summary)


def _target_keys(plan: ExportPlan, target: str, fraction: float) -> dict[str, Any]:
    cfg: dict[str, Any] = {"model-path": target, "tp-size": plan.tensor_parallel, "context-length": plan.context,
                           "max-running-requests": plan.batch, "mem-fraction-static": fraction}
    cfg.update(weight_keys(plan.precision))
    if plan.kv_precision == "fp8":
        cfg["kv-cache-dtype"] = "fp8_e4m3"
    return cfg


def _export(plan: ExportPlan, line: ServerLine, names: FileNames, cfg: dict[str, Any], notes: list[str],
            summary: str) -> Export:
    """The YAML, the -serve.sh that runs it, and the summary (with a warning for a -o SGLang will not read)."""
    head = header(plan, LABEL, line, _measure(plan), notes)
    script_name = names.companion("-serve.sh")
    body = yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False, width=1000)
    options = [("--config", BesideScript(names.main))]
    files = {
        names.main: comment_block(head + [f"Run: bash {shlex.quote(script_name)}   (or: python3 -m "
                                          f"sglang.launch_server --config {shlex.quote(names.main)})"]) + body,
        script_name: shell_script(head, ["python3", "-m", "sglang.launch_server"], options),
    }
    if not names.main.lower().endswith((".yaml", ".yml")):
        # server_args_config_parser.py _validate_yaml_file: "path.suffix.lower() not in [".yaml", ".yml"]"
        summary += f"\nwarning: SGLang reads --config only from a .yaml or .yml file, not {names.main}: give -o such a name"
    return Export(files=files, summary=summary, server=SERVER, line=line.name)


def export_method(plan: ExportPlan, line: ServerLine, args: MethodArgs, names: FileNames,
                  target_path: str | None) -> Export:
    """SGLang YAML + command line for a head / MTP / lookup plan: --speculative-algorithm and its keys."""
    check_runs(plan, SERVER, LABEL)
    target = model_reference(plan.target, weight_format(plan.precision).name, target_path, LABEL, "target",
                             "--target-path", _ONLINE, catalog_id=plan.target_catalog_id)
    fraction, low, high = mem_fraction_static(plan)
    cfg = _target_keys(plan, target, fraction) | args.keys
    cfg["enable-metrics"] = True
    notes = [
        f"mem-fraction-static {fraction:.2f}: weights (head included) + KV cache need {low - MARGIN:.2f} of each GPU,",
        f"  and activations + CUDA context leave room up to {high:.2f}; SGLang's usual default clamped to that range.",
        *method_notes(args),
    ]
    summary = (f"{LABEL} {line.name}: {args.keys.get('speculative-algorithm')} "
               f"({', '.join(f'{k}={v}' for k, v in args.keys.items() if k != 'speculative-algorithm')}), "
               f"tp {plan.tensor_parallel}, mem-fraction-static {fraction:.2f}; predicted {plan.speedup:.2f}x "
               f"({plan.speedup_low:.2f}-{plan.speedup_high:.2f})")
    return _export(plan, line, names, cfg, notes, summary)

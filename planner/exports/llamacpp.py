"""llama.cpp ``llama-server``: the command line and the same settings as LLAMA_ARG_* environment variables.

Release lines (planner/exports/server_args/llamacpp.yaml): ``classic`` builds (b4180 to
b8940) take ``-md --draft-max --draft-min --draft-p-min -ngld -cd``; llama.cpp PR #22397
(2026-04-26) removed ``--draft-max/--draft-min``, and builds from b9174 (after PR #22964)
take ``--spec-draft-model --spec-type draft-simple --spec-draft-n-max ...``; the builds in
between are refused. ``--server-version`` takes llama-server's own ``--version`` line.

llama.cpp loads GGUF files. A plan names Hugging Face repos, whose GGUF file names
cannot be known: the files default to ``<repo name>-<QUANT>.gguf`` (the usual naming of
community GGUF exports), from the name exactly as the plan gives it, in the variables
TARGET_GGUF / DRAFT_GGUF, which the user overrides, or ``--target-path`` /
``--draft-path`` set.
"""

from __future__ import annotations

import re
import shlex
from pathlib import PurePosixPath
from typing import Any

from planner.catalog.precisions import weight_format
from planner.draftloop import engine_loop
from planner.exports.common import (
    Export,
    ExportPlan,
    FileNames,
    Var,
    check_runs,
    comment_block,
    header,
    shell_script,
)
from planner.exports.method_args import MethodArgs, method_data
from planner.exports.method_export import method_measure, method_notes
from planner.exports.names import served_name
from planner.exports.text import check_word
from planner.exports.versions import ServerLine

__all__ = ["SERVER", "LABEL", "DEFAULT_MAIN", "export", "export_method", "gguf_name", "plan_p_min"]

SERVER = "llamacpp"
LABEL = "llama.cpp llama-server"
DEFAULT_MAIN = "llamacpp-serve.sh"
_GGUF_TYPE = {"bf16": "BF16", "fp16": "F16", "q8_0": "Q8_0", "q6_k": "Q6_K", "q5_k_m": "Q5_K_M", "q4_k_m": "Q4_K_M",
              "q4_0": "Q4_0", "q3_k_m": "Q3_K_M", "q2_k": "Q2_K", "mxfp4_moe": "MXFP4_MOE"}
_ALL_LAYERS = 99  # more layers than any catalogued model has: everything on the GPU


def _gpu_layers(plan: ExportPlan) -> int:
    """Layers offloaded to a GPU: all of them, or none for a plan made on the host CPU (--gpu cpu)."""
    from planner.calibration.host import is_host_device

    return 0 if is_host_device(plan.gpu) else _ALL_LAYERS
# The threshold is always written out: master's default 0.00 was reported to collapse acceptance
# to 0.07 (llama.cpp issue #25908). It is the p-min the plan was priced with (plan JSON "p_min"),
# or, for a plan that did not record one, the p-min specplan plans llama.cpp with
# (planner/draftloop/loops.yaml plan_p_min: 0.75, the last classic default).
_N_MIN = 0  # use every draft, however short p_min cut it
_SAFE_ENV_VALUE = re.compile(r"^[A-Za-z0-9_./:+@-]+$")


def gguf_name(model: str, precision: str) -> str:
    """The file name a plan's model most likely has as GGUF: ``Llama-3.1-8B-Instruct-Q4_K_M.gguf``.

    Derived from the name as the plan gives it (a short catalogue alias: from its Hub id).
    """
    if model.endswith(".gguf"):
        return check_word(model, "model name")
    name = served_name(model)
    # The file name is specplan's guess, not the user's: white space at the ends of the repo's last
    # part (a legal repo name such as "org/ 0") would make a file name no shell user expects.
    base = (PurePosixPath(name.rstrip("/")).name or name).strip() or "model"
    return check_word(f"{base}-{_GGUF_TYPE[weight_format(precision).name]}.gguf", "GGUF file name")


def plan_p_min(plan: ExportPlan) -> float:
    """The p-min to write: the plan's own, else the one specplan prices llama.cpp with."""
    return plan.p_min if plan.p_min is not None else engine_loop("llamacpp").p_min


def _settings(plan: ExportPlan, line: ServerLine) -> list[tuple[str, str, Any]]:
    """(flag, env var, value) in command-line order; values are strings, numbers or Var."""
    classic = line.name == "classic"
    rows: list[tuple[str, str, Any]] = [
        ("-m", "LLAMA_ARG_MODEL", Var("TARGET_GGUF")),
        ("-md" if classic else "--spec-draft-model", "LLAMA_ARG_MODEL_DRAFT" if classic else "LLAMA_ARG_SPEC_DRAFT_MODEL",
         Var("DRAFT_GGUF")),
    ]
    if not classic:
        rows.append(("--spec-type", "LLAMA_ARG_SPEC_TYPE", "draft-simple"))
    rows += [
        ("-ngl", "LLAMA_ARG_N_GPU_LAYERS", _gpu_layers(plan)),
        ("-ngld" if classic else "--spec-draft-ngl", "LLAMA_ARG_N_GPU_LAYERS_DRAFT", _gpu_layers(plan)),
        # -c is the KV cache of all slots together: each of the -np slots gets c / np tokens.
        ("-c", "LLAMA_ARG_CTX_SIZE", plan.context * plan.batch),
        ("-np", "LLAMA_ARG_N_PARALLEL", plan.batch),
    ]
    if classic:
        rows.append(("-cd", "LLAMA_ARG_CTX_SIZE_DRAFT", plan.context))
    prefix, env = ("--draft", "LLAMA_ARG_DRAFT") if classic else ("--spec-draft-n", "LLAMA_ARG_SPEC_DRAFT_N")
    rows += [
        (f"{prefix}-max", f"{env}_MAX", plan.k),
        (f"{prefix}-min", f"{env}_MIN", _N_MIN),
        ("--draft-p-min" if classic else "--spec-draft-p-min",
         "LLAMA_ARG_DRAFT_P_MIN" if classic else "LLAMA_ARG_SPEC_DRAFT_P_MIN", plan_p_min(plan)),
    ]
    if plan.tensor_parallel > 1:
        rows.append(("-sm", "LLAMA_ARG_SPLIT_MODE", "layer"))
    if plan.kv_precision in ("q8_0", "q4_0"):
        rows += [("-ctk", "LLAMA_ARG_CACHE_TYPE_K", plan.kv_precision),
                 ("-ctv", "LLAMA_ARG_CACHE_TYPE_V", plan.kv_precision)]
        if not classic:
            rows += [("--spec-draft-type-k", "LLAMA_ARG_SPEC_DRAFT_CACHE_TYPE_K", plan.kv_precision),
                     ("--spec-draft-type-v", "LLAMA_ARG_SPEC_DRAFT_CACHE_TYPE_V", plan.kv_precision)]
    return rows


def _env_value(value: str) -> str:
    return value if _SAFE_ENV_VALUE.match(value) else shlex.quote(value)


def _measure(plan: ExportPlan) -> list[str]:
    replan = (method_measure(plan) if plan.settings is not None else
              f"Calibrate the plan: specplan calibrate --llamacpp responses.json --target {shlex.quote(plan.target)} "
              f"--draft {shlex.quote(plan.draft or '')} --k {plan.k} -o calibration.yaml (saved responses or the server log).")
    return [
        "Every response (/completion, /v1/completions, /v1/chat/completions, last streamed chunk) has a \"timings\"",
        "object with draft_n (draft tokens proposed) and draft_n_accepted (accepted) when drafting happened:",
        "acceptance rate = draft_n_accepted / draft_n. The server log prints",
        "\"draft acceptance rate = 0.57576 (  171 accepted /   297 generated)\".",
        replan,
        "The Prometheus /metrics endpoint (--metrics) has no draft-acceptance metric.",
    ]


def export(plan: ExportPlan, line: ServerLine, names: FileNames, target_path: str | None,
           draft_path: str | None) -> Export:
    """llama-server command line and env file for the plan."""
    check_runs(plan, SERVER, LABEL)
    draft_prec = plan.draft_precision or plan.precision
    target_file = target_path or gguf_name(plan.target, plan.precision)
    draft_file = draft_path or gguf_name(plan.draft or "", draft_prec)
    classic = line.name == "classic"
    rows = _settings(plan, line)
    notes = [
        (f"TARGET_GGUF / DRAFT_GGUF: {'given paths' if target_path and draft_path else 'derived file names'} "
        f"({target_file}, {draft_file}); GGUF files of"),
        (f"  {plan.target} ({_GGUF_TYPE[weight_format(plan.precision).name]}) and {plan.draft} "
        f"({_GGUF_TYPE[weight_format(draft_prec).name]}) named <repo name>-<type>.gguf unless set."),
        *(["-ngl 0 and draft GPU layers 0: planned on the host CPU (--gpu cpu), both models run there."]
          if _gpu_layers(plan) == 0 else
          [f"-ngl {_ALL_LAYERS} and the draft's GPU layers are always set: a draft left on the CPU makes speculation "
           "slower", "  (llama.cpp issue #10664: 45 -> 104 tokens/s with -ngld 99)."]),
        f"-c {plan.context * plan.batch} = context {plan.context} x {plan.batch} slot(s) (-np): each slot gets the full",
        "  context (llama-server divides -c among the slots).",
        f"Draft length: max k = {plan.k}, min {_N_MIN}, p-min {plan_p_min(plan):g} written out: the p-min the plan was",
        "  priced with (the 2026 master default 0.00 was reported to collapse acceptance, llama.cpp issue #25908).",
    ]
    if classic:
        notes.append(f"classic line (builds b4180-b8940): -cd {plan.context} gives each slot's draft the same context.")
    else:
        notes.append("spec-draft line (b9174 and later, llama.cpp PR #22964): --spec-type draft-simple selects the "
                     "draft model; no draft-context flag exists, the draft follows the slot context.")
    if plan.kv_precision in ("q8_0", "q4_0"):
        notes.append("A quantized V cache needs flash attention: it is on by default (-fa auto) since late 2025; "
                     "older builds need -fa added.")
    if plan.tensor_parallel > 1:
        notes.append(f"-sm layer splits the layers (and KV) of both models over the {plan.tensor_parallel} GPUs.")
    files = _files(plan, line, names, rows, notes, {"TARGET_GGUF": target_file, "DRAFT_GGUF": draft_file})
    summary = (f"{LABEL} {line.name}: draft {draft_file}, k={plan.k}, {plan.batch} slot(s) x "
               f"{plan.context} tokens, {'on the CPU' if _gpu_layers(plan) == 0 else 'all layers on GPU'}; predicted {plan.speedup:.2f}x "
               f"({plan.speedup_low:.2f}-{plan.speedup_high:.2f})")
    return Export(files=files, summary=summary, server=SERVER, line=line.name)


def _files(plan: ExportPlan, line: ServerLine, names: FileNames, rows: list[tuple[str, str | None, Any]],
           notes: list[str], variables: dict[str, str]) -> dict[str, str]:
    """The -serve.sh and the env file; a flag without a LLAMA_ARG_* variable (env None) is on the command line only."""
    head = header(plan, LABEL, line, _measure(plan), notes)
    script = shell_script(head, ["llama-server"], [(flag, value) for flag, _, value in rows], variables=variables)
    env_lines = []
    for _, name, value in rows:
        if name is None:
            continue
        if isinstance(value, Var):
            value = variables[value.name]
        env_lines.append(f"{name}={_env_value(str(value))}\n")
    env_name = names.companion(".env")
    env_head = head + [f"Use: set -a; . ./{shlex.quote(env_name)}; set +a; llama-server   (or docker run --env-file "
                       f"{shlex.quote(env_name)} ...)."]
    env_only = [flag for flag, name, _ in rows if name is None]
    if env_only:
        env_head.append(f"{', '.join(env_only)}: no LLAMA_ARG_* variable (common/arg.cpp); give them on the command "
                        "line as the script does.")
    return {names.main: script, env_name: comment_block(env_head) + "".join(env_lines)}


def export_method(plan: ExportPlan, line: ServerLine, args: MethodArgs, names: FileNames,
                  target_path: str | None) -> Export:
    """llama-server command line and env file for an EAGLE-3 / MTP / n-gram plan: its --spec-type and flags."""
    check_runs(plan, SERVER, LABEL)
    target_file = target_path or gguf_name(plan.target, plan.precision)
    env = method_data()[SERVER]["lines"][line.name].get("env", {})
    head = args.keys.get("--spec-draft-model")
    # the head as a GGUF file: --head-path as given, else <repo name>-<type>.gguf like a draft's
    head_file = (head if head.endswith(".gguf") or head != plan.settings.head  # type: ignore[union-attr]
                 else gguf_name(head, plan.draft_precision or plan.precision)) if head else None
    rows: list[tuple[str, str | None, Any]] = [("-m", "LLAMA_ARG_MODEL", Var("TARGET_GGUF"))]
    rows += [(flag, env.get(flag), Var("HEAD_GGUF") if flag == "--spec-draft-model" else value)
             for flag, value in args.keys.items()]
    rows.append(("-ngl", "LLAMA_ARG_N_GPU_LAYERS", _gpu_layers(plan)))
    if head_file:
        rows += [("--spec-draft-ngl", "LLAMA_ARG_N_GPU_LAYERS_DRAFT", _gpu_layers(plan)),
                 ("--spec-draft-p-min", "LLAMA_ARG_SPEC_DRAFT_P_MIN", plan_p_min(plan))]
    rows += [("-c", "LLAMA_ARG_CTX_SIZE", plan.context * plan.batch), ("-np", "LLAMA_ARG_N_PARALLEL", plan.batch)]
    if plan.tensor_parallel > 1:
        rows.append(("-sm", "LLAMA_ARG_SPLIT_MODE", "layer"))
    if plan.kv_precision in ("q8_0", "q4_0"):
        rows += [("-ctk", "LLAMA_ARG_CACHE_TYPE_K", plan.kv_precision),
                 ("-ctv", "LLAMA_ARG_CACHE_TYPE_V", plan.kv_precision)]
    variables = {"TARGET_GGUF": target_file, **({"HEAD_GGUF": head_file} if head_file else {})}
    notes = [
        f"TARGET_GGUF{' / HEAD_GGUF' if head_file else ''}: {target_file}{', ' + head_file if head_file else ''} "
        "(GGUF files named <repo name>-<type>.gguf unless --target-path / --head-path give them).",
        f"-c {plan.context * plan.batch} = context {plan.context} x {plan.batch} slot(s) (-np).",
        *method_notes(args),
    ]
    files = _files(plan, line, names, rows, notes, variables)
    summary = (f"{LABEL} {line.name}: --spec-type {args.keys.get('--spec-type')}"
               f"{' head ' + head_file if head_file else ''}, {plan.batch} slot(s) x {plan.context} tokens; "
               f"predicted {plan.speedup:.2f}x ({plan.speedup_low:.2f}-{plan.speedup_high:.2f})")
    return Export(files=files, summary=summary, server=SERVER, line=line.name)

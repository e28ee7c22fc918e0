"""What every server export shares: the plan it is made from, release lines, memory fractions.

A plan arrives as the JSON of ``specplan estimate`` or ``specplan recommend``
(planner/outputs/plan_view.py); ``plan_from_json`` turns either into one
``ExportPlan``. The argument lists each server release accepts are data
(planner/exports/server_args/<server>.yaml, with the source file and commit they
were read from); ``select_line`` picks the release line for a ``--server-version``
and refuses the lines that cannot run a draft model.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

from planner import __version__
from planner.catalog.loading import model_catalog, safe_load
from planner.catalog.precisions import kv_format, weight_format
from planner.catalog.schemas import ModelSpec
from planner.errors import SpecplanError
from planner.plan import (
    MIN_WORTHWHILE_SPEEDUP as WORTHWHILE_SPEEDUP,  # below it speculation is not worth running
)

TORCH_DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16"}  # --dtype / dtype values servers take

__all__ = [
    "TORCH_DTYPE_NAMES",
    "ExportPlan",
    "Export",
    "ServerLine",
    "plan_from_json",
    "check_plan",
    "draft_max_context",
    "server_args",
    "select_line",
    "parse_version",
    "catalogue_model",
    "model_reference",
    "check_runs",
    "needed_gib",
    "fraction_up",
    "fraction_down",
    "header",
    "comment_block",
    "shell_script",
    "Var",
    "MARGIN",
    "WORTHWHILE_SPEEDUP",
    "PRE_QUANTIZED",
]

MARGIN = 0.02  # head-room added to a memory fraction the plan needs, so rounding never starves the run
# Formats a server loads only from a checkpoint already quantized that way (AWQ/GPTQ exports,
# SmoothQuant int8); fp8 is quantized on load by vLLM and SGLang but not by TensorRT-LLM/HF.
PRE_QUANTIZED = frozenset({"int8", "int4-awq", "int4-gptq"})
_VERSION_PART = re.compile(r"\d+")


@dataclass(frozen=True)
class ExportPlan:
    """One planned target + draft configuration, as the exporters need it."""

    target: str  # Hugging Face repo id (catalogue) or the path/id the plan was made from
    draft: str | None
    k: int | None
    tensor_parallel: int  # GPUs the target is split over
    precision: str
    draft_precision: str | None
    kv_precision: str
    context: int  # tokens per sequence, prompt + output
    batch: int  # concurrent sequences
    engine: str  # engine whose memory reserves the plan used
    gpu: str
    speedup: float
    speedup_low: float
    speedup_high: float
    alpha: float | None
    alpha_source: str | None
    vram_total_gib: float  # per GPU, everything the plan counts
    vram_capacity_gib: float
    fits: bool
    created_at: str
    draft_tensor_parallel: int = 1  # GPUs the draft is split over (1 or tensor_parallel)
    memory_gib: tuple[tuple[str, float], ...] = ()  # per-GPU components: target_weights, draft_weights, ...
    warnings: tuple[str, ...] = ()

    def component(self, name: str) -> float:
        """One per-GPU memory component in GiB (0 when the plan does not list it)."""
        return dict(self.memory_gib).get(name, 0.0)


@dataclass(frozen=True)
class Export:
    """Files a server reads (suggested name -> text) and a line or two for the terminal."""

    files: dict[str, str]
    summary: str
    server: str = ""
    line: str = ""  # the release line the files are written for


@dataclass(frozen=True)
class ServerLine:
    """One release line of a server: the arguments it accepts, or why it is refused."""

    server: str
    name: str
    version: str
    args: dict[str, Any] = field(default_factory=dict)  # the line's entry of server_args/<server>.yaml


# --- plans ---------------------------------------------------------------------------------------------


def _first_runnable(candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """The best-ranked candidate that has a draft and fits; refuse with the reason otherwise."""
    if not candidates:
        raise SpecplanError("the plan has no candidates to export")
    with_draft = [c for c in candidates if c.get("draft")]
    if not with_draft:
        raise SpecplanError("no candidate of the plan uses a draft model: there is no speculative decoding to export")
    for cand in with_draft:
        if cand.get("fits"):
            return cand
    worst = with_draft[0]
    mem = worst.get("per_gpu_gib") or {}
    raise SpecplanError(
        f"no candidate with a draft fits in memory (best: {worst['draft']} needs {mem.get('total', float('nan')):.1f} "
        f"of {mem.get('capacity', float('nan')):.1f} GiB per GPU); re-plan with more GPUs or smaller formats"
    )


def _float(value: Any, default: float = 0.0) -> float:
    return default if value is None else float(value)


def _memory(per_gpu: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    return tuple((str(k), float(v)) for k, v in per_gpu.items() if isinstance(v, (int, float)))


def _draft_tp_from_catalogue(draft: str, engine: str, gpu: str, gpus: int) -> int:
    """The planner's rule (memory.draft_tp_degree) for a plan that does not record the draft's split."""
    if gpus == 1:
        return 1
    from planner.catalog.lookup import find_gpu
    from planner.engines import engine_spec
    from planner.memory import valid_group_sizes

    spec = catalogue_model(draft)
    try:
        eng, hw = engine_spec(engine), find_gpu(gpu)
    except SpecplanError:
        return 1
    if spec is None or not eng.draft_shares_tp:
        return 1
    return gpus if gpus in valid_group_sizes(spec, eng, hw) else 1


def plan_from_json(data: dict[str, Any]) -> ExportPlan:
    """An ExportPlan from ``estimate --format json`` or ``recommend --format json`` output.

    From a recommendation the first candidate that has a draft and fits is taken
    (candidates are ranked best first); a plan without one is refused.
    """
    if not isinstance(data, dict) or "target" not in data:
        raise SpecplanError("not a specplan plan: expected the JSON of `specplan estimate` or `specplan recommend`")
    warnings = tuple(str(w) for w in data.get("warnings") or ())
    if "candidates" in data:  # recommend: the first runnable candidate
        src = _first_runnable(list(data["candidates"]))
        mem = dict(src.get("per_gpu_gib") or {})
        gpus = int(src.get("gpus") or data["gpus"])
        fits = bool(src.get("fits"))
        draft_precision = src.get("draft_precision") or data["precision"]
        draft_tp = _draft_tp_from_catalogue(src["draft"], data["engine"], data["gpu"], gpus)
    else:  # estimate: one configuration with its fit block
        src = data
        fit = dict(data.get("fit") or {})
        mem = dict(fit.get("per_gpu_gib") or {})
        if "capacity_gib" in fit:
            mem.setdefault("capacity", fit["capacity_gib"])
        gpus = int(data["gpus"])
        fits = bool(fit.get("fits"))
        draft_precision = data.get("draft_precision")
        draft_tp = int(fit.get("draft_tp") or 1)
    plan = ExportPlan(
        target=data["target"], draft=src.get("draft"), k=src.get("k"), tensor_parallel=gpus,
        precision=data["precision"], draft_precision=draft_precision,
        kv_precision=data["kv_precision"], context=int(data["context"]), batch=int(data["batch"]),
        engine=data["engine"], gpu=data["gpu"], speedup=_float(src.get("speedup"), 1.0),
        speedup_low=_float(src.get("speedup_low"), 1.0), speedup_high=_float(src.get("speedup_high"), 1.0),
        alpha=src.get("alpha"), alpha_source=src.get("alpha_source"),
        vram_total_gib=_float(mem.get("total")), vram_capacity_gib=_float(mem.get("capacity")),
        fits=fits, created_at=str(data.get("created_at") or "unknown"),
        draft_tensor_parallel=draft_tp, memory_gib=_memory(mem), warnings=warnings,
    )
    check_plan(plan)
    return plan


def check_plan(plan: ExportPlan) -> None:
    """Refuse plans no server can run as speculative decoding: no draft, no fit, foreign tokens."""
    if not plan.draft or not plan.k:
        raise SpecplanError("the plan has no draft model: there is no speculative decoding to export")
    if plan.vram_capacity_gib <= 0:
        raise SpecplanError("the plan records no GPU memory capacity; re-run `specplan estimate`/`recommend` to make it")
    if not plan.fits:
        raise SpecplanError(
            f"the plan does not fit: {plan.vram_total_gib:.1f} of {plan.vram_capacity_gib:.1f} GiB per GPU on "
            f"{plan.tensor_parallel} x {plan.gpu}; re-plan (more GPUs, smaller formats, shorter context) first"
        )
    if any("allow-tokenizer-mismatch" in w for w in plan.warnings):
        raise SpecplanError(
            f"draft {plan.draft} does not share target {plan.target}'s tokenizer (the plan was made with "
            "--allow-tokenizer-mismatch); servers verify draft token ids against the target's, so acceptance would be ~0"
        )
    target, draft = catalogue_model(plan.target), catalogue_model(plan.draft)
    if target is not None and draft is not None and target.tokenizer != draft.tokenizer:
        raise SpecplanError(
            f"draft {draft.id} uses tokenizer {draft.tokenizer!r} but target {target.id} uses {target.tokenizer!r}; "
            "token ids would not match"
        )


# --- catalogue and model references ---------------------------------------------------------------------


def catalogue_model(name: str | None) -> ModelSpec | None:
    """The catalogue entry of a repo id or alias, or None for a local checkpoint / unknown id."""
    if not name:
        return None
    return model_catalog().index.get(name.strip().lower())


def model_reference(name: str, precision: str, override: str | None, server_label: str, role: str,
                    flag: str, online: frozenset[str] = frozenset({"fp8"})) -> str:
    """What to load for ``name`` at ``precision``: the override path, or the plan's id or path.

    A catalogue id names the 16-bit checkpoint on the Hub. Formats the server only loads
    pre-quantized (``PRE_QUANTIZED``, plus fp8 where ``online`` lacks it) cannot come
    from it: a quantized export must be named with ``flag``.
    """
    if override:
        return override
    if catalogue_model(name) is None:
        return name  # a local folder or an id of the user's own checkpoint: taken as quantized as planned
    if precision in PRE_QUANTIZED or (precision == "fp8" and "fp8" not in online):
        raise SpecplanError(
            f"the plan runs the {role} {name} as {precision}, but {name} is the 16-bit checkpoint and "
            f"{server_label} loads {precision} weights only from a checkpoint quantized that way: pass {flag} "
            f"with such a checkpoint, or re-plan with a format {server_label} quantizes itself (bf16, fp16"
            f"{', fp8' if 'fp8' in online else ''})"
        )
    return catalogue_model(name).id  # type: ignore[union-attr]  # the canonical repo id for an alias


def check_runs(plan: ExportPlan, engine_name: str, label: str) -> None:
    """Refuse weight or KV formats the server's engine (planner/engines.yaml) does not run."""
    from planner.engines import engine_spec

    eng = engine_spec(engine_name)
    for what, fmt in (("target", plan.precision), ("draft", plan.draft_precision or plan.precision)):
        name = weight_format(fmt).name
        if name not in eng.weight_formats:
            raise SpecplanError(
                f"{label} cannot run the {what} as {name}; it runs {', '.join(eng.weight_formats)} "
                f"(re-plan with --engine {engine_name})"
            )
    kv = kv_format(plan.kv_precision).name
    if kv not in eng.kv_formats:
        raise SpecplanError(f"{label} cannot store the KV cache as {kv}; it offers {', '.join(eng.kv_formats)}")


def draft_max_context(plan: ExportPlan) -> int:
    """The draft's context limit: the plan's context, cut to the draft's maximum when known."""
    spec = catalogue_model(plan.draft)
    return min(plan.context, spec.max_context_tokens) if spec is not None else plan.context


# --- release lines ---------------------------------------------------------------------------------------


@cache
def server_args(server: str) -> dict[str, Any]:
    """planner/exports/server_args/<server>.yaml as read (lines, sources, accepted arguments)."""
    path = files("planner.exports") / "server_args" / f"{server}.yaml"
    return safe_load(path.read_text(encoding="utf-8"))


def parse_version(text: str) -> tuple[int, ...]:
    """``"0.7.3"``, ``"v0.14.0rc1"``, ``"b8672"`` -> (0, 7, 3), (0, 14, 0, 1), (8672,)."""
    parts = tuple(int(p) for p in _VERSION_PART.findall(text))
    if not parts:
        raise SpecplanError(f"cannot read a version number in {text!r}")
    return parts


def _pad(v: tuple[int, ...], n: int) -> tuple[int, ...]:
    return v + (0,) * (n - len(v))


def _in_line(version: tuple[int, ...], entry: dict[str, Any]) -> bool:
    """True when ``min <= version < below`` (missing bounds are open; parts compared as numbers)."""
    low = parse_version(str(entry["min"])) if "min" in entry else None
    high = parse_version(str(entry["below"])) if "below" in entry else None
    n = max(len(version), len(low or ()), len(high or ()))
    v = _pad(version, n)
    if low is not None and v < _pad(low, n):
        return False
    return high is None or v < _pad(high, n)


def select_line(server: str, server_version: str | None) -> ServerLine:
    """The release line for ``server_version`` (None: the current line); refused lines raise."""
    doc = server_args(server)
    entries = doc["lines"]
    if server_version is None or not server_version.strip():
        entry = next(e for e in entries if e["name"] == doc["default_line"])
    else:
        wanted = server_version.strip().lower()
        named = [e for e in entries if wanted == e["name"].lower() or wanted in (a.lower() for a in e.get("aliases", ()))]
        if named:
            entry = named[0]
        else:
            version = parse_version(wanted)
            matches = [e for e in entries if _in_line(version, e)]
            if not matches:
                raise SpecplanError(f"no {doc['label']} release line covers version {server_version!r}")
            entry = matches[0]
    if "refuse" in entry:
        raise SpecplanError(f"{doc['label']} {server_version or entry['name']}: {' '.join(entry['refuse'].split())}")
    return ServerLine(server=server, name=entry["name"], version=" ".join(str(entry["version"]).split()), args=entry)


# --- memory ----------------------------------------------------------------------------------------------


def needed_gib(plan: ExportPlan, engine_name: str, parts: tuple[str, ...]) -> float:
    """GiB per GPU of the named plan components plus the server's own CUDA context when asked."""
    from planner.engines import engine_spec

    total = sum(plan.component(p) for p in parts if p != "cuda_context")
    if "cuda_context" in parts:
        total += engine_spec(engine_name).cuda_context_gib
    return total


def fraction_up(x: float) -> float:
    """Round a memory fraction up to two decimals (never below what is needed)."""
    return math.ceil(x * 100 - 1e-9) / 100


def fraction_down(x: float) -> float:
    """Round a memory fraction down to two decimals (never above what is allowed)."""
    return math.floor(x * 100 + 1e-9) / 100


# --- text ------------------------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def header(plan: ExportPlan, server_label: str, line: ServerLine, measure: list[str], notes: list[str]) -> list[str]:
    """The lines every exported file starts with (no comment markers)."""
    draft_prec = plan.draft_precision or plan.precision
    alpha = (f"per-token acceptance alpha {_pct(plan.alpha)} from {plan.alpha_source or 'unknown'}"
             if plan.alpha is not None else "no alpha recorded")
    lines = [
        f"Written by specplan {__version__} for {server_label}, release line {line.name} ({line.version}).",
        (f"Plan made {plan.created_at}: target {plan.target} ({plan.precision}) + draft {plan.draft} ({draft_prec}), "
        f"k = {plan.k} draft tokens per step, on {plan.tensor_parallel} x {plan.gpu} (draft split over "
        f"{plan.draft_tensor_parallel}), batch {plan.batch}, context {plan.context} tokens, KV cache {plan.kv_precision}."),
        (f"specplan predicted: speedup {plan.speedup:.2f}x (band {plan.speedup_low:.2f}-{plan.speedup_high:.2f}x), "
        f"{alpha}; VRAM {plan.vram_total_gib:.1f} of {plan.vram_capacity_gib:.1f} GiB per GPU "
        f"({'fits' if plan.fits else 'does NOT fit'}, engine reserves of {plan.engine})."),
    ]
    if plan.speedup < WORTHWHILE_SPEEDUP:
        lines.append(f"WARNING: the plan predicts {plan.speedup:.2f}x: speculation does not pay here (large batch, "
                     "weak draft or an expensive draft); serving the target alone is as fast or faster.")
    if plan.engine != line.server:
        lines.append(f"Note: the memory plan used {plan.engine}'s reserves; re-plan with --engine {line.server} "
                     "for this server's own figures.")
    lines += notes
    lines.append("Measure acceptance afterwards:")
    lines += [f"  {m}" for m in measure]
    return lines


def comment_block(lines: list[str], marker: str = "#") -> str:
    """Comment lines for YAML, shell and env files."""
    return "".join(f"{marker} {ln}".rstrip() + "\n" for ln in lines)


@dataclass(frozen=True)
class Var:
    """A shell variable reference in a command line, written as "$NAME"."""

    name: str


def _word(token: str | float | Var) -> str:
    if isinstance(token, Var):
        return f'"${token.name}"'
    if isinstance(token, str) and token.startswith('"$(') and token.endswith('"'):
        return token  # a command substitution written on purpose (the config next to the script)
    return shlex.quote(str(token))


def shell_script(head: list[str], program: list[str], options: list[tuple[str, Any]],
                 env: dict[str, str] | None = None, variables: dict[str, str] | None = None) -> str:
    """A bash script: comment block, variable defaults, exported env, then ``exec`` of one command.

    ``program`` holds the command and its positional words; ``options`` the (flag, value)
    pairs, one per line (value None: a bare flag).
    """
    out = ["#!/usr/bin/env bash\n", comment_block(head), "set -euo pipefail\n"]
    for name, default in (variables or {}).items():
        escaped = re.sub(r'(["\\$`])', r"\\\1", default)  # the default sits inside double quotes
        out.append(f'{name}="${{{name}:-{escaped}}}"\n')
    for name, value in (env or {}).items():
        out.append(f"export {name}={shlex.quote(value)}\n")
    lines = ["exec " + " ".join(_word(w) for w in program)]
    lines += [flag if value is None else f"{flag} {_word(value)}" for flag, value in options]
    out.append(" \\\n  ".join(lines) + "\n")
    return "".join(out)

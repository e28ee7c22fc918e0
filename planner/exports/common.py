"""What every server export shares: the plan it is made from, file names, memory fractions, text.

Plans are read by planner/exports/plan_file.py, release lines chosen by
planner/exports/versions.py and model names written by planner/exports/names.py.
Files are built only through serialisers: YAML by ``yaml.safe_dump``, JSON by
``json.dumps``, Python literals by ``repr`` and shell words by ``shlex.quote``
(``shell_script``); comment lines hold strings that ``check_text`` let through, which
cannot contain a line break.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from planner import __version__
from planner.catalog.lookup import UAG_MARK
from planner.catalog.precisions import kv_format, weight_format
from planner.catalog.tokenizers import TokenizerMatch, match_tokenizers
from planner.exports.method_settings import MethodSettings
from planner.exports.names import model_facts
from planner.exports.versions import ServerLine
from planner.plan import (
    MIN_WORTHWHILE_SPEEDUP as WORTHWHILE_SPEEDUP,  # below it speculation is not worth running
)
from planner.errors import SpecplanError

TORCH_DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16"}  # --dtype / dtype values servers take

__all__ = [
    "TORCH_DTYPE_NAMES",
    "weight_keys",
    "ExportPlan",
    "Export",
    "FileNames",
    "draft_max_context",
    "check_runs",
    "needed_gib",
    "fraction_up",
    "fraction_down",
    "header",
    "proposer_words",
    "comment_block",
    "shell_script",
    "Var",
    "BesideScript",
    "MARGIN",
    "WORTHWHILE_SPEEDUP",
]

MARGIN = 0.02  # head-room added to a memory fraction the plan needs, so rounding never starves the run


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
    # the catalogue releases the plan's figures came from (None: a folder's config.json, or not recorded);
    # architecture facts are looked up there, the names above are what the files say
    target_catalog_id: str | None = None
    draft_catalog_id: str | None = None
    p_min: float | None = None  # draft confidence threshold the plan was priced with (llama.cpp p-min); None: not recorded
    # a head / MTP / lookup method and its settings (head as the plan names it); None: the draft model above
    settings: MethodSettings | None = None

    @property
    def method(self) -> str:
        """The speculation method the plan runs: draft, eagle, eagle3, mtp, ngram or suffix."""
        return self.settings.method if self.settings is not None else "draft"

    def component(self, name: str) -> float:
        """One per-GPU memory component in GiB (0 when the plan does not list it)."""
        return dict(self.memory_gib).get(name, 0.0)


@dataclass(frozen=True)
class Export:
    """Files a server reads (name -> text, the main file first) and a line or two for the terminal."""

    files: dict[str, str]
    summary: str
    server: str = ""
    line: str = ""  # the release line the files are written for


@dataclass(frozen=True)
class FileNames:
    """Names of the files of one export: the main file (``-o``, as given) and companions beside it."""

    main: str

    @property
    def stem(self) -> str:
        """The main name without its suffix (and without "-serve": llama-serve.sh pairs with llama.env)."""
        stem = PurePath(self.main).stem or self.main
        return stem.removesuffix("-serve") or stem

    def companion(self, suffix: str) -> str:
        """``<stem><suffix>``, or ``<main><suffix>`` where that would be the main file itself."""
        name = f"{self.stem}{suffix}"
        return name if name != self.main else f"{self.main}{suffix}"


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


def tokenizer_match(plan: ExportPlan) -> TokenizerMatch | None:
    """How the plan's draft tokenizer relates to the target's (None: a model's facts are unknown)."""
    target, draft = model_facts(plan.target, plan.target_catalog_id), model_facts(plan.draft, plan.draft_catalog_id)
    return None if target is None or draft is None else match_tokenizers(target, draft)


def cross_tokenizer_plan(plan: ExportPlan) -> bool:
    """True when the plan's draft has another tokenizer: it runs only as universal assisted generation."""
    match = tokenizer_match(plan)
    if match is not None:
        return not match.compatible
    return any(UAG_MARK in w for w in plan.warnings)


def draft_max_context(plan: ExportPlan) -> int:
    """The draft's context limit: the plan's context, cut to the draft's maximum when known."""
    spec = model_facts(plan.draft, plan.draft_catalog_id)
    return min(plan.context, spec.max_context_tokens) if spec is not None else plan.context


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


_METHOD_WORDS = {"eagle": "EAGLE head", "eagle3": "EAGLE-3 head", "mtp": "MTP", "ngram": "n-gram lookup (no model)",
                 "suffix": "suffix decoding (no model)"}
OWN_MTP = "the target checkpoint's own nextn layers"


def proposer_words(plan: ExportPlan) -> str:
    """What proposes the tokens, for a header line: the draft, the head, MTP layers or a lookup."""
    if plan.settings is None:
        return f"draft {plan.draft} ({plan.draft_precision or plan.precision})"
    words = _METHOD_WORDS[plan.method]
    head = plan.settings.head
    if plan.method == "mtp":
        return f"{words} ({OWN_MTP if head in (None, plan.target) else head})"
    return f"{words} {head}" if head else words


def _draft_split(plan: ExportPlan) -> str:
    return f" (draft split over {plan.draft_tensor_parallel})" if plan.settings is None else ""


def header(plan: ExportPlan, server_label: str, line: ServerLine, measure: list[str], notes: list[str]) -> list[str]:
    """The lines every exported file starts with (no comment markers)."""
    alpha = (f"per-token acceptance alpha {_pct(plan.alpha)} from {plan.alpha_source or 'unknown'}"
             if plan.alpha is not None else "no alpha recorded")
    lines = [
        f"Written by specplan {__version__} for {server_label}, release line {line.name} ({line.version}).",
        (f"Plan made {plan.created_at}: target {plan.target} ({plan.precision}) + {proposer_words(plan)}, "
        f"k = {plan.k} draft tokens per step, on {plan.tensor_parallel} x {plan.gpu}{_draft_split(plan)}, "
        f"batch {plan.batch}, context {plan.context} tokens, KV cache {plan.kv_precision}."),
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


@dataclass(frozen=True)
class BesideScript:
    """A file in the script's own folder, written as "$(dirname -- "$0")"/'NAME'."""

    name: str


def _word(token: str | float | Var | BesideScript) -> str:
    if isinstance(token, Var):
        return f'"${token.name}"'
    if isinstance(token, BesideScript):
        return '"$(dirname -- "$0")"/' + shlex.quote(token.name)
    return shlex.quote(str(token))


def shell_script(head: list[str], program: list[str], options: list[tuple[str, Any]],
                 env: dict[str, str] | None = None, variables: dict[str, str] | None = None) -> str:
    """A bash script: comment block, variable defaults, exported env, then ``exec`` of one command.

    ``program`` holds the command and its positional words; ``options`` the (flag, value)
    pairs, one per line (value None: a bare flag). A variable keeps a value set in the
    environment; its default is one quoted word.
    """
    out = ["#!/usr/bin/env bash\n", comment_block(head), "set -euo pipefail\n"]
    for name, default in (variables or {}).items():
        out.append(f'if [ -z "${{{name}:-}}" ]; then {name}={shlex.quote(default)}; fi\n')
    for name, value in (env or {}).items():
        out.append(f"export {name}={shlex.quote(value)}\n")
    lines = ["exec " + " ".join(_word(w) for w in program)]
    lines += [flag if value is None else f"{flag} {_word(value)}" for flag, value in options]
    out.append(" \\\n  ".join(lines) + "\n")
    return "".join(out)


def weight_keys(precision: str) -> dict[str, str]:
    """The dtype (16-bit checkpoints) or on-the-fly fp8 quantization keys vLLM and SGLang share.

    AWQ/GPTQ/int8 and block-scaled checkpoints carry their quantization_config: the server picks
    the kernel itself, so nothing is written for them.
    """
    prec = weight_format(precision).name
    if prec in TORCH_DTYPE_NAMES:
        return {"dtype": TORCH_DTYPE_NAMES[prec]}
    return {"quantization": "fp8"} if prec == "fp8" else {}

"""Speculative rows of both public files as `specplan estimate` inputs plus what was measured.

speculative_more.yaml rows carry their own ``specplan: args:`` (used as given). Section B of
measurements.yaml is written in the sources' words; ``case_from_section_b`` maps a row onto the
same flags with the rules below, so both files are priced by the path users take:

* engine: from the row's engine words (else its method and source: "Spec-Bench" = transformers,
  "gpt-fast", "llama.cpp", "LM Studio MLX" = llamacpp, the closest engine entry for MLX);
* target / draft: catalogue models with the architecture the source names (Spec-Bench's SpS
  draft is double7/vicuna-68m); precision from the row's precision or the quant in the name;
* k: the row's; where a source leaves it out, the engine's default it ran with (_ROW_FACTS);
  none known: estimate's best k (the most favourable to speculation);
* batch: the row's batch_size (1 when absent); context: prompt + output when given, else
  512 tokens, whose mean cached length (256) is the decode check's default;
* task: code for code prompts, summarize for summaries, else chat;
* measured: spec/baseline tokens/s, else the printed speedup; "up to N" is an upper bound,
  "N slowdown" is 1/N.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from planner.errors import SpecplanError
from planner.validation.names import engine_name_in, loop_version_in, source_format, source_gpu, source_model
from planner.validation.rows import MEASUREMENTS, SPECULATIVE_MORE, is_number

__all__ = ["MeasuredAcceptance", "SpecCase", "Skip", "case_from_section_b", "case_from_more", "SpeedupKind"]

SpeedupKind = Literal["measured", "upper bound", "no gain"]
_CONTEXT_TOKENS = 512  # mean cached 256 tokens (estimate halves the context), the decode check's default
# Methods that are not a separate draft model (heads, n-gram lookup, multi-token prediction): issue 12.
_NOT_A_DRAFT_MODEL = ("eagle", "medusa", "hydra", "mtp", "n-gram", "ngram", "pld", "prompt lookup", "rest", "lookahead",
                      "recycling", "sam-decoding", "dspark", "dflash")
_ACCEPTANCE_FIELDS = ("alpha", "acceptance_rate", "mean_accepted_tokens", "mean_accepted_length",
                      "mean_accepted_per_round", "n_drafted")
# Facts about section-B rows that the row itself does not state, each read in the row's source.
_ROW_FACTS: dict[str, dict[str, Any]] = {
    # Spec-Bench's SpS baseline calls transformers' assisted generation, which starts at
    # num_assistant_tokens=5 (heuristic schedule); the benchmark mixes chat-style tasks.
    **{row: {"k": 5, "note": "k=5: transformers' starting num_assistant_tokens (Spec-Bench SpS)"}
       for row in ("B-SBA100-7B-05", "B-SBA100-13B-04", "B-SBA100-33B-04")},
    # gpt-fast generate.py: --speculate_k defaults to 5; scripts/speculate_*.sh prompt "def quicksort(arr):".
    "B-GF-01": {"k": 5, "task": "code", "precision": "int4-gptq", "draft_precision": "int4-gptq",
                "note": "k=5 gpt-fast --speculate_k default; int4 G=32 priced as int4-gptq (group-wise int4)"},
    # A measured slowdown, but its caption names neither the draft nor the load ("high QPS").
    "B-VLLM-03": {"skip": "slowdown at 'high QPS': the caption states neither the draft nor the concurrency, "
                          "so no batch can be priced"},
    # LM Studio rows name the models loosely; the catalogue ids with that architecture.
    "B-LMS-03": {"target": "Qwen/Qwen2.5-7B-Instruct", "draft": "Qwen/Qwen2.5-1.5B-Instruct",
                 "note": "'Qwen 2.5 1B' (as written; no such size) priced as Qwen2.5-1.5B"},
}


# Builds the speculative_more rows ran, where the source dates them but names no build. PR #5625's
# thread (ggerganov's review and llama-bench table, 2024-03-02): a build of early March 2024,
# b2300 (the tag of those days, estimated from the date); it prices the speculative example's loop
# (no server speculation before b4180) and the CUDA kernels of that time (engines.yaml pr5625-2024-03).
_MORE_BUILDS = {"S2-LC5625": "b2300"}


@dataclass(frozen=True)
class MeasuredAcceptance:
    """The acceptance a run measured, in the quantity its source printed."""

    alpha: float | None = None  # per-token acceptance
    acceptance_rate: float | None = None  # accepted / drafted tokens at k
    mean_accepted_length: float | None = None  # tokens per round, the bonus token included
    drafted: int | None = None  # llama.cpp n_drafted (counts over the run)
    accepted: int | None = None  # llama.cpp n_accept
    rounds: int | None = None  # verification rounds, when the source gives them

    def describe(self) -> str:
        """The figure as the source gave it."""
        if self.drafted is not None and self.accepted is not None:
            return f"accepted {self.accepted} of {self.drafted} drafted" + (f" in {self.rounds} rounds" if self.rounds else "")
        if self.alpha is not None:
            return f"alpha {self.alpha:g}"
        if self.acceptance_rate is not None:
            return f"accepted/proposed {self.acceptance_rate:g}"
        return f"mean accepted length {self.mean_accepted_length:g}"


@dataclass(frozen=True)
class SpecCase:
    """One speculative row ready to price: estimate flags plus the measured figures."""

    row: str
    file: str
    args: tuple[tuple[str, Any], ...]  # estimate flags (FitInputs fields plus k and task)
    measured_speedup: float | None = None
    speedup_kind: SpeedupKind = "measured"
    measured_r: float | None = None
    acceptance: MeasuredAcceptance | None = None
    note: str = ""
    baseline_tokens_per_s: float | None = None  # the run's target alone, when the source gives it
    tree: dict[str, Any] | None = None  # the token tree a method row was measured on (None: a chain)

    @property
    def flags(self) -> dict[str, Any]:
        """The estimate flags as a mapping."""
        return dict(self.args)

    @property
    def method(self) -> str:
        """The proposal method priced: draft, or a head / MTP / lookup method (issue 12)."""
        return str(self.flags.get("method") or "draft")


@dataclass(frozen=True)
class Skip:
    """A row that is not priced, and why."""

    row: str
    file: str
    reason: str
    method: str | None = None  # a method row's planner method, or its own words for one not planned; None: draft


def _unmodelled(row: dict[str, Any]) -> str | None:
    """Why a section-B row is not a separate draft model run that can be priced, or None."""
    method = str(row.get("method", "")).lower()
    if any(word in method for word in _NOT_A_DRAFT_MODEL):
        return f"method {row.get('method')!r} is a draft head, n-gram lookup or MTP, not a separate draft model (issue 12)"
    draft = str(row.get("draft") or "")
    if not draft or "not stated" in draft or "not named" in draft or "method-specific" in draft:
        return "draft model not named"
    if not ("draft" in method or "sps" in method or "speculative sampling" in method):
        return f"method {row.get('method')!r} does not say a separate draft model"
    return None


def _draft_name(row: dict[str, Any]) -> str:
    draft = str(row.get("draft") or "")
    if "SpS" in str(row.get("method")) or "vicuna-68m" in draft.lower() or "MCSD" in draft:
        return "double7/vicuna-68m"  # Spec-Bench's SpS draft
    return re.split(r"\s+(?:Q\d|\(|-ngl)", draft)[0]


def _quant_in(text: str) -> str | None:
    """The weight format a model label names: GGUF types, int4/int8, and MLX's "Q4 MLX" (group-64 affine)."""
    if re.search(r"\bQ4\b.*\bMLX\b", text, flags=re.I):
        return "q4_0"  # MLX 4-bit: 4 bits + fp16 scale and bias per 64 weights = 4.5 bits, as GGUF q4_0
    m = re.search(r"\b(Q\d_K_[SML]|Q\d_K|Q\d_0|F16|BF16|int4|int8)\b", text, flags=re.I)
    return m.group(1) if m else None


def _measured_speedup(row: dict[str, Any]) -> tuple[float, SpeedupKind]:
    if row.get("tok_s_spec") and row.get("tok_s_baseline"):
        return float(row["tok_s_spec"]) / float(row["tok_s_baseline"]), "measured"
    value = row.get("speedup_overall", row.get("speedup_reported"))
    if is_number(value) and value > 0:
        return float(value), "measured"
    text, number = str(value or ""), r"([0-9]{1,6}(?:\.[0-9]{1,6})?)"
    m = re.fullmatch(rf"\s*up to\s+{number}\s*x?\s*", text, flags=re.I)
    if m and float(m.group(1)) > 0:
        return float(m.group(1)), "upper bound"
    m = re.fullmatch(rf"\s*{number}\s*x\s+slowdown\s*", text, flags=re.I)
    if m and float(m.group(1)) > 0:
        return 1.0 / float(m.group(1)), "measured"
    raise SpecplanError("no numeric speedup")


def _acceptance(row: dict[str, Any]) -> MeasuredAcceptance | None:
    if row.get("n_drafted") and row.get("n_accept") is not None:
        return MeasuredAcceptance(drafted=int(row["n_drafted"]), accepted=int(row["n_accept"]),
                                  rounds=row.get("n_rounds"))
    if row.get("alpha") is not None:
        return MeasuredAcceptance(alpha=float(row["alpha"]))
    if row.get("acceptance_rate") is not None:
        return MeasuredAcceptance(acceptance_rate=float(row["acceptance_rate"]))
    mean = row.get("mean_accepted_tokens") or row.get("mean_accepted_length") or row.get("mean_accepted_per_round")
    return None if mean is None else MeasuredAcceptance(mean_accepted_length=float(mean))


def _gpus(row: dict[str, Any]) -> int:
    if row.get("n_gpus"):
        return int(row["n_gpus"])
    m = re.match(r"\s*(\d+)\s*x\s", str(row.get("hardware", "")))
    return int(m.group(1)) if m else 1


def _task(row: dict[str, Any]) -> str:
    words = " ".join(str(row.get(f, "")) for f in ("task", "benchmark")).lower()
    if "spec-bench" in words and not row.get("task"):
        return "mixed"  # the leaderboard's overall figure: six tasks, not one
    if any(w in words for w in ("code", "humaneval", "mbpp")):
        return "code"
    return "summarize" if any(w in words for w in ("summar", "cnn/dm", "dailymail")) else "chat"


def case_from_section_b(row: dict[str, Any]) -> SpecCase | Skip:
    """A measurements.yaml section-B row as estimate flags (rules in the module docstring), or why not."""
    rid = str(row.get("id", "?"))
    facts = _ROW_FACTS.get(rid, {})
    if reason := facts.get("skip") or _unmodelled(row):
        return Skip(rid, MEASUREMENTS, reason)
    try:
        measured, kind = _measured_speedup(row)
        target = facts.get("target") or source_model(re.sub(r"\s+(Q\d\S*(\s+MLX)?|int4.*|fp16)$", "", str(row["target"]),
                                                           flags=re.I)).id
        draft = facts.get("draft") or source_model(_draft_name(row)).id
        gpu = source_gpu(re.sub(r"^\s*\d+\s*x\s*", "", str(row.get("hardware")))).id
        precision = facts.get("precision") or source_format(row.get("precision") or _quant_in(str(row["target"]))).name
        draft_precision = facts.get("draft_precision") or source_format(
            _quant_in(str(row.get("draft"))) or row.get("precision") or _quant_in(str(row["target"]))).name
    except SpecplanError as exc:
        return Skip(rid, MEASUREMENTS, str(exc))
    words = row.get("engine") or f"{row.get('method', '')} {row.get('source', '')}"
    prompt = (row.get("prompt_tokens") or 0) + (row.get("output_tokens") or 0)
    args: dict[str, Any] = {
        "target": target, "draft": draft, "gpu": gpu, "gpus": _gpus(row), "engine": engine_name_in(words),
        "precision": precision, "draft_precision": draft_precision, "batch": int(row.get("batch_size") or 1),
        "context": int(prompt) or _CONTEXT_TOKENS, "task": facts.get("task") or _task(row),
    }
    version = loop_version_in(words, args["engine"])
    if version:
        args["server_version"] = version  # the draft loop the run used (planner/draftloop/loops.yaml)
    k = row.get("k") or facts.get("k")
    if k:
        args["k"] = int(k)
    acceptance = _acceptance(row)
    baseline = float(row["tok_s_baseline"]) if row.get("tok_s_baseline") else None
    return SpecCase(rid, MEASUREMENTS, tuple(args.items()), measured, kind, acceptance=acceptance,
                    note=facts.get("note", ""), baseline_tokens_per_s=baseline)


def _more_acceptance(block: dict[str, Any]) -> MeasuredAcceptance | None:
    acc = block.get("acceptance")
    if not acc:
        return None
    names = {"n_drafted": "drafted", "n_accept": "accepted", "n_rounds": "rounds"}
    fields = {names.get(key, key): value for key, value in acc.items()}
    try:
        return MeasuredAcceptance(**fields)
    except TypeError as exc:
        raise SpecplanError(f"acceptance: unknown field ({exc})") from None


def case_from_more(row: dict[str, Any]) -> SpecCase | Skip:
    """A speculative_more.yaml row: its specplan args as given, and what its compare block measured."""
    block = row["specplan"]
    if not block["expressible"]:
        return Skip(row["id"], SPECULATIVE_MORE, block["reason"])
    compare = block["compare"]
    printed = str(row.get("speedup_printed", ""))
    kind: SpeedupKind = "upper bound" if "up to" in printed.lower() else "measured"
    speedup = compare.get("speedup")
    if speedup is None and compare.get("qualitative"):
        speedup, kind = 1.0, "no gain"  # "no significant speed-up": checked as "speculation does not pay"
    if speedup is None and compare.get("r") is None:
        return Skip(row["id"], SPECULATIVE_MORE, "nothing to compare (no speedup, r or qualitative outcome)")
    try:
        acceptance = _more_acceptance(block)
    except SpecplanError as exc:
        return Skip(row["id"], SPECULATIVE_MORE, str(exc))
    args = dict(block["args"])
    version = _MORE_BUILDS.get(str(row["id"]).rsplit("-", 1)[0]) or loop_version_in(
        str(row.get("engine") or ""), str(args.get("engine") or ""))
    if version:
        args["server_version"] = version  # the loop and kernels the run used (loops.yaml, engines.yaml)
    return SpecCase(row["id"], SPECULATIVE_MORE, tuple(args.items()),
                    None if speedup is None else float(speedup), kind,
                    None if compare.get("r") is None else float(compare["r"]), acceptance,
                    str(block.get("mapping_notes") or ""),
                    None if compare.get("baseline_tok_s") is None else float(compare["baseline_tok_s"]))

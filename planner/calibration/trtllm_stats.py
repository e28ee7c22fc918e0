"""TensorRT-LLM iteration stats -> a calibration file (``trtllm-serve`` ``GET /metrics``, ``llm.get_stats()``).

With ``enable_iter_perf_stats: true`` the PyTorch executor appends one IterationStats per iteration
(tensorrt_llm/_torch/pyexecutor/py_executor.py ``_update_iter_stats``); ``/metrics`` returns them as a
JSON array and empties the queue (consumed on read). The JSON keys are the C++ struct's
(cpp/tensorrt_llm/executor/jsonSerialization.cpp: ``NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SpecDecodingStats,
numDraftTokens, numAcceptedTokens, numRequestsWithDraftTokens, acceptanceLength, iterLatencyMS,
draftOverhead)``; InflightBatchingStats has ``numGenRequests``). Per iteration, over the generation
requests that carried ``draft_len > 0`` drafts: D = numDraftTokens, A = numAcceptedTokens, S =
numRequestsWithDraftTokens and acceptanceLength = (A + S) / S (bonus token included;
cpp/include/tensorrt_llm/executor/types.h: "average number of tokens produced per step for all
requests with at least one draft token"). Summed over iterations these are vLLM's counters, so the
same conversion applies: rate A / D, alpha through ``alpha_from_acceptance_rate``; for NGram the
steps without a match are counted from numGenRequests (``method_fits``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from planner.calibration.acceptance_stats import LEVEL, MAX_COUNT, ModelArg, fit_from_rate, model_identity
from planner.calibration.method_fits import LOOKUP_METHODS, lookup_fit, method_note
from planner.calibration.schema import AcceptanceCounters, CalibrationFile, FittedAcceptance
from planner.errors import SpecplanError
from planner.inputs import parse_json
from planner.speedup import check_k

__all__ = ["TrtllmCounts", "trtllm_counts", "trtllm_calibration"]

_SPEC = "specDecodingStats"
_FIELDS = ("numDraftTokens", "numAcceptedTokens", "numRequestsWithDraftTokens")


@dataclass(frozen=True)
class TrtllmCounts:
    """Spec-decode counts summed over the iterations that drafted: tokens and request-steps."""

    drafted: int  # D
    accepted: int  # A, bonus excluded
    steps_with_draft: int  # S: request-steps that carried drafts
    generation_steps: int | None  # sum of numGenRequests over every iteration (None: some entry lacks it)
    iterations: int  # entries that drafted
    entries: int  # every entry read
    printed_lengths: tuple[tuple[float, int], ...]  # (acceptanceLength, S) of each drafting iteration


def _entries(text: str, label: str) -> list[Any]:
    """The iteration-stat objects of a JSON array (of objects or of JSON strings) or of JSON lines."""
    stripped = text.strip()
    if not stripped:
        raise SpecplanError(f"{label}: empty: save the JSON that trtllm-serve's GET /metrics returned")
    if stripped.startswith("["):
        doc = parse_json(stripped, label)
        items = doc if isinstance(doc, list) else [doc]
    else:
        items = [parse_json(line, f"{label} line {n}") for n, line in enumerate(stripped.splitlines(), 1) if line.strip()]
    return [parse_json(i, label) if isinstance(i, str) else i for i in items]


def _count(value: Any, name: str, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or not 0 <= value <= MAX_COUNT:
        raise SpecplanError(f"{label}: {_SPEC}.{name} is {value!r}; expected a whole count from 0 to 2^53")
    return int(value)


def trtllm_counts(text: str, label: str = "TensorRT-LLM stats") -> TrtllmCounts:
    """Sum the spec-decode stats of one saved ``/metrics`` (or ``get_stats``) output."""
    entries = _entries(text, label)
    drafted = accepted = steps = iterations = 0
    generation: int | None = 0
    lengths = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise SpecplanError(f"{label}: expected iteration-stat objects (JSON), found {type(entry).__name__}")
        batching = entry.get("inflightBatchingStats")
        gen = batching.get("numGenRequests") if isinstance(batching, dict) else None
        generation = None if generation is None or gen is None else generation + _count(gen, "numGenRequests", label)
        spec = entry.get(_SPEC)
        if not isinstance(spec, dict):
            continue
        d, a, s = (_count(spec.get(f, 0), f, label) for f in _FIELDS)
        if d == 0:
            continue
        if a > d or s == 0:
            raise SpecplanError(f"{label}: iteration {entry.get('iter')!r} accepts {a} of {d} draft tokens over {s} "
                                "requests with drafts: the stats are inconsistent")
        drafted, accepted, steps, iterations = drafted + d, accepted + a, steps + s, iterations + 1
        printed = spec.get("acceptanceLength")
        if isinstance(printed, (int, float)) and not isinstance(printed, bool):
            lengths.append((float(printed), s))
    if not iterations:
        raise SpecplanError(f"{label}: no iteration with {_SPEC}.numDraftTokens > 0 among {len(entries)} entries: "
                            "run with enable_iter_perf_stats: true and send traffic before reading /metrics")
    return TrtllmCounts(drafted, accepted, steps, generation, iterations, len(entries), tuple(lengths))


def _k(counts: TrtllmCounts, k: int | None, label: str) -> tuple[int, str]:
    if k is not None:
        k = int(check_k(k))
        if counts.drafted > k * counts.steps_with_draft:
            raise SpecplanError(f"{label}: {counts.drafted} draft tokens over {counts.steps_with_draft} request-steps "
                                f"is more than k={k} per step: check --k (max_draft_len)")
        return k, f"k = {k} as given"
    if counts.drafted % counts.steps_with_draft == 0:
        inferred = int(check_k(counts.drafted // counts.steps_with_draft))
        return inferred, f"k = {inferred} inferred from draft tokens / request-steps with drafts"
    raise SpecplanError(f"{label}: draft tokens per step vary: pass --k (the speculative_config's max_draft_len)")


def _notes(counts: TrtllmCounts, k_note: str, rate: float) -> list[str]:
    notes = [f"{counts.iterations} of {counts.entries} iteration-stat entries drafted (what the server held "
             "since the last read: /metrics is consumed on read)", k_note,
             f"draft acceptance rate A / D = {rate:.4f} = {counts.accepted} / {counts.drafted}",
             f"mean acceptance length over steps with a draft 1 + A / S = "
             f"{1 + counts.accepted / counts.steps_with_draft:.4f} (S = {counts.steps_with_draft} request-steps)"]
    if counts.printed_lengths:
        weight = sum(s for _, s in counts.printed_lengths)
        printed = sum(length * s for length, s in counts.printed_lengths) / weight
        notes.append(f"the server's acceptanceLength, weighted by requests with drafts: {printed:.4f} (cross-check)")
    return notes


def trtllm_calibration(texts: Sequence[str], k: int | None, target: ModelArg, draft: ModelArg | None,
                       labels: Sequence[str] | None = None, *, method: str = "draft",
                       head: str | None = None) -> CalibrationFile:
    """A calibration file from saved TensorRT-LLM iteration stats (several reads of /metrics add up).

    alpha is the per-token alpha whose acceptance rate at k equals A / D (``fit_from_rate``); for
    n-gram the accepted tokens are spread over every generation step when numGenRequests is present.
    """
    labels = list(labels) if labels is not None else [f"TensorRT-LLM stats #{i}" for i in range(1, len(texts) + 1)]
    parts = [trtllm_counts(t, label) for t, label in zip(texts, labels)]
    gens = [p.generation_steps for p in parts]
    counts = TrtllmCounts(sum(p.drafted for p in parts), sum(p.accepted for p in parts),
                          sum(p.steps_with_draft for p in parts), None if None in gens else sum(gens),  # type: ignore[arg-type]
                          sum(p.iterations for p in parts), sum(p.entries for p in parts),
                          tuple(x for p in parts for x in p.printed_lengths))
    origin = ", ".join(labels)
    k, k_note = _k(counts, k, origin)
    fit = fit_from_rate(counts.accepted, counts.drafted, k, counts.steps_with_draft, None)
    notes = ([method_note(method, head)] if method != "draft" else []) + _notes(counts, k_note, fit.rate)
    steps = counts.steps_with_draft
    lookup_steps = None
    if method in LOOKUP_METHODS:
        if counts.generation_steps is not None and counts.generation_steps >= counts.steps_with_draft:
            lookup_steps = steps = counts.generation_steps
            fit = lookup_fit(counts.accepted, k, steps, None)
            notes.append(f"generation steps T = sum of numGenRequests = {steps}; {steps - counts.steps_with_draft} found "
                         f"no match (TensorRT-LLM counts only requests with draft_len > 0); mean accepted length over "
                         f"every step 1 + A / T = {1 + counts.accepted / steps:.4f}; alpha from A / (k T)")
        else:
            notes.append("no numGenRequests in every entry: alpha describes only the steps that found a match "
                         "(an upper bound on the every-step alpha the plan uses)")
    notes.append(f"per-token alpha {fit.alpha:.4f}: the alpha whose acceptance rate at k={k} equals the rate above "
                 f"(alpha_from_acceptance_rate); {LEVEL:.0%} interval [{fit.alpha_low:.4f}, {fit.alpha_high:.4f}]")
    fitted = FittedAcceptance(mode="server", alpha=fit.alpha, alpha_low=fit.alpha_low, alpha_high=fit.alpha_high, k=k,
                              rounds=steps, mean_accepted_length=1 + counts.accepted / steps)
    counters = AcceptanceCounters(
        num_drafts=counts.steps_with_draft, num_draft_tokens=counts.drafted, num_accepted_tokens=counts.accepted, k=k,
        steps_without_draft=None if lookup_steps is None else lookup_steps - counts.steps_with_draft)
    return CalibrationFile(source="trtllm-stats", engine="trtllm", target=model_identity(target),  # type: ignore[arg-type]
                           draft=model_identity(draft), method=method, head=head, counters=counters,
                           fitted_acceptance=[fitted], notes=notes)

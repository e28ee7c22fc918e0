"""llama.cpp outputs -> a calibration file: server responses, server logs, llama-speculative output.

Three texts carry acceptance counts: ``timings.draft_n`` / ``timings.draft_n_accepted`` in
llama-server responses, the server log line ``draft acceptance rate = r ( a accepted / g
generated)``, and the ``n_drafted`` / ``n_accept`` lines printed by ``llama-speculative``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from planner.calibration.acceptance_stats import LEVEL, MAX_COUNT, ModelArg, fit_from_rate, model_identity
from planner.calibration.schema import AcceptanceCounters, CalibrationFile, FittedAcceptance
from planner.draftloop import alpha_from_loop_counts, engine_loop
from planner.draftloop.convert import rate_floor
from planner.errors import SpecplanError
from planner.inputs import parse_json, shown
from planner.speedup import acceptance_rate_from_alpha, check_k

__all__ = ["llamacpp_calibration", "server_p_min"]

_LOG_LINE = re.compile(
    r"draft acceptance rate\s*=\s*[^\s(]*\s*\(\s*([0-9]+)\s+accepted\s*/\s*([0-9]+)\s+generated\s*\)", re.IGNORECASE
)
_SPEC_DRAFTED = re.compile(r"\bn_drafted\s*=\s*([0-9]+)")
_SPEC_ACCEPT = re.compile(r"\bn_accept\s*=\s*([0-9]+)")
_SPEC_PREDICT = re.compile(r"\bn_predict\s*=\s*([0-9]+)")
_SPEC_DRAFT = re.compile(r"\bn_draft\s*=\s*([0-9]+)")
# p-min as the server states it: "speculative.p_min": 0.75 in /props and generation_settings, or
# "p_min=0.750000" / "p_min = 0.75" in a log (draft-simple prints its settings at start-up).
_P_MIN_JSON = re.compile(r'"speculative\.p_min"\s*:\s*([0-9]*\.?[0-9]+)')
_P_MIN_LOG = re.compile(r"\bp_min\s*=\s*([0-9]*\.?[0-9]+)")


@dataclass(frozen=True)
class _LlamaCounts:
    """Acceptance counts read from one llama.cpp text; ``steps`` None when the text cannot tell."""

    kind: str
    accepted: int
    drafted: int
    steps: int | None
    items: int
    n_draft: int | None = None  # llama-speculative's --draft setting, when printed


def _whole(value: Any, field: str, label: str) -> int:
    # Ints are compared, never converted: math.isfinite(10**400) would raise OverflowError.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
        raise SpecplanError(f"{label}: timings.{field} is {shown(value, 40)}; expected a count")
    if value < 0 or value > MAX_COUNT or value != int(value):
        raise SpecplanError(f"{label}: timings.{field} is {shown(value, 40)}; expected a whole count from 0 to 2^53")
    return int(value)


def _log_ints(found: list[str], what: str, label: str) -> list[int]:
    """Counts matched in a log as ints; refuses the implausibly long (and Python's 4,300-digit limit)."""
    if any(len(x) > 16 or int(x) > MAX_COUNT for x in found):
        raise SpecplanError(f"{label}: a '{what}' count is over 2^53: not a real llama.cpp count")
    return [int(x) for x in found]


def _json_documents(text: str, label: str) -> list[Any] | None:
    """The JSON documents in a text (one document, JSON lines, or an SSE stream); None if not JSON."""
    stripped = text.strip()
    lines = [line.strip() for line in stripped.splitlines() if line.strip()]
    if lines and all(line.startswith(("data:", "event:", "id:", ":")) for line in lines):
        # A saved stream: every chunk may carry the running timings, so only the last one counts.
        docs = []
        for line in lines:
            payload = line[len("data:") :].strip() if line.startswith("data:") else ""
            if payload and payload != "[DONE]":
                docs.append(_loads(payload, label))
        with_timings = [d for d in docs if isinstance(d, dict) and isinstance(d.get("timings"), dict)]
        return with_timings[-1:] if with_timings else docs
    if not stripped.startswith(("{", "[")):
        return None
    try:
        return [parse_json(stripped, label)]
    except SpecplanError:
        if len(lines) < 2:
            raise
    return [_loads(line, label, n) for n, line in enumerate(lines, start=1)]  # JSON lines


def _loads(text: str, label: str, line: int | None = None) -> Any:
    return parse_json(text, f"{label} line {line}" if line is not None else label)


def _timings_counts(docs: list[Any], label: str) -> _LlamaCounts:
    """Sum draft_n / draft_n_accepted over the responses; steps = sum(predicted_n - draft_n_accepted)."""
    responses = []
    for doc in docs:
        responses.extend(doc if isinstance(doc, list) else [doc])
    timings = [r["timings"] for r in responses if isinstance(r, dict) and isinstance(r.get("timings"), dict)]
    if not timings:
        raise SpecplanError(f"{label}: JSON without a 'timings' object: expected llama-server responses")
    drafting = [t for t in timings if "draft_n" in t]
    if not drafting:
        raise SpecplanError(
            f"{label}: responses carry no timings.draft_n: speculative decoding did not run "
            "(start llama-server with a draft model)"
        )
    accepted = drafted = 0
    steps: int | None = 0
    for t in drafting:
        a = _whole(t.get("draft_n_accepted", 0), "draft_n_accepted", label)
        d = _whole(t["draft_n"], "draft_n", label)
        if a > d:
            raise SpecplanError(f"{label}: timings.draft_n_accepted ({a}) exceeds timings.draft_n ({d})")
        accepted, drafted = accepted + a, drafted + d
        if steps is not None and "predicted_n" in t:
            # Each target step commits its accepted drafts plus one token of its own.
            steps += max(_whole(t["predicted_n"], "predicted_n", label) - a, 0)
        else:
            steps = None
    return _LlamaCounts("server responses (timings)", accepted, drafted, steps, len(drafting))


def _log_counts(text: str, label: str) -> _LlamaCounts | None:
    matches = _LOG_LINE.findall(text)
    if not matches:
        return None
    accepted = sum(_log_ints([a for a, _ in matches], "accepted", label))
    drafted = sum(_log_ints([g for _, g in matches], "generated", label))
    return _LlamaCounts("llama-server log ('draft acceptance rate' lines)", accepted, drafted, None, len(matches))


def _speculative_counts(text: str, label: str) -> _LlamaCounts | None:
    drafted = _log_ints(_SPEC_DRAFTED.findall(text), "n_drafted", label)
    accepted = _log_ints(_SPEC_ACCEPT.findall(text), "n_accept", label)
    if not drafted and not accepted:
        return None
    if len(drafted) != len(accepted):
        raise SpecplanError(f"{label}: {len(drafted)} 'n_drafted =' lines but {len(accepted)} 'n_accept =' lines")
    if any(a > d for a, d in zip(accepted, drafted)):
        raise SpecplanError(f"{label}: n_accept exceeds n_drafted")
    predicted = _log_ints(_SPEC_PREDICT.findall(text), "n_predict", label)
    steps = None
    if len(predicted) == len(drafted):
        steps = sum(max(p - a, 0) for p, a in zip(predicted, accepted))
    settings = set(_log_ints(_SPEC_DRAFT.findall(text), "n_draft", label))
    return _LlamaCounts(
        "llama-speculative output (n_drafted / n_accept)",
        sum(accepted),
        sum(drafted),
        steps,
        len(drafted),
        n_draft=settings.pop() if len(settings) == 1 else None,
    )


def _llamacpp_counts(text: str, label: str) -> _LlamaCounts:
    """Recognise one llama.cpp text: JSON responses, then server log lines, then llama-speculative."""
    try:
        docs = _json_documents(text, label)
    except SpecplanError:
        # A log whose lines start with "[timestamp]" looks like JSON at first sight.
        if not (_LOG_LINE.search(text) or _SPEC_DRAFTED.search(text)):
            raise
        docs = None
    if docs is not None:
        return _timings_counts(docs, label)
    found = _log_counts(text, label) or _speculative_counts(text, label)
    if found is None:
        raise SpecplanError(
            f"{label}: no llama.cpp acceptance data (expected a server response with timings.draft_n, a "
            "llama-server log with 'draft acceptance rate = ...' lines, or llama-speculative output with "
            "n_drafted / n_accept)"
        )
    return found


def _labels(source_label: str | Sequence[str], n: int) -> list[str]:
    if isinstance(source_label, str):
        return [source_label] if n == 1 else [f"{source_label} #{i}" for i in range(1, n + 1)]
    labels = list(source_label)
    if len(labels) != n:
        raise SpecplanError(f"{len(labels)} source labels for {n} llama.cpp texts")
    return labels


def server_p_min(texts: Sequence[str]) -> float | None:
    """The p-min the server states in its /props or responses (speculative.p_min) or its log; None if none does."""
    found = {round(float(x), 6) for text in texts for x in _P_MIN_JSON.findall(text) + _P_MIN_LOG.findall(text)}
    found = {x for x in found if 0 <= x <= 1}
    if len(found) > 1:
        raise SpecplanError(f"the llama.cpp texts state several p-min values ({', '.join(map(str, sorted(found)))}): "
                            "calibrate one server setting at a time")
    return found.pop() if found else None


def llamacpp_calibration(
    texts: Sequence[str],
    k: int | None,
    target: ModelArg,
    draft: ModelArg | None,
    source_label: str | Sequence[str] = "llama.cpp output",
    p_min: float | None = None,
) -> CalibrationFile:
    """A calibration file from llama.cpp outputs: server responses, server logs or llama-speculative output.

    Each text is recognised on its own (see ``_llamacpp_counts``) and the counts are summed:
    A accepted and D drafted tokens; steps S = predicted_n - draft_n_accepted when the text
    tells (an approximation: it includes steps without a draft). ``k`` is the server's
    --draft-max; it is required because llama.cpp's draft length varies with p_min.
    ``source_label`` names the texts in errors and notes: one label for all, or one per text.
    """
    if not texts:
        raise SpecplanError("no llama.cpp outputs given")
    labels = _labels(source_label, len(texts))
    if k is None:
        raise SpecplanError(
            f"{labels[0]}: llama.cpp drafts a variable number of tokens per step: pass --k "
            "(the server's --draft-max / --draft)"
        )
    k = int(check_k(k))
    parts = [_llamacpp_counts(text, label) for text, label in zip(texts, labels)]
    accepted = sum(p.accepted for p in parts)
    drafted = sum(p.drafted for p in parts)
    steps = None if any(p.steps is None for p in parts) else sum(p.steps for p in parts)  # type: ignore[misc]
    if drafted == 0:
        raise SpecplanError(f"{', '.join(labels)}: no draft tokens were proposed")

    notes = [f"{label}: {p.kind}, {p.items} item(s), {p.accepted} accepted / {p.drafted} drafted"
             for label, p in zip(labels, parts)]
    settings = {p.n_draft for p in parts if p.n_draft is not None}
    if settings and settings != {k}:
        notes.append(f"llama-speculative printed n_draft = {', '.join(map(str, sorted(settings)))} but k={k} was given")
    fit = fit_from_rate(accepted, drafted, k, steps if steps else None, None)
    notes.append(
        f"draft acceptance rate (accepted / drafted tokens): {fit.rate:.4f} = {accepted} / {drafted}"
    )
    if steps:
        notes.append(
            f"mean acceptance length (tokens per target step, 1 + accepted / steps, steps ~ predicted - accepted): "
            f"{1 + accepted / steps:.4f}; mean draft length {drafted / steps:.2f} of k={k}"
        )
    notes.append(
        f"per-token alpha {fit.alpha:.4f} = alpha_from_acceptance_rate(rate, k={k}); {LEVEL:.0%} interval "
        f"[{fit.alpha_low:.4f}, {fit.alpha_high:.4f}] from a Beta interval on accepted of drafted "
        f"(design effect {fit.design_effect:.2f}, i.i.d. model)"
    )
    stated = server_p_min(texts)
    if stated is not None and p_min is not None and abs(stated - p_min) > 1e-6:
        notes.append(f"the server states p-min {stated:g}; --p-min {p_min:g} was given: the server's value is used")
    used_p_min = stated if stated is not None else p_min
    dpr = drafted / steps if steps else None
    if used_p_min is None:
        notes.append("p_min unknown (not in the texts, no --p-min): alpha is converted with the fixed-k relation")
        alpha, low, high, kappa = fit.alpha, fit.alpha_low, fit.alpha_high, None
    else:
        # The loop model: drafted tokens are the confident ones, so A / D overstates the per-token alpha.
        loop = engine_loop("llamacpp", p_min=used_p_min)
        conv = alpha_from_loop_counts(loop, fit.rate, k, min(dpr, k) if dpr else None)
        kappa = conv.kappa if conv.kappa_fitted else None
        floor = rate_floor(loop, k)  # the interval's low end may fall below what the loop can yield
        ends = [alpha_from_loop_counts(loop, max(float(acceptance_rate_from_alpha(x, k)), floor), k).alpha
                for x in (fit.alpha_low, fit.alpha_high)]
        alpha, low, high = conv.alpha, min(ends[0], conv.alpha), max(ends[1], conv.alpha)
        notes.append(f"p_min {used_p_min:g} ({'stated by the server' if stated is not None else '--p-min'}): "
                     f"{conv.detail}")
    fitted = FittedAcceptance(
        mode="server", alpha=alpha, alpha_low=low, alpha_high=high, k=k, rounds=steps,
        p_min=used_p_min, drafted_per_round=dpr, kappa=kappa,
    )
    counters = AcceptanceCounters(num_drafts=steps, num_draft_tokens=drafted, num_accepted_tokens=accepted, k=k)
    return CalibrationFile(
        source="llamacpp",
        engine="llamacpp",
        target=model_identity(target),  # type: ignore[arg-type]
        draft=model_identity(draft),
        counters=counters,
        fitted_acceptance=[fitted],
        notes=notes,
    )

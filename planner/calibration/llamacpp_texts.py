"""Read acceptance counts out of llama.cpp's own texts: server responses, server logs, /metrics, llama-speculative.

Formats, as the llama.cpp tree vendored in llama-cpp-python 0.3.36 (b11312) prints them, and older ones:

* server responses: ``timings.draft_n`` / ``timings.draft_n_accepted`` / ``timings.predicted_n``
  (tools/server/server-common.cpp ``server_slot_stats::to_json``; PR #12603). No verification-step count.
* server log, one line per request (tools/server/server-context.cpp ``print_timings``):
  ``draft acceptance rate = r ( a accepted / g generated)`` (before b11312, PR #10455 / #14104),
  ``draft acceptance = r ( a accepted / g generated), mean len = m`` (b11312) with an optional trace
  line ``acc per pos = (p0, p1, ...)``, and ``..., mean acceptance length = m, acceptance rate per
  position = (p0, ...)`` (PR #24536). m = 1 + a / rounds, so rounds are recovered from m.
* ``statistics <type>: #calls(b,g,a) = B G A, #gen drafts = X, #acc drafts = Y, #gen tokens = G,
  #acc tokens = A, #mean acc len = m, #acc rate/pos = (...)`` (common/speculative.cpp
  ``common_speculative_print_stats``): cumulative over the process, so the last line per type counts.
* server ``/metrics`` (tools/server/server-task.cpp): ``llamacpp:spec_decode_num_drafts_total`` (the
  server's verification steps), ``..._num_draft_tokens_total``, ``..._num_accepted_tokens_total``.
* llama-speculative / llama-speculative-simple (examples/*/speculative*.cpp): ``n_draft = k``,
  ``n_predict = N``, ``n_drafted = D``, ``n_accept = A``; each target step commits its accepted drafts
  plus one token, so steps = n_predict - n_accept (steps without a draft included).

k and p-min are read in ``llamacpp_settings``. Per-position rates are as llama.cpp prints them: accepted-at-position-i counts over rounds, i.e.
P(the first i+1 drafts of a round were accepted), not conditional rates.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from planner.calibration.acceptance_stats import MAX_COUNT
from planner.calibration.llamacpp_settings import clean_log, states_settings
from planner.errors import SpecplanError
from planner.inputs import parse_json, shown

__all__ = ["LlamaCounts", "llamacpp_counts", "mean_length_spread", "metric_per_position", "per_position_width",
           "rounds_from_mean_length"]

_NUM = r"([0-9]*\.?[0-9]+)"
# Every variant of the per-request server line (see the module docstring).
_LOG_LINE = re.compile(
    r"draft acceptance(?: rate)?\s*=\s*[^\s(]*\s*\(\s*([0-9]+)\s+accepted\s*/\s*([0-9]+)\s+generated\s*\)"
    r"(?:\s*,\s*mean (?:acceptance )?len(?:gth)?\s*=\s*" + _NUM + r")?"
    r"(?:\s*,\s*acceptance rate per position\s*=\s*\(([^)\n]*)\))?",
    re.IGNORECASE,
)
_ACC_PER_POS = re.compile(r"\bacc per pos\s*=\s*\(([0-9.,\s]*)\)")
_STATS_LINE = re.compile(
    r"statistics\s+([\w.-]+)\s*:?\s*#calls\(b,g,a\)\s*=\s*([0-9]+)\s+([0-9]+)\s+([0-9]+)\s*,\s*#gen drafts\s*=\s*([0-9]+)"
    r"\s*,\s*#acc drafts\s*=\s*([0-9]+)\s*,\s*#gen tokens\s*=\s*([0-9]+)\s*,\s*#acc tokens\s*=\s*([0-9]+)"
    r"(?:\s*,\s*#mean acc len\s*=\s*[0-9.]+)?(?:\s*,\s*#acc rate/pos\s*=\s*\(([^)\n]*)\))?"
)
_METRIC_PER_POS = re.compile(
    r'^llamacpp:spec_decode_num_accepted_tokens_per_pos_total\{position="([0-9]+)"\}\s+([0-9.eE+]+)\s*$', re.MULTILINE)
_METRIC = re.compile(r"^llamacpp:spec_decode_num_(drafts|draft_tokens|accepted_tokens)_total\s+([0-9.eE+]+)\s*$",
                     re.MULTILINE)
_SPEC_DRAFTED = re.compile(r"\bn_drafted\s*=\s*([0-9]+)")
_SPEC_ACCEPT = re.compile(r"\bn_accept\s*=\s*([0-9]+)")
_SPEC_PREDICT = re.compile(r"\bn_predict\s*=\s*([0-9]+)")
MEAN_LEN_HALF_STEP = 0.005  # "mean len = %5.2f": the printed value is within half a hundredth


@dataclass(frozen=True)
class LlamaCounts:
    """Acceptance counts read from one llama.cpp text.

    ``rounds`` are verification steps that had a draft, as the server counts them (None when the
    text cannot tell); ``rounds_bound`` an upper bound when only committed tokens are known;
    ``per_position`` P(first i+1 drafts accepted) per round, as printed.
    """

    kind: str
    accepted: int
    drafted: int
    rounds: int | None
    items: int
    rounds_bound: int | None = None
    per_position: tuple[float, ...] | None = None
    rounds_note: str | None = None
    pairs: tuple[tuple[int, int], ...] = ()  # (accepted, drafted) per response or per-request log line


def _whole(value: Any, field: str, label: str) -> int:
    # Ints are compared, never converted: math.isfinite(10**400) would raise OverflowError.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
        raise SpecplanError(f"{label}: timings.{field} is {shown(value, 40)}; expected a count")
    if value < 0 or value > MAX_COUNT or value != int(value):
        raise SpecplanError(f"{label}: timings.{field} is {shown(value, 40)}; expected a whole count from 0 to 2^53")
    return int(value)


def _ints(found: list[str], what: str, label: str) -> list[int]:
    """Counts matched in a log as ints; refuses the implausibly long (and Python's 4,300-digit limit)."""
    if any(len(x) > 16 or int(x) > MAX_COUNT for x in found):
        raise SpecplanError(f"{label}: a '{what}' count is over 2^53: not a real llama.cpp count")
    return [int(x) for x in found]


def _rates(text: str | None, label: str) -> tuple[float, ...] | None:
    """'0.805, 0.632, 0.483' -> floats in [0, 1]; None when empty or not rates."""
    if not text or not text.strip():
        return None
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise SpecplanError(f"{label}: per-position rates '{shown(text, 40)}' are not numbers") from None
    if not all(0 <= v <= 1 for v in values):
        raise SpecplanError(f"{label}: per-position rates '{shown(text, 40)}' are not rates from 0 to 1")
    return values


def _mean_length_range(accepted: int, drafted: int, mean_len: float) -> tuple[int, int, int]:
    """(lowest, nearest, highest) round counts S <= D whose 1 + A / S prints as ``mean_len`` (2 decimals)."""
    lo = max(1, math.ceil(accepted / (mean_len - 1 + MEAN_LEN_HALF_STEP) - 1e-9))
    top = mean_len - 1 - MEAN_LEN_HALF_STEP
    hi = min(drafted, math.floor(accepted / top + 1e-9)) if top > 0 else drafted
    nearest = round(accepted / (mean_len - 1)) if mean_len - 1 > MEAN_LEN_HALF_STEP / 2 else lo
    return lo, min(max(nearest, lo), hi), hi


def rounds_from_mean_length(accepted: int, drafted: int, mean_len: float, label: str) -> int | None:
    """Verification steps S from the printed mean length m = 1 + A / S (two decimals), count of rounds.

    The whole S nearest A / (m - 1) among those that print as m and are at most D (a round drafts
    at least one token); None when A = 0 (m = 1 says nothing about S). Refuses an m no S fits.
    """
    if accepted == 0:
        return None
    if mean_len < 1:
        raise SpecplanError(f"{label}: mean len {mean_len:g} is below 1: the line is inconsistent")
    lo, nearest, hi = _mean_length_range(accepted, drafted, mean_len)
    if lo > hi:
        raise SpecplanError(f"{label}: mean len {mean_len:g} fits no whole number of rounds for {accepted} accepted "
                            f"of {drafted} drafted tokens")
    return nearest


def mean_length_spread(accepted: int, drafted: int, mean_len: float) -> int:
    """How far the round count read from ``mean_len`` may be from the true one (0: exact), rounds."""
    if accepted == 0 or mean_len < 1:
        return 0
    lo, nearest, hi = _mean_length_range(accepted, drafted, mean_len)
    return max(nearest - lo, hi - nearest, 0)


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
                docs.append(parse_json(payload, label))
        with_timings = [d for d in docs if isinstance(d, dict) and isinstance(d.get("timings"), dict)]
        return with_timings[-1:] if with_timings else docs
    if not stripped.startswith(("{", "[")):
        return None
    try:
        return [parse_json(stripped, label)]
    except SpecplanError:
        if len(lines) < 2:
            raise
    return [parse_json(line, f"{label} line {n}") for n, line in enumerate(lines, start=1)]  # JSON lines


def _timings_counts(docs: list[Any], label: str) -> LlamaCounts:
    """Sum draft_n / draft_n_accepted over the responses; rounds unknown, bounded by the committed tokens.

    committed (predicted_n) = accepted + target steps, and the first token comes from the prompt
    pass, so verification steps <= predicted_n - draft_n_accepted - 1 per response; steps without a
    draft (p-min or n-min refused it) make the bound loose, so it is not taken as the count.
    """
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
    bound: int | None = 0
    pairs = []
    for t in drafting:
        a = _whole(t.get("draft_n_accepted", 0), "draft_n_accepted", label)
        d = _whole(t["draft_n"], "draft_n", label)
        if a > d:
            raise SpecplanError(f"{label}: timings.draft_n_accepted ({a}) exceeds timings.draft_n ({d})")
        accepted, drafted = accepted + a, drafted + d
        pairs.append((a, d))
        if bound is not None and "predicted_n" in t:
            bound += max(_whole(t["predicted_n"], "predicted_n", label) - a - 1, 0)
        else:
            bound = None
    return LlamaCounts("server responses (timings)", accepted, drafted, None, len(drafting), rounds_bound=bound,
                       pairs=tuple(pairs))


def _log_counts(text: str, label: str) -> LlamaCounts | None:
    """Per-request 'draft acceptance' lines, summed; rounds from 'mean len' when every line prints it."""
    matches = _LOG_LINE.findall(text)
    if not matches:
        return None
    accepted = _ints([m[0] for m in matches], "accepted", label)
    drafted = _ints([m[1] for m in matches], "generated", label)
    if any(a > d for a, d in zip(accepted, drafted)):
        raise SpecplanError(f"{label}: a 'draft acceptance' line accepts more tokens than it generated")
    rounds: list[int | None] = [
        rounds_from_mean_length(a, d, float(m[2]), label) if m[2] else None
        for a, d, m in zip(accepted, drafted, matches)
    ]
    # b11312 prints the per-position rates on a trace line after each request; PR #24536 on the line.
    trace = _ACC_PER_POS.findall(text)
    per_line = [_rates(m[3], label) for m in matches]
    if all(p is None for p in per_line) and len(trace) == len(matches):
        per_line = [_rates(t, label) for t in trace]
    total_rounds = None if any(r is None for r in rounds) else sum(rounds)  # type: ignore[misc]
    per_position = None
    if total_rounds and all(p is not None for p in per_line):
        # Rates are counts over each line's rounds: pool them as counts, position by position.
        width = max(len(p) for p in per_line)  # type: ignore[arg-type]
        per_position = tuple(
            sum(round(p[i] * r) for p, r in zip(per_line, rounds) if i < len(p)) / total_rounds  # type: ignore[arg-type, index, operator]
            for i in range(width)
        )
    has_mean = any(m[2] for m in matches)
    spread = sum(mean_length_spread(a, d, float(m[2])) for a, d, m in zip(accepted, drafted, matches) if m[2])
    kind = "llama-server log ('draft acceptance' lines" + (", rounds from mean len)" if has_mean else ")")
    stats = _stats_counts(text, label)
    note = (f"rounds from the 2-decimal mean len: up to {spread} either way" if spread else None)
    # The cumulative 'statistics' line covers the same tokens when its totals match: its count is exact.
    if stats is not None and (stats.accepted, stats.drafted) == (sum(accepted), sum(drafted)) and (
            total_rounds is None or spread):
        total_rounds, note = stats.rounds, "rounds from the 'statistics' line (#calls a, verification steps)"
        per_position = per_position or stats.per_position
    return LlamaCounts(kind, sum(accepted), sum(drafted), total_rounds, len(matches), per_position=per_position,
                       rounds_note=note, pairs=tuple(zip(accepted, drafted)))


def _stats_counts(text: str, label: str) -> LlamaCounts | None:
    """The last 'statistics <type>:' line of each type (cumulative counters), summed over types."""
    last: dict[str, tuple[str, ...]] = {}
    for m in _STATS_LINE.findall(text):
        last[m[0]] = m
    if not last:
        return None
    rows = [(_ints(list(m[1:8]), "statistics", label), _rates(m[8], label)) for m in last.values()]
    accepted = sum(r[6] for r, _ in rows)
    drafted = sum(r[5] for r, _ in rows)
    rounds = sum(r[2] for r, _ in rows)  # #calls(a): one accept call per verification (the mean's denominator)
    if accepted > drafted:
        raise SpecplanError(f"{label}: a 'statistics' line accepts more tokens than it generated")
    per_position = rows[0][1] if len(rows) == 1 else None
    note = None
    gen_drafts = sum(r[3] for r, _ in rows)
    if gen_drafts != rounds:
        note = f"#gen drafts = {gen_drafts} differs from #calls(a) = {rounds} verification steps"
    return LlamaCounts(f"llama.cpp 'statistics' line ({', '.join(last)}; cumulative, last line)", accepted, drafted,
                       rounds or None, len(last), per_position=per_position, rounds_note=note)


def _metrics_counts(text: str, label: str) -> LlamaCounts | None:
    """llama-server /metrics (one scrape, cumulative since start): its own verification-step counter."""
    found: dict[str, float] = {}
    for name, value in _METRIC.findall(text):
        try:
            found[name] = float(value)
        except ValueError:
            raise SpecplanError(f"{label}: llamacpp:spec_decode_num_{name}_total is '{shown(value, 30)}'") from None
    if "draft_tokens" not in found or "accepted_tokens" not in found:
        return None
    if any(not (0 <= v <= MAX_COUNT) or v != int(v) for v in found.values()):
        raise SpecplanError(f"{label}: a llamacpp:spec_decode counter is not a whole count from 0 to 2^53")
    accepted, drafted = int(found["accepted_tokens"]), int(found["draft_tokens"])
    if accepted > drafted:
        raise SpecplanError(f"{label}: llamacpp:spec_decode_num_accepted_tokens_total exceeds the draft tokens")
    rounds = int(found["drafts"]) if "drafts" in found else None
    per_pos = metric_per_position(text, label)
    rates = tuple(c / rounds for c in per_pos) if per_pos and rounds and max(per_pos) <= rounds else None
    return LlamaCounts("llama-server /metrics (cumulative since start)", accepted, drafted, rounds or None, 1,
                       per_position=rates)


def metric_per_position(text: str, label: str) -> list[int]:
    """Rounds that accepted draft position i (cumulative), per position, from /metrics (sized to the draft n_max); count."""
    series = {}
    for pos, value in _METRIC_PER_POS.findall(text):
        count = float(value) if len(value) < 24 else -1.0
        if len(pos) > 4 or not (0 <= count <= MAX_COUNT) or count != int(count):
            raise SpecplanError(f"{label}: llamacpp:spec_decode_num_accepted_tokens_per_pos_total is not a count")
        series[int(pos)] = int(count)
    return [series[i] for i in sorted(series)]


def _speculative_counts(text: str, label: str) -> LlamaCounts | None:
    drafted = _ints(_SPEC_DRAFTED.findall(text), "n_drafted", label)
    accepted = _ints(_SPEC_ACCEPT.findall(text), "n_accept", label)
    if not drafted and not accepted:
        return None
    if len(drafted) != len(accepted):
        raise SpecplanError(f"{label}: {len(drafted)} 'n_drafted =' lines but {len(accepted)} 'n_accept =' lines")
    if any(a > d for a, d in zip(accepted, drafted)):
        raise SpecplanError(f"{label}: n_accept exceeds n_drafted")
    predicted = _ints(_SPEC_PREDICT.findall(text), "n_predict", label)
    stats = _stats_counts(text, label)
    rounds, note = None, None
    if stats is not None and (stats.accepted, stats.drafted) == (sum(accepted), sum(drafted)):
        rounds, note = stats.rounds, "rounds from the 'statistics' line (#calls a, verification steps)"
    elif len(predicted) == len(drafted):
        # Each target step commits its accepted drafts plus one token: steps = n_predict - n_accept.
        rounds = sum(max(p - a, 0) for p, a in zip(predicted, accepted)) or None
        note = "rounds = n_predict - n_accept (target steps; steps without a draft included)"
    return LlamaCounts("llama-speculative output (n_drafted / n_accept)", sum(accepted), sum(drafted), rounds,
                       len(drafted), per_position=stats.per_position if rounds and stats else None, rounds_note=note)


def llamacpp_counts(text: str, label: str) -> LlamaCounts | None:
    """Recognise one llama.cpp text: JSON responses, server log lines, statistics, /metrics, llama-speculative.

    None for a text that only states settings (a saved /props, a start-up log): it gives k and p-min.
    """
    text = clean_log(text)
    try:
        docs = _json_documents(text, label)
    except SpecplanError:
        # A log whose lines start with "[timestamp]" looks like JSON at first sight.
        if not (_LOG_LINE.search(text) or _SPEC_DRAFTED.search(text) or _STATS_LINE.search(text)):
            raise
        docs = None
    if docs is not None:
        has_timings = any(isinstance(r, dict) and isinstance(r.get("timings"), dict)
                          for d in docs for r in (d if isinstance(d, list) else [d]))
        if not has_timings and (states_settings(text) or "generation_settings" in text):
            return None  # a saved /props (default_generation_settings): settings only
        return _timings_counts(docs, label)
    found = (_log_counts(text, label) or _speculative_counts(text, label) or _stats_counts(text, label)
             or _metrics_counts(text, label))
    if found is None and states_settings(text):
        return None
    if found is None:
        raise SpecplanError(
            f"{label}: no llama.cpp acceptance data (expected a server response with timings.draft_n, a "
            "llama-server log with 'draft acceptance' or 'statistics' lines, its /metrics, or llama-speculative "
            "output with n_drafted / n_accept)"
        )
    return found


def per_position_width(texts: list[str] | tuple[str, ...]) -> int | None:
    """k as the server's per-position series show it (sized to its draft n_max); None if none or several.

    The server line's rates ('acc per pos', 'acceptance rate per position') and /metrics' per_pos
    series have one entry per position up to n_max; the 'statistics' line stops at the longest accept.
    """
    widths = set()
    for text in texts:
        text = clean_log(text)
        lists = _ACC_PER_POS.findall(text) + [m[3] for m in _LOG_LINE.findall(text) if m[3]]
        widths |= {len(x.split(",")) for x in lists if x.strip()}
        if series := _METRIC_PER_POS.findall(text):
            widths.add(len({pos for pos, _ in series}))
    return widths.pop() if len(widths) == 1 and 1 <= min(widths) <= 64 else None

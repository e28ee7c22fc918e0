"""Acceptance from the server itself, per engine, over a window of the probe's own requests.

* vLLM: ``/metrics`` scraped before and after the window, counters differenced
  (``server_metrics.vllm_calibration`` over ``vllm_metrics.vllm_counters`` / ``snapshot_delta``).
* SGLang (``--enable-metrics``): the same two scrapes through ``sglang_metrics.sglang_calibration``.
* llama-server: ``timings.draft_n`` / ``timings.draft_n_accepted`` of each request's final stream
  chunk, summed (``llamacpp_texts`` / ``llamacpp_outputs``, the readers ``calibrate --llamacpp``
  uses), with ``/props`` for the draft maximum and p-min it states; with ``--metrics`` its
  ``llamacpp:spec_decode_num_drafts_total`` differenced around the window gives the server's own
  verification steps, and its per-position series the draft maximum.

The engine is read from the server when not given: llama-server answers ``/props`` with its
``default_generation_settings``; vLLM and SGLang name their metrics ``vllm:`` / ``sglang:``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from planner.calibration.schema import CalibrationFile
from planner.calibration.server_probe.stream import StreamRecord, final_objects_json
from planner.calibration.server_probe.transport import TransportError, get_text
from planner.errors import SpecplanError

__all__ = ["ENGINES", "Detected", "server_root", "detect_engine", "scrape", "Window", "WindowCounts", "level_counts",
           "pooled_calibration"]

ENGINES = ("vllm", "sglang", "llamacpp")
_METRIC_PREFIX = {"vllm": "vllm:", "sglang": "sglang:", "llamacpp": "llamacpp:"}


def server_root(base: str) -> str:
    """The server's root URL (``/metrics`` and ``/props`` live there, not under ``/v1``)."""
    return base[: -len("/v1")] if base.endswith("/v1") else base


@dataclass(frozen=True)
class Detected:
    """The engine behind a URL and what was read to tell."""

    engine: str
    props_text: str | None  # llama-server's /props (states speculative.n_max / p_min)
    how: str


def _props(root: str, timeout_s: float) -> str | None:
    try:
        text = get_text(root + "/props", timeout_s)
    except TransportError as exc:
        if "HTTP " in str(exc):  # the server answered, just not with /props: not llama-server
            return None
        raise
    return text if "default_generation_settings" in text or "build_info" in text else None


def detect_engine(base: str, engine: str, timeout_s: float) -> Detected:
    """The engine serving ``base``: the one given, or read from /props and /metrics for ``auto``.

    Unreachable servers are refused here, before any load, in one line.
    """
    root = server_root(base)
    if engine == "llamacpp":
        return Detected("llamacpp", _props(root, timeout_s), "--engine llamacpp")
    if engine in ("vllm", "sglang"):
        get_text(root + "/metrics", timeout_s)  # reachable, and serving metrics: the window needs them
        return Detected(engine, None, f"--engine {engine}")
    props = _props(root, timeout_s)
    if props is not None:
        return Detected("llamacpp", props, "/props answered with llama-server's default_generation_settings")
    try:
        metrics = get_text(root + "/metrics", timeout_s)
    except TransportError as exc:
        raise SpecplanError(f"cannot tell which engine serves {base} ({exc}): pass --engine vllm, sglang or "
                            "llamacpp") from None
    for name in ENGINES:
        # a sample line, not a comment (a scrape's header may name other servers' families)
        if re.search(rf"^{re.escape(_METRIC_PREFIX[name])}\w", metrics, re.MULTILINE):
            return Detected(name, None, f"/metrics names {_METRIC_PREFIX[name]}* series")
    raise SpecplanError(f"cannot tell which engine serves {base}: no llama-server /props and no vllm: or sglang: "
                        "metrics; pass --engine (SGLang needs --enable-metrics)")


def scrape(engine: str, base: str, timeout_s: float) -> str | None:
    """One /metrics scrape; llama-server answers it only when started with --metrics (None otherwise)."""
    try:
        return get_text(server_root(base) + "/metrics", timeout_s)
    except TransportError as exc:
        if engine == "llamacpp" and "HTTP " in str(exc):
            return None  # 501 without --metrics: the responses' timings still count drafts, not steps
        raise


@dataclass(frozen=True)
class WindowCounts:
    """Draft tokens proposed and accepted in one window, the server's verification steps, and notes."""

    drafted: int | None
    accepted: int | None
    rounds: int | None
    notes: tuple[str, ...] = ()
    per_position: tuple[int, ...] | None = None  # steps that accepted position i, in the window


@dataclass
class Window:
    """One acceptance window: the scrape before it, then the requests it covered."""

    before: str | None
    after: str | None = None
    records: list[StreamRecord] = field(default_factory=list)


def _metrics_calibration(engine: str, before: str | None, after: str | None, k: int | None, target: str, draft: str,
                         model_name: str | None, window_s: float | None) -> CalibrationFile:
    if after is None:
        raise SpecplanError(f"{engine}: no /metrics scrape after the window")
    if engine == "vllm":
        from planner.calibration.server_metrics import vllm_calibration

        return vllm_calibration(before, after, k, target, draft, model_name=model_name, window_s=window_s)
    from planner.calibration.sglang_metrics import sglang_calibration

    return sglang_calibration(before, after, k, target, draft, model_name=model_name, window_s=window_s)


def _llamacpp_window(window: Window, label: str) -> WindowCounts:
    """Drafts from the final chunks' timings; the server's steps from its /metrics difference when that matches."""
    from planner.calibration.llamacpp_texts import llamacpp_counts, metric_per_position

    counts = llamacpp_counts(final_objects_json(window.records), label)
    if counts is None:
        return WindowCounts(None, None, None, (f"{label}: no draft timings in the streams",))
    if window.before is None or window.after is None:
        return WindowCounts(counts.drafted, counts.accepted, None)
    before = llamacpp_counts(window.before, f"{label} /metrics before")
    after = llamacpp_counts(window.after, f"{label} /metrics after")
    if before is None or after is None or after.rounds is None:
        return WindowCounts(counts.drafted, counts.accepted, None)
    delta = (after.drafted - before.drafted, after.accepted - before.accepted)
    if delta != (counts.drafted, counts.accepted):
        return WindowCounts(counts.drafted, counts.accepted, None, (
            f"{label}: /metrics moved by {delta[1]} accepted / {delta[0]} drafted, the streams' timings say "
            f"{counts.accepted} / {counts.drafted} (other clients?): verification steps not taken from it",))
    steps = after.rounds - (before.rounds or 0)
    return WindowCounts(counts.drafted, counts.accepted, steps, (),
                        _per_position_delta(metric_per_position(window.before, label), metric_per_position(window.after, label), steps))


def _per_position_delta(before: list[int], after: list[int], steps: int) -> tuple[int, ...] | None:
    """Steps of the window that accepted each draft position (after - before; a series not there yet counts 0)."""
    if not after or len(before) > len(after):
        return None
    delta = tuple(a - (before[i] if i < len(before) else 0) for i, a in enumerate(after))
    # a restarted server, or positions accepted more often than steps ran: not a window
    if any(d < 0 or d > steps for d in delta) or any(d2 > d1 for d1, d2 in zip(delta, delta[1:])):
        return None
    return delta


def level_counts(engine: str, window: Window, k: int | None, target: str, draft: str, model_name: str | None,
                 window_s: float | None, label: str) -> WindowCounts:
    """Draft tokens and verification steps of one window (all None, with the reason, when unreadable)."""
    try:
        if engine == "llamacpp":
            return _llamacpp_window(window, label)
        cal = _metrics_calibration(engine, window.before, window.after, k, target, draft, model_name, window_s)
    except SpecplanError as exc:
        streamed = _streamed_counts(window.records)
        if streamed is not None:
            return WindowCounts(*streamed, None, (f"{label}: /metrics unreadable ({exc}): counts from the streams' "
                                                  "own metrics.speculative_decoding",))
        return WindowCounts(None, None, None, (f"{label}: acceptance not read: {exc}",))
    c = cal.counters
    if c is None:
        return WindowCounts(None, None, None, (f"{label}: the metrics hold no acceptance counters for the window",))
    notes = []
    streamed = _streamed_counts(window.records)
    if streamed is not None and streamed != (c.num_draft_tokens, c.num_accepted_tokens):
        notes.append(f"{label}: the streams' own metrics.speculative_decoding sum to {streamed[1]} accepted of "
                     f"{streamed[0]} drafted; /metrics counted {c.num_accepted_tokens} of {c.num_draft_tokens} "
                     "(other clients, or requests cut short)")
    return WindowCounts(c.num_draft_tokens, c.num_accepted_tokens, c.num_drafts, tuple(notes))


def _streamed_counts(records: Sequence[StreamRecord]) -> tuple[int, int] | None:
    """(drafted, accepted) summed over vLLM's per-request speculative_decoding, when every request has it."""
    if not records or any(r.request_spec is None for r in records):
        return None
    return sum(r.request_spec[0] for r in records), sum(r.request_spec[1] for r in records)  # type: ignore[index]


def pooled_calibration(engine: str, windows: Sequence[Window], props_text: str | None, k: int | None, target: str,
                       draft: str, model_name: str | None, window_s: float | None, p_min: float | None = None,
                       rounds: int | None = None, per_position: tuple[int, ...] | None = None) -> CalibrationFile:
    """Acceptance over every window of the speculative server, fitted as ``calibrate`` fits it.

    Metrics engines: first scrape before -> last scrape after (only the probe's levels lie between;
    the baseline runs on another server). llama.cpp: every request's final timings, /props, the
    summed verification steps of the windows (``rounds``), the steps that accepted each position
    (``per_position``, from the same /metrics differences) and the draft maximum its /metrics shows.
    """
    if not windows:
        raise SpecplanError("no load level ran: nothing to fit")
    if engine == "llamacpp":
        from planner.calibration.llamacpp_outputs import llamacpp_calibration
        from planner.calibration.llamacpp_texts import per_position_width

        records = [r for w in windows for r in w.records]
        texts, labels = [final_objects_json(records)], ["final stream chunks (timings)"]
        if props_text is not None:
            texts.append(props_text)
            labels.append("/props")
        width = per_position_width([w.after for w in windows if w.after is not None])
        return llamacpp_calibration(texts, k if k is not None else width, target, draft, labels, p_min=p_min,
                                    window_rounds=rounds, window_per_position=per_position)
    return _metrics_calibration(engine, windows[0].before, windows[-1].after, k, target, draft, model_name, window_s)

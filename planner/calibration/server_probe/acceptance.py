"""Acceptance from the server itself, per engine, over a window of the probe's own requests.

* vLLM: ``/metrics`` scraped before and after the window, counters differenced
  (``server_metrics.vllm_calibration`` over ``vllm_metrics.vllm_counters`` / ``snapshot_delta``).
* SGLang (``--enable-metrics``): the same two scrapes through ``sglang_metrics.sglang_calibration``.
* llama-server: ``timings.draft_n`` / ``timings.draft_n_accepted`` of each request's final stream
  chunk, summed (``llamacpp_texts`` / ``llamacpp_outputs``, the readers ``calibrate --llamacpp``
  uses), with ``/props`` for the draft maximum and p-min it states.

The engine is read from the server when not given: llama-server answers ``/props`` with its
``default_generation_settings``; vLLM and SGLang name their metrics ``vllm:`` / ``sglang:``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from planner.calibration.schema import CalibrationFile
from planner.calibration.server_probe.stream import StreamRecord, final_objects_json
from planner.calibration.server_probe.transport import TransportError, get_text
from planner.errors import SpecplanError

__all__ = ["ENGINES", "Detected", "server_root", "detect_engine", "scrape", "Window", "level_counts",
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
    for name in ("vllm", "sglang", "llamacpp"):
        if _METRIC_PREFIX[name] in metrics:
            return Detected(name, None, f"/metrics names {_METRIC_PREFIX[name]}* series")
    raise SpecplanError(f"cannot tell which engine serves {base}: no llama-server /props and no vllm: or sglang: "
                        "metrics; pass --engine (SGLang needs --enable-metrics)")


def scrape(engine: str, base: str, timeout_s: float) -> str | None:
    """One /metrics scrape for the engines whose acceptance is counted there (None for llama.cpp)."""
    if engine == "llamacpp":
        return None
    return get_text(server_root(base) + "/metrics", timeout_s)


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
    try:
        from planner.calibration.sglang_metrics import sglang_calibration
    except ImportError:
        raise SpecplanError("this specplan has no SGLang metrics reader yet: acceptance cannot be read from "
                            "SGLang's /metrics") from None
    return sglang_calibration(before, after, k, target, draft, model_name=model_name, window_s=window_s)


def level_counts(engine: str, window: Window, k: int | None, target: str, draft: str, model_name: str | None,
                 window_s: float | None, label: str) -> tuple[int | None, int | None, list[str]]:
    """(drafted, accepted) draft tokens of one window, and notes; (None, None, [why]) when unreadable."""
    try:
        if engine == "llamacpp":
            from planner.calibration.llamacpp_texts import llamacpp_counts

            counts = llamacpp_counts(final_objects_json(window.records), label)
            return (None, None, [f"{label}: no draft timings"]) if counts is None else (
                counts.drafted, counts.accepted, [])
        cal = _metrics_calibration(engine, window.before, window.after, k, target, draft, model_name, window_s)
    except SpecplanError as exc:
        return None, None, [f"{label}: acceptance not read: {exc}"]
    c = cal.counters
    return (None, None, [f"{label}: the metrics hold no acceptance counters for the window"]) if c is None else (
        c.num_draft_tokens, c.num_accepted_tokens, [])


def pooled_calibration(engine: str, windows: Sequence[Window], props_text: str | None, k: int | None, target: str,
                       draft: str, model_name: str | None, window_s: float | None) -> CalibrationFile:
    """Acceptance over every window of the speculative server, fitted as ``calibrate`` fits it.

    Metrics engines: first scrape before -> last scrape after (only the probe's levels lie between;
    the baseline runs on another server). llama.cpp: every request's final timings, plus /props.
    """
    if not windows:
        raise SpecplanError("no load level ran: nothing to fit")
    if engine == "llamacpp":
        from planner.calibration.llamacpp_outputs import llamacpp_calibration

        records = [r for w in windows for r in w.records]
        texts, labels = [final_objects_json(records)], ["final stream chunks (timings)"]
        if props_text is not None:
            texts.append(props_text)
            labels.append("/props")
        return llamacpp_calibration(texts, k, target, draft, labels)
    return _metrics_calibration(engine, windows[0].before, windows[-1].after, k, target, draft, model_name, window_s)

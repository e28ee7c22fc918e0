"""`specplan probe --server`: bounded load at each concurrency level, acceptance from the server, one file.

Order of work: check the URLs (http/https only), find the engine, ask the servers their model
names, one warm-up request each (outside every window), then per level: scrape, load the
speculative server, scrape, and the same load on the baseline server. The budget is shared out
before each run in proportion to its request waves (ceil(N / C)), so no level starves the rest.
Ctrl-C and an exhausted budget write what was measured, marked partial (as the other probes do).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.calibration.budget import Budget, monotonic_clock
from planner.calibration.probe import BUILTIN_PROMPTS
from planner.calibration.schema import CalibrationFile, DeviceIdentity, LoadLevel, ServerRun, write_calibration
from planner.calibration.server_probe.acceptance import (Detected, Window, WindowCounts, detect_engine,
                                                          level_counts, pooled_calibration, scrape)
from planner.calibration.server_probe.load import LevelRequest, LevelRun, run_level
from planner.calibration.server_probe.stats import LevelFigures, level_figures, speedup
from planner.calibration.server_probe.transport import TransportError, check_base_url, get_json, join
from planner.errors import SpecplanError

__all__ = ["ServerProbeConfig", "run_server_probe", "request_body", "served_model"]

ENDPOINTS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
_WARMUP_TOKENS = 8


@dataclass
class ServerProbeConfig:
    """What `specplan probe --server` was asked to do (counts, tokens, seconds)."""

    url: str
    target: str
    draft: str
    baseline_url: str | None = None
    engine: str = "auto"  # vllm, sglang, llamacpp or auto
    concurrency: tuple[int, ...] = (1, 4, 16)
    requests: int = 16  # per level
    max_tokens: int = 128  # per request
    prompts: tuple[str, ...] = BUILTIN_PROMPTS
    budget_s: float = 120.0
    timeout_s: float = 60.0  # every HTTP call
    model: str | None = None  # served model name; None: the first of the server's /v1/models
    k: int | None = None  # draft tokens per step, when the server does not state it
    p_min: float | None = None  # llama.cpp p-min the server runs with, when its /props does not state it
    temperature: float = 0.0
    endpoint: str = "completions"
    ignore_eos: bool = True  # every request decodes max_tokens: spec and baseline do the same work
    warmup: bool = True
    gpu: str | None = None
    gpus: int = 1
    progress: Callable[[str, float], None] | None = None
    on_step: Callable[[str], None] | None = None  # called before each run (tests inject interrupts)
    clock: Callable[[], float] | None = None  # None: monotonic_clock
    notes: list[str] = field(default_factory=list)


def request_body(cfg: ServerProbeConfig, model: str | None, prompt: str, max_tokens: int) -> dict[str, Any]:
    """One streamed request: OpenAI fields, usage in the stream, and the engines' shared ignore_eos."""
    body: dict[str, Any] = {"max_tokens": max_tokens, "temperature": cfg.temperature, "stream": True,
                            "stream_options": {"include_usage": True}}
    if model is not None:
        body["model"] = model
    if cfg.ignore_eos:
        body["ignore_eos"] = True  # vLLM / SGLang sampling extra; llama-server reads it too
    if cfg.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    return body


def served_model(base: str, given: str | None, timeout_s: float) -> str | None:
    """The model name to send: the one given, else the first id the server lists at /v1/models."""
    if given is not None:
        return given
    try:
        doc = get_json(join(base, "/v1/models"), timeout_s)
    except TransportError as exc:
        if "HTTP " in str(exc):
            return None  # a server without /v1/models takes requests without a model name
        raise
    data = doc.get("data") if isinstance(doc, dict) else None
    ids = [m.get("id") for m in data if isinstance(m, dict)] if isinstance(data, list) else []
    ids = [i for i in ids if isinstance(i, str)]
    return ids[0] if ids else None


def _device(cfg: ServerProbeConfig) -> DeviceIdentity | None:
    """The device the server runs on, when given (--gpu cpu: this host; a catalogue id; local: NVML)."""
    if cfg.gpu is None:
        return None
    from planner.calibration.devices import named_device

    return named_device(cfg.gpu, cfg.gpus)[0]


@dataclass
class _Runs:
    """The work still to do, in request waves, for sharing out the budget."""

    waves: list[int]

    def share(self, left_s: float) -> float:
        """This run's part of the time left: its waves over all waves still to run, s."""
        total = sum(self.waves)
        return left_s * self.waves.pop(0) / total if total else left_s


class _Stop(Exception):
    """The budget ended or Ctrl-C came: write what was measured."""


def run_server_probe(cfg: ServerProbeConfig, output: str | Path, force: bool = False) -> CalibrationFile:
    """Load the servers level by level, read acceptance, write the calibration file (partial on Ctrl-C / budget)."""
    budget = Budget(cfg.budget_s, cfg.clock or monotonic_clock)
    url = check_base_url(cfg.url, "--server")
    baseline = check_base_url(cfg.baseline_url, "--baseline-url") if cfg.baseline_url else None
    if cfg.endpoint not in ENDPOINTS:
        raise SpecplanError(f"endpoint {cfg.endpoint!r}: expected one of {', '.join(ENDPOINTS)}")
    detected = detect_engine(url, cfg.engine, cfg.timeout_s)
    cfg.notes.append(f"engine {detected.engine}: {detected.how}")
    model = served_model(url, cfg.model, cfg.timeout_s)
    # The baseline may serve the target under another name: its own list first, then --model.
    base_model = (served_model(baseline, None, cfg.timeout_s) or cfg.model) if baseline else None
    device = _device(cfg)
    _progress(cfg, "warm-up", 0.0)
    if cfg.warmup:
        for where, name in ((url, model), (baseline, base_model)):
            if where is not None:
                _warm(cfg, where, name, budget)
    levels: list[LoadLevel] = []
    windows: list[Window] = []
    partial = None
    runs = _Runs([math.ceil(cfg.requests / c) for c in cfg.concurrency for _ in range(2 if baseline else 1)])
    failed = None
    try:
        for i, c in enumerate(cfg.concurrency):
            spec_run, window = _spec_level(cfg, detected, url, model, c, budget, runs, i)
            windows.append(window)
            spec_stopped = spec_run.interrupted or spec_run.out_of_budget or not spec_run.records
            base_run = (_baseline_level(cfg, baseline, base_model, c, budget, runs, i)
                        if baseline and not spec_stopped else None)
            levels.append(_level_record(cfg, detected, c, spec_run, window, base_run))
            for name, run in (("speculative server", spec_run), ("baseline server", base_run)):
                if run is None:
                    continue
                if run.interrupted or run.out_of_budget:
                    raise _Stop("interrupted (Ctrl-C)" if run.interrupted else
                                f"out of --budget-s {cfg.budget_s:g} at concurrency {c} (raise it)")
                if not run.records:
                    raise _NothingCompleted(f"concurrency {c}: no request to the {name} completed: "
                                            + (run.errors[0] if run.errors else "no error was reported"))
    except KeyboardInterrupt:
        partial = "interrupted (Ctrl-C)"
    except _Stop as stop:
        partial = str(stop)
    except _NothingCompleted as exc:
        partial = failed = str(exc)
    measured = any(level.requests_completed for level in levels)
    if not measured and partial and not partial.startswith("interrupted"):
        raise SpecplanError(partial if failed else f"no request completed: {partial}")
    cal = _assemble(cfg, detected, url, baseline, model, device, levels, windows, partial)
    write_calibration(cal, output, force=True if partial else force)
    if failed:
        raise SpecplanError(f"{failed} (the levels before it are in {output}, marked partial)")
    return cal


def _progress(cfg: ServerProbeConfig, what: str, frac: float) -> None:
    if cfg.progress is not None:
        cfg.progress(what, frac)


def _warm(cfg: ServerProbeConfig, where: str, model: str | None, budget: Budget) -> None:
    """One short request outside every window: first-request costs (graph capture, caches) are not measured."""
    body = request_body(cfg, model, cfg.prompts[0], min(_WARMUP_TOKENS, cfg.max_tokens))
    run = run_level(LevelRequest(join(where, ENDPOINTS[cfg.endpoint]), [body], 1, cfg.timeout_s,
                                 budget.deadline, budget.clock))
    if not run.records:
        raise SpecplanError(run.errors[0] if run.errors else f"{where}: the warm-up request did not complete")


def _bodies(cfg: ServerProbeConfig, model: str | None) -> list[dict[str, Any]]:
    return [request_body(cfg, model, cfg.prompts[j % len(cfg.prompts)], cfg.max_tokens) for j in range(cfg.requests)]


def _load(cfg: ServerProbeConfig, where: str, model: str | None, c: int, budget: Budget, runs: _Runs, what: str,
          frac: float) -> LevelRun:
    clock = budget.clock
    if cfg.on_step is not None:
        cfg.on_step(what)
    deadline = clock() + max(runs.share(budget.left()), 0.0)
    step = 1.0 / (len(cfg.concurrency) * (2 if cfg.baseline_url else 1))

    def progress(done: int, total: int) -> None:
        _progress(cfg, f"{what}: {done}/{total} requests", frac + step * done / max(total, 1))

    _progress(cfg, what, frac)
    return run_level(LevelRequest(join(where, ENDPOINTS[cfg.endpoint]), _bodies(cfg, model), c, cfg.timeout_s,
                                  min(deadline, budget.deadline), clock, progress))


def _spec_level(cfg: ServerProbeConfig, detected: Detected, url: str, model: str | None, c: int, budget: Budget,
                runs: _Runs, i: int) -> tuple[LevelRun, Window]:
    window = Window(before=scrape(detected.engine, url, cfg.timeout_s))
    n_runs = len(cfg.concurrency) * (2 if cfg.baseline_url else 1)
    frac = i * (2 if cfg.baseline_url else 1) / n_runs
    run = _load(cfg, url, model, c, budget, runs, f"concurrency {c}: speculative server", frac)
    window.records = run.records
    if not run.interrupted:
        window.after = scrape(detected.engine, url, cfg.timeout_s)
    return run, window


def _baseline_level(cfg: ServerProbeConfig, baseline: str, model: str | None, c: int, budget: Budget, runs: _Runs,
                    i: int) -> LevelRun:
    n_runs = len(cfg.concurrency) * 2
    return _load(cfg, baseline, model, c, budget, runs, f"concurrency {c}: baseline server", (2 * i + 1) / n_runs)


def _level_record(cfg: ServerProbeConfig, detected: Detected, c: int, spec: LevelRun, window: Window,
                  base: LevelRun | None) -> LoadLevel:
    figs = level_figures(spec.records)
    counts = WindowCounts(None, None, None)
    if spec.records and (window.after is not None or detected.engine == "llamacpp"):
        counts = level_counts(detected.engine, window, cfg.k, cfg.target, cfg.draft, cfg.model,
                              figs.window_s or None, f"concurrency {c}")
        cfg.notes.extend(counts.notes)
    fields: dict[str, Any] = {}
    if base is not None:
        b = level_figures(base.records)
        fields = {"baseline_requests_completed": b.requests, "baseline_output_tokens": b.output_tokens,
                  "baseline_ttft_s_median": b.ttft_s_median, "baseline_itl_s_median": b.itl_s_median,
                  "baseline_tokens_per_s_per_sequence": b.tokens_per_s_per_sequence,
                  "baseline_total_tokens_per_s": b.total_tokens_per_s,
                  "measured_speedup_per_sequence": speedup(figs.tokens_per_s_per_sequence, b.tokens_per_s_per_sequence),
                  "measured_speedup_total": speedup(figs.total_tokens_per_s, b.total_tokens_per_s)}
    errors = spec.errors + ([f"baseline: {e}" for e in base.errors] if base is not None else [])
    return LoadLevel(concurrency=c, requests_sent=spec.sent, requests_completed=figs.requests,
                     output_tokens=figs.output_tokens, token_count_source=figs.token_source, window_s=figs.window_s,
                     **_figures(figs), drafted_tokens=counts.drafted, accepted_tokens=counts.accepted,
                     verification_steps=counts.rounds,
                     accepted_per_position=list(counts.per_position) if counts.per_position is not None else None,
                     errors=errors, **fields)


def _figures(f: LevelFigures) -> dict[str, Any]:
    return {"ttft_s_median": f.ttft_s_median, "ttft_s_p90": f.ttft_s_p90, "itl_s_median": f.itl_s_median,
            "itl_s_p90": f.itl_s_p90, "chunk_gap_s_median": f.chunk_gap_s_median,
            "tokens_per_chunk": f.tokens_per_chunk, "tokens_per_s_per_sequence": f.tokens_per_s_per_sequence,
            "total_tokens_per_s": f.total_tokens_per_s}


class _NothingCompleted(Exception):
    """A level in which no request completed (server errors, not the budget)."""


def _assemble(cfg: ServerProbeConfig, detected: Detected, url: str, baseline: str | None, model: str | None,
              device: DeviceIdentity | None, levels: list[LoadLevel], windows: list[Window],
              partial: str | None) -> CalibrationFile:
    """The calibration file: the levels, and acceptance pooled over every window that has its counts."""
    from planner.calibration.acceptance_stats import model_identity

    notes = list(cfg.notes)
    counters, fitted = None, []
    usable = [w for w in windows if w.records and (detected.engine == "llamacpp" or w.after is not None)]
    if usable:
        window_s = sum(level.window_s for level in levels) or None
        steps = [level.verification_steps for level in levels if level.requests_completed]
        rounds = sum(steps) if steps and None not in steps else None  # type: ignore[arg-type]
        per_pos = [tuple(level.accepted_per_position or ()) for level in levels if level.requests_completed]
        pooled_pos = (tuple(int(sum(col)) for col in zip(*per_pos))
                      if rounds and per_pos and all(per_pos) and len({len(p) for p in per_pos}) == 1 else None)
        try:
            # --model (when given) keeps one served model's series, as calibrate's --model-name does
            pooled = pooled_calibration(detected.engine, usable, detected.props_text, cfg.k, cfg.target, cfg.draft,
                                        cfg.model, window_s, p_min=cfg.p_min, rounds=rounds, per_position=pooled_pos)
            counters, fitted = pooled.counters, pooled.fitted_acceptance
            notes += [f"acceptance pooled over {len(usable)} level(s), warm-up excluded; what the reader says:",
                      *pooled.notes]
        except SpecplanError as exc:
            notes.append(f"acceptance not read from the server: {exc}")
    notes += [f"{detected.engine} stream: {n}" for n in _stream_notes(windows)]
    return CalibrationFile(
        source="server-probe", partial=partial is not None, partial_reason=partial, device=device,
        engine=detected.engine, target=model_identity(cfg.target), draft=model_identity(cfg.draft),  # type: ignore[arg-type]
        counters=counters, fitted_acceptance=fitted, loads=levels, notes=notes,
        server=ServerRun(url=url, baseline_url=baseline, endpoint=ENDPOINTS[cfg.endpoint], model_name=model,
                         max_tokens_per_request=cfg.max_tokens, temperature=cfg.temperature, ignore_eos=cfg.ignore_eos),
    )


def _stream_notes(windows: list[Window]) -> list[str]:
    """Each distinct note of the parsed streams once (tokens counted by chunks, no [DONE])."""
    return list(dict.fromkeys(n for w in windows for r in w.records for n in r.notes))

#!/usr/bin/env python3
"""Render a server's own speculative-decoding Prometheus metrics, with known stats fed in.

Run with the Python of a server venv built by .ci/server_venvs.sh (vLLM or SGLang, CPU-only);
it needs nothing from specplan. It builds the server's own metric classes the way the server
does (same label names, minimal arguments), feeds them statistics it chooses, and renders the
registry with ``prometheus_client.generate_latest`` twice: "before" (after a first batch of
traffic) and "after" (after a second). It prints one JSON line:

  {"server", "version", "sets": [{"name", "classes", "exposes": {metric: type}, "fed": {...},
   "before": text, "after": text} | {"name", "classes", "error": "..."}]}

``fed`` holds the counts of the second batch alone (the window) and the gauges' last values, so
the test (tests/test_real_metric_formats.py) can check what specplan's readers make of the text.
A set whose classes cannot be built on this machine carries the exception instead.
"""

from __future__ import annotations

import json
import sys
import traceback

# SGLang: rounds of accepted draft counts per request, k = 3 (speculative_num_steps 3, topk 1,
# speculative_num_draft_tokens 4). Each request's first token comes from its prefill; each
# verification step then emits its accepted drafts plus one token.
SGLANG_K = 3
SGLANG_TARGET, SGLANG_DRAFT = "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"  # in the test's Hub cache
SGLANG_FIRST = [[3, 1, 0, 2]]  # before the "before" scrape
SGLANG_WINDOW = [[2, 2, 3, 0, 1], [0, 0, 1], [3, 3]]  # between the scrapes
# The scheduler's last logging interval: (batch size, correct drafts) per decode pass.
SGLANG_INTERVAL = [(2, 3), (2, 4), (1, 2), (1, 0)]

VLLM_K = 4
VLLM_MODEL = "Qwen/Qwen2.5-7B-Instruct"
VLLM_FIRST = [(4, 4), (4, 1)]  # (drafted, accepted prefix) per step
VLLM_WINDOW = [(4, 4), (4, 2), (4, 0), (4, 3), (4, 1)]
# V0: logging intervals of (accepted positionwise, emitted) per k-token draft (accepted counts
# accepts after a rejection too; emitted = accepted prefix + 1).
VLLM_V0_FIRST = [(3, 4), (1, 1)]
VLLM_V0_WINDOW = [[(4, 5), (2, 2)], [(1, 1), (3, 4), (2, 3)]]


def _render() -> str:
    import prometheus_client

    return prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()


def _exposes(prefix: str) -> dict[str, str]:
    import prometheus_client

    return {m.name: m.type for m in prometheus_client.REGISTRY.collect() if m.name.startswith(prefix)}


def _attempt(name: str, classes: list[str], build) -> dict:
    try:
        return {"name": name, "classes": classes, **build()}
    except Exception as exc:  # the record says exactly why the real classes could not be used
        return {"name": name, "classes": classes,
                "error": f"{type(exc).__name__}: {exc}".splitlines()[0],
                "traceback": traceback.format_exc()[-3000:]}


# --- SGLang ------------------------------------------------------------------------------------


def _sglang_request(collector, labels: dict, rounds: list[int], stream: bool, new_api: bool) -> None:
    completion = 1 + sum(a + 1 for a in rounds)
    kwargs = dict(labels=labels, prompt_tokens=16, generation_tokens=completion, cached_tokens=0,
                  e2e_latency=1.0, has_grammar=False)
    if new_api:  # 0.5.23: tokenizer_manager passes spec_verify_ct and is_streaming
        kwargs.update(spec_verify_ct=len(rounds), is_streaming=stream)
    collector.observe_one_finished_request(**kwargs)


def _sglang_interval() -> dict:
    """The gauges as the scheduler sets them for SGLANG_INTERVAL (metrics_reporter.log_decode_stats
    of 0.5.23, scheduler_metrics_mixin.log_decode_stats of 0.5.3: accept length = sum(correct + bs) /
    sum(bs); 0.5.23's accept rate = sum(correct) / (sum(bs) x (num_draft_tokens - 1)))."""
    passes = sum(bs for bs, _ in SGLANG_INTERVAL)
    correct = sum(c for _, c in SGLANG_INTERVAL)
    return {"spec_accept_length": (correct + passes) / passes,
            "spec_accept_rate": correct / (passes * SGLANG_K),
            "spec_num_steps": SGLANG_K, "spec_num_draft_tokens": SGLANG_K + 1}


def _sglang_fed(interval: dict, counters: bool) -> dict:
    fed = {"k": SGLANG_K, "gauges": interval}
    if counters:
        fed.update(verify_calls=sum(len(r) for r in SGLANG_WINDOW),
                   accepted=sum(sum(r) for r in SGLANG_WINDOW), requests=len(SGLANG_WINDOW),
                   generation_tokens=sum(1 + sum(a + 1 for a in r) for r in SGLANG_WINDOW))
    return fed


def _sglang_published_args(model: str):
    """0.5.23's collectors read their settings from the process's published runtime context
    (runtime_context.get_observability(), get_exec(), ...; unpublished: "config namespace 'exec'
    not published"), so the script publishes one as a server process does: ServerArgs with a
    STANDALONE draft, resolved against the models' config.json in the offline Hub cache the test
    wrote (HF_HUB_CACHE), on check_sglang.py's simulated H100 (SGLang's resolution asks torch.cuda)."""
    from check_sglang import _simulated_cuda

    _simulated_cuda(1)
    from sglang.srt import runtime_context
    from sglang.srt.server_args import ServerArgs

    args = ServerArgs(model_path=model, speculative_algorithm="STANDALONE",
                      speculative_draft_model_path=SGLANG_DRAFT, speculative_num_steps=SGLANG_K,
                      speculative_eagle_topk=1, speculative_num_draft_tokens=SGLANG_K + 1, enable_metrics=True)
    runtime_context.publish(args, role="scheduler")
    return args


def _sglang_sets(version: str) -> list[dict]:
    new = tuple(int(x) for x in version.split(".")[:3]) >= (0, 5, 23)
    if new:
        from sglang.srt.observability import metrics_collector as mc
        module = "sglang/srt/observability/metrics_collector.py"
    else:
        from sglang.srt.metrics import collector as mc
        module = "sglang/srt/metrics/collector.py"
    classes = [f"{module}::SchedulerMetricsCollector", f"{module}::TokenizerMetricsCollector", "SchedulerStats"]

    def build() -> dict:
        # Labels as the scheduler and the tokenizer manager build them (single GPU, no DP).
        model = SGLANG_TARGET
        sched_labels = {"model_name": model, "engine_type": "unified", "tp_rank": 0, "pp_rank": 0}
        tok_labels = {"model_name": model}
        if new:
            sched_labels["moe_ep_rank"] = 0
            tok_labels["engine_type"] = "unified"
            args = _sglang_published_args(model)
            scheduler = mc.SchedulerMetricsCollector(labels=sched_labels, server_args=args)
            tokenizer = mc.TokenizerMetricsCollector(server_args=args, labels=tok_labels)
        else:
            scheduler = mc.SchedulerMetricsCollector(labels=sched_labels)
            tokenizer = mc.TokenizerMetricsCollector(server_args=None, labels=tok_labels)
        interval = _sglang_interval()
        stats = mc.SchedulerStats()
        for key, value in interval.items():
            if hasattr(stats, key):
                setattr(stats, key, value)
        interval = {key: value for key, value in interval.items() if hasattr(stats, key)}
        for rounds in SGLANG_FIRST:
            _sglang_request(tokenizer, tok_labels, rounds, False, new)
        before = _render()
        for i, rounds in enumerate(SGLANG_WINDOW):
            _sglang_request(tokenizer, tok_labels, rounds, i == len(SGLANG_WINDOW) - 1, new)
        scheduler.log_stats(stats)
        setup = ("runtime context published from ServerArgs (STANDALONE draft, num_steps 3, topk 1) resolved on "
                 "a simulated 1 x H100" if new else "collectors built with labels only, as the 0.5.3 scheduler does")
        return {"exposes": _exposes("sglang:"), "fed": _sglang_fed(interval, counters=new), "setup": setup,
                "before": before, "after": _render()}

    return [_attempt("sglang-collectors", classes, build)]


# --- vLLM ----------------------------------------------------------------------------------------


def _vllm_v1(version: str) -> dict:
    from vllm.v1.spec_decode.metrics import SpecDecodingProm, SpecDecodingStats

    class _Spec:  # SpecDecodingProm reads num_speculative_tokens only (vllm/v1/spec_decode/metrics.py)
        num_speculative_tokens = VLLM_K

    def build() -> dict:
        # Label names and values as vLLM's PrometheusStatLogger passes them (vllm/v1/metrics/loggers.py):
        # ["model_name", "engine"]. 0.33.0 takes one label set per engine (two engines, data parallel,
        # here); 0.9.2 takes one set of label values (one SpecDecodingProm per engine).
        import inspect

        labelnames = ["model_name", "engine"]
        if "per_engine_labelvalues" in inspect.signature(SpecDecodingProm.__init__).parameters:
            prom = SpecDecodingProm(_Spec(), labelnames, {0: [VLLM_MODEL, "0"], 1: [VLLM_MODEL, "1"]})
            observe, engines = prom.observe, "engines 0, 1"
        else:  # a second instance would register the same metric names again: one engine
            prom = SpecDecodingProm(_Spec(), labelnames, [VLLM_MODEL, "0"])
            observe, engines = (lambda stats, engine: prom.observe(stats)), "engine 0"

        def feed(drafts, engine):
            stats = SpecDecodingStats.new(VLLM_K)
            for n_draft, n_acc in drafts:
                stats.observe_draft(n_draft, n_acc)
            observe(stats, engine)

        feed(VLLM_FIRST, 0)
        before = _render()
        feed(VLLM_WINDOW[:3], 0)
        feed(VLLM_WINDOW[3:], 1)
        fed = {"k": VLLM_K, "num_drafts": len(VLLM_WINDOW), "num_draft_tokens": sum(d for d, _ in VLLM_WINDOW),
               "num_accepted_tokens": sum(a for _, a in VLLM_WINDOW),
               "accepted_per_position": [sum(1 for _, a in VLLM_WINDOW if a > i) for i in range(VLLM_K)]}
        return {"exposes": _exposes("vllm:spec_decode"), "fed": fed, "before": before, "after": _render(),
                "setup": f"SpecDecodingProm with a stand-in speculative config (num_speculative_tokens 4), {engines}"}

    return _attempt("vllm-v1", ["vllm/v1/spec_decode/metrics.py::SpecDecodingProm", "SpecDecodingStats"], build)


def _vllm_v0() -> dict:
    classes = ["vllm/engine/metrics.py::PrometheusStatLogger", "SpecDecodeWorkerMetrics"]
    try:
        import vllm.engine.metrics  # noqa: F401
        import vllm.spec_decode.metrics  # noqa: F401
    except ImportError as exc:  # the V0 engine is gone from this release
        return {"name": "vllm-v0", "classes": classes, "absent": True,
                "error": f"not in this release ({type(exc).__name__}: {exc})"}
    return _attempt("vllm-v0", classes, _vllm_v0_build)


def _vllm_v0_build() -> dict:
    """vLLM V0's PrometheusStatLogger (vllm/engine/metrics.py, 0.9.2) driven through its own log().

    As in V0's engine, each Stats carries a SpecDecodeWorkerMetrics whose counts are the rejection
    sampler's lifetime totals (spec_decode_base_sampler.py adds to them and never resets;
    AsyncMetricsCollector copies them), and log() increments the _total counters by those totals
    at every local logging interval. So a counter is a sum of lifetime snapshots, and the difference
    of two scrapes is the sum of the snapshots logged between them, which is what ``fed`` holds.
    """
    import dataclasses
    import types
    import typing

    from vllm.engine.metrics import PrometheusStatLogger
    from vllm.engine.metrics_types import Stats
    from vllm.spec_decode.metrics import SpecDecodeWorkerMetrics

    # PrometheusStatLogger reads model_config.max_model_len and observability_config.show_hidden_metrics.
    config = types.SimpleNamespace(model_config=types.SimpleNamespace(max_model_len=4096),
                                   observability_config=types.SimpleNamespace(show_hidden_metrics=False))
    logger = PrometheusStatLogger(local_interval=0.0, labels={"model_name": VLLM_MODEL}, vllm_config=config)

    def zero(tp):
        origin = typing.get_origin(tp)
        if origin in (list, typing.List):
            return []
        return {int: 0, float: 0.0, str: ""}.get(tp, None)

    hints = typing.get_type_hints(Stats)
    totals = {"draft": 0, "accepted": 0, "emitted": 0}
    import time

    clock = [time.time()]  # log() compares Stats.now with the wall clock it read at construction

    def log_interval(steps):  # steps: (accepted positionwise, emitted) per k-token draft
        for accepted, emitted in steps:
            totals["draft"] += VLLM_K
            totals["accepted"] += accepted
            totals["emitted"] += emitted
        spec = SpecDecodeWorkerMetrics(
            draft_acceptance_rate=totals["accepted"] / totals["draft"],
            system_efficiency=totals["emitted"] / (totals["draft"] // VLLM_K * (VLLM_K + 1)),
            draft_tokens=totals["draft"], emitted_tokens=totals["emitted"], accepted_tokens=totals["accepted"],
            num_spec_tokens=VLLM_K)
        clock[0] += 10.0
        fields = {f.name: zero(hints[f.name]) for f in dataclasses.fields(Stats)}
        fields.update(now=clock[0], max_lora="0", spec_decode_metrics=spec)
        logger.log(Stats(**fields))
        return spec

    log_interval(VLLM_V0_FIRST)
    before = _render()
    snapshots = [log_interval(steps) for steps in VLLM_V0_WINDOW]
    fed = {"k": VLLM_K, "num_draft_tokens": sum(m.draft_tokens for m in snapshots),
           "num_accepted_tokens": sum(m.accepted_tokens for m in snapshots),
           "num_emitted_tokens": sum(m.emitted_tokens for m in snapshots),
           "lifetime_at_after": dict(totals), "draft_acceptance_rate": snapshots[-1].draft_acceptance_rate}
    return {"exposes": _exposes("vllm:spec_decode"), "fed": fed, "before": before, "after": _render(),
            "setup": "PrometheusStatLogger with a stand-in vllm_config (max_model_len, show_hidden_metrics), "
                     "fed Stats whose SpecDecodeWorkerMetrics hold the sampler's lifetime totals, as V0 does"}


def _vllm_sets(version: str) -> list[dict]:
    return [_vllm_v1(version), _vllm_v0()]


def main() -> int:
    import importlib.metadata
    import importlib.util

    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    environment = {}
    if importlib.util.find_spec("sglang") is not None:
        # SGLang's metric modules import its config registry, which imports torchvision (no CPU
        # wheel here): check_sglang.py's stand-in takes its place; metrics code never uses it.
        from check_sglang import _torchvision

        environment["torchvision"] = _torchvision()
        server, version = "sglang", importlib.metadata.version("sglang")
        sets = _sglang_sets(version)
    else:
        server, version = "vllm", importlib.metadata.version("vllm")
        sets = _vllm_sets(version)
    print(json.dumps({"server": server, "version": version, "environment": environment, "sets": sets}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

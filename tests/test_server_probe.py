"""probe --server: the stream parser and statistics on recorded llama-server bytes, the load generator
and the CLI's error paths over a local replay server (tests/server_replay.py), with injected clocks.

The fixtures under tests/data/server/ were recorded from the real llama-server b11312 (CPU build of
.ci/llamacpp_build.sh, the tiny Q8_0 pair of tests/real_llamacpp/models.py) by
tests/test_real_server_probe.py with SPECPLAN_RECORD_FIXTURES=1.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import yaml

from planner.calibration.schema import read_calibration
from planner.calibration.server_probe import ServerProbeConfig, run_server_probe
from planner.calibration.server_probe.load import LevelRequest, run_level
from planner.calibration.server_probe.stats import inter_token_s, level_figures, quantile, request_figures, ttft_s
from planner.calibration.server_probe.stream import StreamError, parse_stream, sse_events
from planner.calibration.server_probe.transport import check_base_url, join
from planner.cli import main
from planner.errors import SpecplanError
from tests.server_replay import Route, replay_server

DATA = Path(__file__).parent / "data" / "server"
STREAM = DATA / "llamacpp_b11312_stream.sse"  # one /v1/completions stream of the speculative server
BASE_STREAM = DATA / "llamacpp_b11312_stream_baseline.sse"  # the same request to the server without a draft
PROPS = DATA / "llamacpp_b11312_props.json"
MODELS = DATA / "llamacpp_b11312_models.json"


def _lines(path: Path, step_s: float = 0.01, start_s: float = 1.0) -> list[tuple[float, str]]:
    """The recorded stream's lines with arrival times start_s, start_s + step_s, ... (an injected clock)."""
    text = path.read_bytes().decode("utf-8")
    return [(start_s + i * step_s, line) for i, line in enumerate(text.split("\n"))]


def _final(path: Path) -> dict:
    events = [json.loads(d) for _, d in sse_events(_lines(path)) if d != "[DONE]"]
    return next(e for e in reversed(events) if "timings" in e)


class StepClock:
    """A clock that moves ``step_s`` each time it is read: no test depends on how fast the machine is."""

    def __init__(self, step_s: float = 0.001) -> None:
        self.counter = itertools.count()
        self.step_s = step_s

    def __call__(self) -> float:
        return next(self.counter) * self.step_s


# --- the stream parser on real bytes ---------------------------------------------------------------


def test_recorded_stream_counts_tokens_by_the_servers_timings() -> None:
    final = _final(STREAM)
    rec = parse_stream(0.5, _lines(STREAM))
    assert rec.done and rec.token_source in ("usage.completion_tokens", "timings.predicted_n")
    assert rec.output_tokens == final["timings"]["predicted_n"]
    assert rec.timings["draft_n"] == final["timings"]["draft_n"] and rec.timings["draft_n"] > 0
    assert rec.chunks >= len(rec.content_times_s) >= 1
    # TTFT: send (0.5) -> arrival of the first line that carried text, on the injected clock
    first = next(t for t, d in sse_events(_lines(STREAM)) if d != "[DONE]" and _text(d))
    assert ttft_s(rec) == pytest.approx(first - 0.5)


def _text(data: str) -> str:
    doc = json.loads(data)
    return "".join(c.get("text") or "" for c in doc.get("choices") or [])


def test_recorded_stream_inter_token_latency_uses_server_tokens() -> None:
    rec = parse_stream(0.0, _lines(STREAM, step_s=0.02))
    span = rec.content_times_s[-1] - rec.content_times_s[0]
    assert inter_token_s(rec) == pytest.approx(span / (rec.output_tokens - 1))
    fig = request_figures(rec)
    assert fig.tokens_per_s == pytest.approx(1 / fig.itl_s)


def test_baseline_stream_has_no_draft_timings() -> None:
    rec = parse_stream(0.0, _lines(BASE_STREAM))
    assert rec.output_tokens == _final(BASE_STREAM)["timings"]["predicted_n"]
    assert "draft_n" not in (rec.timings or {})


def test_chunk_count_is_the_last_resort_and_says_so() -> None:
    lines = [(1.0, 'data: {"choices": [{"text": "a"}]}'), (1.0, ""), (2.0, 'data: {"choices": [{"text": "bc"}]}'),
             (2.0, ""), (2.0, "data: [DONE]")]
    rec = parse_stream(0.0, lines)
    assert rec.output_tokens == 2 and rec.token_source == "chunks" and rec.notes


def test_usage_chunk_wins_over_chunk_count() -> None:
    lines = [(1.0, 'data: {"choices": [{"text": "ab", "finish_reason": null}], "usage": null}'), (1.0, ""),
             (3.0, 'data: {"choices": [{"text": "cd", "finish_reason": "length"}], "usage": null}'), (3.0, ""),
             (3.1, 'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}'), (3.1, ""),
             (3.1, "data: [DONE]")]
    rec = parse_stream(0.0, lines)
    assert (rec.output_tokens, rec.token_source, rec.finish_reason) == (4, "usage.completion_tokens", "length")
    assert inter_token_s(rec) == pytest.approx(2.0 / 3)


@pytest.mark.parametrize("body, why", [
    ("<html>502 Bad Gateway</html>", "no completion chunks"),
    ("data: {not json", "not JSON"),
    ('data: {"error": {"message": "the context is full"}}', "the context is full"),
])
def test_not_a_stream_is_one_line(body: str, why: str) -> None:
    with pytest.raises(StreamError, match=why):
        parse_stream(0.0, [(0.0, line) for line in body.split("\n")] + [(0.0, "")])


def test_level_figures_medians_and_totals() -> None:
    recs = [parse_stream(float(i), _lines(STREAM, step_s=0.01 * (i + 1), start_s=i + 0.2)) for i in range(3)]
    fig = level_figures(recs)
    assert fig.requests == 3 and fig.output_tokens == sum(r.output_tokens for r in recs)
    assert fig.ttft_s_median == pytest.approx(quantile([ttft_s(r) for r in recs], 0.5))
    assert fig.window_s == pytest.approx(recs[-1].end_s - 0.0)
    assert fig.total_tokens_per_s == pytest.approx(fig.output_tokens / fig.window_s)
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.9) == pytest.approx(3.7)


# --- URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://host/x", "127.0.0.1:8080", "http://", "http://h:x/",
                                 "http://h:8000/?a=1", "http://[::1", "http://ex ample", "http://h\u00e9:8000"])
def test_only_http_urls(url: str) -> None:
    with pytest.raises(SpecplanError, match="--server"):
        check_base_url(url, "--server")


def test_join_does_not_double_v1() -> None:
    assert join("http://h:1/v1", "/v1/completions") == "http://h:1/v1/completions"
    assert join("http://h:1", "/v1/completions") == "http://h:1/v1/completions"


# --- the load generator and the whole run, over the replay server ------------------------------------


def _llama_routes(stream: Path = STREAM) -> dict:
    return {("GET", "/props"): Route(body=PROPS.read_bytes()), ("GET", "/v1/models"): Route(body=MODELS.read_bytes()),
            ("POST", "/v1/completions"): Route(content_type="text/event-stream", body=stream.read_bytes(), stream=True)}


def test_level_keeps_at_most_c_in_flight_and_sends_n() -> None:
    with replay_server(_llama_routes()) as srv:
        run = run_level(LevelRequest(srv.url + "/v1/completions", [{"prompt": str(i)} for i in range(5)], 2, 10.0,
                                     1e9, StepClock()))
        assert (run.sent, len(run.records), run.failed) == (5, 5, 0)
        assert sorted(json.loads(b)["prompt"] for b in srv.received["/v1/completions"]) == [str(i) for i in range(5)]


def test_no_request_starts_after_the_deadline() -> None:
    with replay_server(_llama_routes()) as srv:
        clock = StepClock(1.0)  # every read of the clock is a second later
        run = run_level(LevelRequest(srv.url + "/v1/completions", [{}] * 4, 1, 10.0, 3.0, clock))
        assert run.out_of_budget and run.sent < 4


def _cfg(url: str, **kw) -> ServerProbeConfig:
    base = dict(url=url, target="meta-llama/Llama-3.1-8B-Instruct", draft="meta-llama/Llama-3.2-1B-Instruct",
                concurrency=(1, 2), requests=3, max_tokens=16, budget_s=1e6, timeout_s=10.0, clock=StepClock(),
                k=4)  # the recording server's --spec-draft-n-max (its /props does not state it)
    base.update(kw)
    return ServerProbeConfig(**base)


def test_run_over_replayed_llama_server(tmp_path: Path) -> None:
    with replay_server(_llama_routes()) as spec, replay_server(_llama_routes(BASE_STREAM)) as base:
        cal = run_server_probe(_cfg(spec.url, baseline_url=base.url), tmp_path / "c.yaml")
    final = _final(STREAM)["timings"]
    assert cal.source == "server-probe" and cal.engine == "llamacpp" and not cal.partial
    assert [lv.concurrency for lv in cal.loads] == [1, 2]
    for lv in cal.loads:
        assert lv.requests_completed == 3 and lv.output_tokens == 3 * final["predicted_n"]
        assert (lv.drafted_tokens, lv.accepted_tokens) == (3 * final["draft_n"], 3 * final["draft_n_accepted"])
        assert lv.measured_speedup_per_sequence is not None and lv.baseline_requests_completed == 3
    assert cal.counters.num_draft_tokens == 6 * final["draft_n"]
    assert cal.fitted_acceptance and cal.fitted_acceptance[0].mode == "server"
    assert read_calibration(tmp_path / "c.yaml") == cal


def test_interrupt_writes_a_partial_file(tmp_path: Path) -> None:
    def on_step(what: str) -> None:
        if what.startswith("concurrency 2"):
            raise KeyboardInterrupt

    with replay_server(_llama_routes()) as spec:
        cal = run_server_probe(_cfg(spec.url, on_step=on_step), tmp_path / "c.yaml")
    assert cal.partial and cal.partial_reason.startswith("interrupted")
    assert [lv.concurrency for lv in cal.loads] == [1]
    assert yaml.safe_load((tmp_path / "c.yaml").read_text())["partial"] is True


# --- the CLI: one line, exit 2 ---------------------------------------------------------------------


def _probe(runner, url: str, out: Path, *extra: str):
    return runner.invoke(main, ["probe", "--server", url, "--target", "meta-llama/Llama-3.1-8B-Instruct", "--draft",
                                "meta-llama/Llama-3.2-1B-Instruct", "--concurrency", "1", "--requests", "2",
                                "--max-tokens", "8", "--timeout-s", "5", "-o", str(out), *extra])


def _one_line(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    assert "Traceback" not in result.output + result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.lstrip().startswith(("warm", "concurrency"))]
    return lines[-1]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://x", "localhost:8000"])
def test_cli_refuses_non_http(runner, tmp_path: Path, url: str) -> None:
    assert "http://" in _one_line(_probe(runner, url, tmp_path / "c.yaml"))
    assert not (tmp_path / "c.yaml").exists()


def test_cli_unreachable(runner, tmp_path: Path) -> None:
    from tests.real_llamacpp.server import free_port

    line = _one_line(_probe(runner, f"http://127.0.0.1:{free_port()}", tmp_path / "c.yaml"))
    assert "refused" in line and not (tmp_path / "c.yaml").exists()


def test_cli_server_error_500(runner, tmp_path: Path) -> None:
    routes = {**_llama_routes(), ("POST", "/v1/completions"):
              Route(500, body=b'{"error": {"code": 500, "message": "failed to load model", "type": "server_error"}}')}
    with replay_server(routes) as srv:
        line = _one_line(_probe(runner, srv.url, tmp_path / "c.yaml"))
    assert "HTTP 500" in line and "failed to load model" in line


def test_cli_garbage_stream(runner, tmp_path: Path) -> None:
    routes = {**_llama_routes(), ("POST", "/v1/completions"): Route(content_type="text/html", body=b"<html>hi</html>\n")}
    with replay_server(routes) as srv:
        line = _one_line(_probe(runner, srv.url, tmp_path / "c.yaml"))
    assert "no completion chunks" in line


def test_cli_unknown_engine(runner, tmp_path: Path) -> None:
    with replay_server({}) as srv:
        line = _one_line(_probe(runner, srv.url, tmp_path / "c.yaml"))
    assert "--engine" in line


def test_cli_zero_completed_after_a_good_level_writes_partial(runner, tmp_path: Path) -> None:
    calls = {"n": 0}

    def completions(body: bytes) -> Route:
        calls["n"] += 1
        if calls["n"] <= 3:  # the warm-up and the two requests of concurrency 1
            return Route(content_type="text/event-stream", body=STREAM.read_bytes(), stream=True)
        return Route(503, body=b'{"error": {"message": "loading model"}}')

    with replay_server({**_llama_routes(), ("POST", "/v1/completions"): completions}) as srv:
        result = _probe(runner, srv.url, tmp_path / "c.yaml", "--concurrency", "1,2")
    line = _one_line(result)
    assert "concurrency 2" in line and "HTTP 503" in line and "partial" in line
    doc = yaml.safe_load((tmp_path / "c.yaml").read_text())
    assert doc["partial"] and [lv["concurrency"] for lv in doc["loads"]] == [1, 2]
    assert doc["loads"][1]["requests_completed"] == 0 and doc["loads"][1]["errors"]


def test_cli_baseline_needs_server(runner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["probe", "--baseline-url", "http://127.0.0.1:1", "--target", "x", "--draft", "y",
                                  "-o", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2 and "--server" in result.stderr


# --- estimate / recommend --calibration: predicted vs measured at each load ---------------------------


@pytest.fixture
def replayed_file(tmp_path: Path) -> Path:
    with replay_server(_llama_routes()) as spec, replay_server(_llama_routes(BASE_STREAM)) as base:
        run_server_probe(_cfg(spec.url, baseline_url=base.url), tmp_path / "c.yaml")
    return tmp_path / "c.yaml"


def test_estimate_shows_predicted_vs_measured_per_load(runner, replayed_file: Path) -> None:
    flags = ["--target", "meta-llama/Llama-3.1-8B-Instruct", "--draft", "meta-llama/Llama-3.2-1B-Instruct", "--gpu",
             "h100-sxm", "--calibration", str(replayed_file)]
    result = runner.invoke(main, ["estimate", *flags, "--engine", "llamacpp", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    block = doc["calibration"]["loads"]
    cal = read_calibration(replayed_file)
    assert [r["concurrency"] for r in block["rows"]] == [1, 2] and block["k"] == cal.counters.k
    for row, level in zip(block["rows"], cal.loads):
        assert row["measured_tokens_per_s_per_sequence"] == pytest.approx(level.tokens_per_s_per_sequence, rel=1e-3)
        assert row["measured_speedup_per_sequence"] == pytest.approx(level.measured_speedup_per_sequence, rel=1e-3)
        assert row["predicted_tokens_per_s_per_sequence"] > 0 and row["predicted_speedup"] > 0
        assert row["alpha_source"] in ("calibration", "derived")  # the file's alpha, moved to the plan's precision
    # batch = concurrency: the plan at concurrency 2 is the estimate at --batch 2
    at2 = runner.invoke(main, ["estimate", *flags[:-2], "--engine", "llamacpp", "--batch", "2", "--k",
                               str(block["k"]), "--calibration", str(replayed_file), "--format", "json"])
    assert json.loads(at2.stdout)["spec_tokens_per_s"] == pytest.approx(
        block["rows"][1]["predicted_tokens_per_s_per_sequence"], rel=1e-3)
    assert not [w for w in doc["warnings"] if "different engines" in w]
    text = runner.invoke(main, ["estimate", *flags, "--engine", "llamacpp"])
    assert "Predicted vs measured per load" in text.stdout


def test_engine_mismatch_warns(runner, replayed_file: Path) -> None:
    result = runner.invoke(main, ["estimate", "--target", "meta-llama/Llama-3.1-8B-Instruct", "--draft",
                                  "meta-llama/Llama-3.2-1B-Instruct", "--gpu", "h100-sxm", "--engine", "vllm",
                                  "--calibration", str(replayed_file), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert any("llamacpp server" in w and "different engines" in w for w in json.loads(result.stdout)["warnings"])


def test_recommend_shows_predicted_vs_measured(runner, replayed_file: Path) -> None:
    result = runner.invoke(main, ["recommend", "--target", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100-sxm",
                                  "--engine", "llamacpp", "--calibration", str(replayed_file)])
    assert result.exit_code == 0, result.stderr
    assert "Predicted vs measured per load" in result.stdout
    js = runner.invoke(main, ["recommend", "--target", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100-sxm",
                              "--engine", "llamacpp", "--calibration", str(replayed_file), "--format", "json"])
    rows = json.loads(js.stdout)["calibration_loads"]["rows"]
    assert [r["concurrency"] for r in rows] == [1, 2]


def test_old_files_still_read(tmp_path: Path) -> None:
    """schema_version 1 files without the new fields (server, loads) read as before."""
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"schema_version": 1, "source": "vllm-metrics", "target": {"id": "x"}}))
    cal = read_calibration(path)
    assert cal.loads == [] and cal.server is None


def test_budget_end_writes_a_partial_file(tmp_path: Path) -> None:
    clock = StepClock()

    def on_step(what: str) -> None:
        if what.startswith("concurrency 2"):
            clock.counter = itertools.count(10**12)  # the budget is spent before the second level starts

    with replay_server(_llama_routes()) as spec, replay_server(_llama_routes(BASE_STREAM)) as base:
        cal = run_server_probe(_cfg(spec.url, baseline_url=base.url, budget_s=1000.0, clock=clock, on_step=on_step),
                               tmp_path / "c.yaml")
    assert cal.partial and "budget" in cal.partial_reason
    assert [lv.requests_sent for lv in cal.loads] == [3, 0] and cal.loads[1].baseline_requests_completed is None
    assert cal.counters.num_draft_tokens == 3 * _final(STREAM)["timings"]["draft_n"]  # level 1 alone


def test_budget_spent_before_anything_is_one_line(tmp_path: Path) -> None:
    clock = StepClock()

    def on_step(what: str) -> None:
        clock.counter = itertools.count(10**12)

    with replay_server(_llama_routes()) as spec:
        with pytest.raises(SpecplanError, match="no request completed"):
            run_server_probe(_cfg(spec.url, budget_s=1000.0, clock=clock, on_step=on_step), tmp_path / "c.yaml")
    assert not (tmp_path / "c.yaml").exists()


# --- llama.cpp per-position window ----------------------------------------------------------------


@pytest.mark.parametrize("before, after, steps, want", [
    ([], [5, 3, 1], 6, (5, 3, 1)),             # a fresh server: no series before the window
    ([2, 1, 0], [7, 4, 1], 6, (5, 3, 1)),
    ([2, 1, 0], [7, 4], 6, None),              # the series shrank: another server, not a window
    ([9, 1, 0], [7, 4, 1], 6, None),           # a counter went down: restarted
    ([0, 0, 0], [3, 5, 1], 6, None),           # position 2 accepted more often than position 1
    ([0, 0, 0], [7, 4, 1], 6, None),           # more steps accepted position 0 than ran
])
def test_per_position_window(before, after, steps, want) -> None:
    from planner.calibration.server_probe.acceptance import _per_position_delta

    assert _per_position_delta(before, after, steps) == want

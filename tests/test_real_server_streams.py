"""probe --server's stream parser on vLLM's and SGLang's own streamed-completion bytes.

vLLM and SGLang cannot serve here (no GPU), but their protocol classes import in the CPU venvs of
.ci/server_venvs.sh. tests/real_servers/stream_chunks.py builds one streamed answer inside each venv
with the server's own pydantic models and serialisation calls (text chunks, the final usage chunk,
``[DONE]``); the parser must count the server's completion_tokens, not the chunks (a speculative
step's tokens arrive as one chunk), and read vLLM's per-request speculative_decoding counts.
Same skip/fail rule as tests/test_real_servers.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from planner.calibration.server_probe.stats import inter_token_s
from planner.calibration.server_probe.stream import parse_stream
from tests.real_servers.harness import CHECKERS, CHECK_TIMEOUT_S, Release, releases, venv_python

pytestmark = pytest.mark.real_servers

TEXTS = ["The", " draft", " proposes tokens", " and the", " target verifies"]  # 5 chunks ...
TOKENS = 9  # ... of 9 tokens: some chunks carry a whole accepted draft
DRAFTED, ACCEPTED, STEPS = 12, 5, 4


def _sse(release: Release) -> str:
    python = venv_python(release)
    argv = [str(python), str(CHECKERS / "stream_chunks.py"), release.server, json.dumps(TEXTS), str(TOKENS)]
    if release.server == "vllm":
        argv += [str(DRAFTED), str(ACCEPTED), str(STEPS)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _newest(server: str) -> Release:
    found = releases(server)
    if not found:
        pytest.skip(f"no {server} requirement file in .ci/server-venvs")
    return found[0]


@pytest.mark.parametrize("server", ["vllm", "sglang"])
def test_parser_reads_the_servers_own_stream(server: str) -> None:
    sse = _sse(_newest(server))
    lines = [(0.1 * i, line) for i, line in enumerate(sse.split("\n"))]  # injected arrival times
    rec = parse_stream(0.0, lines)
    assert rec.done and rec.finish_reason == "length"
    assert (rec.output_tokens, rec.token_source) == (TOKENS, "usage.completion_tokens")
    assert len(rec.content_times_s) == len(TEXTS) and rec.text == "".join(TEXTS)
    span = rec.content_times_s[-1] - rec.content_times_s[0]
    assert inter_token_s(rec) == pytest.approx(span / (TOKENS - 1))
    if server == "vllm":
        assert rec.request_spec == (DRAFTED, ACCEPTED, STEPS)
    else:
        assert rec.request_spec is None


DATA = Path(__file__).parent / "data" / "server"


def _metrics_route(before: bytes, after: bytes):
    """/metrics as a server shows it: the before scrape until the level ran (engine detection, window start), then after."""
    from tests.server_replay import Route

    calls = {"n": 0}

    def answer(_: bytes) -> Route:
        calls["n"] += 1
        return Route(content_type="text/plain; version=0.0.4", body=before if calls["n"] <= 2 else after)

    return answer


def _probe_over_replay(server: str, sse: str, before: Path, after: Path, tmp_path: Path, target: str, draft: str):
    """One level of 3 requests over a replay of the server's bytes; the served name is the metrics' model_name."""
    from planner.calibration.server_probe import ServerProbeConfig, run_server_probe
    from tests.server_replay import Route, replay_server

    routes = {("GET", "/metrics"): _metrics_route(before.read_bytes(), after.read_bytes()),
              ("GET", "/v1/models"): Route(body=json.dumps({"object": "list", "data": [{"id": target}]}).encode()),
              ("POST", "/v1/completions"): Route(content_type="text/event-stream", body=sse.encode(), stream=True)}
    ticks = iter(range(10**9))
    with replay_server(routes) as srv:
        cfg = ServerProbeConfig(url=srv.url, target=target, draft=draft, concurrency=(2,), requests=3, max_tokens=9,
                                budget_s=1e6, timeout_s=30, clock=lambda: next(ticks) * 1e-3)
        cal = run_server_probe(cfg, tmp_path / "c.yaml")
        sent = [json.loads(b) for b in srv.received["/v1/completions"]]
    assert all(b["stream"] and b["stream_options"] == {"include_usage": True} and b["model"] == target for b in sent)
    assert cal.engine == server and len(cal.loads) == 1
    level = cal.loads[0]
    assert (level.requests_completed, level.output_tokens, level.token_count_source) == (3, 3 * TOKENS,
                                                                                        "usage.completion_tokens")
    return cal, level


def test_vllm_path_with_vllms_own_stream_and_metrics(tmp_path: Path) -> None:
    """vLLM: the stream vLLM's classes wrote, the /metrics window differenced (the repo's V1 scrapes)."""
    from planner.calibration.server_metrics import vllm_calibration

    sse = _sse(_newest("vllm"))
    before, after = DATA / "vllm_v1_before.prom", DATA / "vllm_v1_after.prom"
    cal, level = _probe_over_replay("vllm", sse, before, after, tmp_path, "meta-llama/Llama-3.1-70B-Instruct",
                                    "meta-llama/Llama-3.2-1B-Instruct")
    want = vllm_calibration(before.read_text(), after.read_text(), None, "meta-llama/Llama-3.1-70B-Instruct",
                            "meta-llama/Llama-3.2-1B-Instruct").counters
    assert (level.drafted_tokens, level.accepted_tokens, level.verification_steps) == (
        want.num_draft_tokens, want.num_accepted_tokens, want.num_drafts)
    assert cal.counters.num_accepted_tokens == want.num_accepted_tokens and cal.fitted_acceptance[0].k == want.k
    # the streams' own per-request counts differ from the metrics window here: noted, not used
    assert any("metrics.speculative_decoding" in n for n in cal.notes)


def test_sglang_path_with_sglangs_own_stream_and_metrics(tmp_path: Path) -> None:
    """SGLang: its stream, and /metrics (rendered by SGLang 0.5.23's own collectors) through the SGLang reader."""
    from planner.calibration import sglang_metrics

    before, after = DATA / "sglang_0.5.23_before.prom", DATA / "sglang_0.5.23_after.prom"
    sse = _sse(_newest("sglang"))
    cal, level = _probe_over_replay("sglang", sse, before, after, tmp_path, "Qwen/Qwen2.5-7B-Instruct",
                                    "Qwen/Qwen2.5-0.5B-Instruct")
    want = sglang_metrics.sglang_calibration(before.read_text(), after.read_text(), None, "Qwen/Qwen2.5-7B-Instruct",
                                             "Qwen/Qwen2.5-0.5B-Instruct").counters
    assert (level.drafted_tokens, level.accepted_tokens) == (want.num_draft_tokens, want.num_accepted_tokens)
    assert cal.counters.num_accepted_tokens == want.num_accepted_tokens

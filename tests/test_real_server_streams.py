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
import os
import subprocess

import pytest

from planner.calibration.server_probe.stats import inter_token_s
from planner.calibration.server_probe.stream import parse_stream
from tests.real_servers.harness import CHECKERS, CHECK_TIMEOUT_S, Release, find_venv, releases

pytestmark = pytest.mark.real_servers

TEXTS = ["The", " draft", " proposes tokens", " and the", " target verifies"]  # 5 chunks ...
TOKENS = 9  # ... of 9 tokens: some chunks carry a whole accepted draft
DRAFTED, ACCEPTED, STEPS = 12, 5, 4


def _sse(release: Release) -> str:
    python, why = find_venv(release)
    if python is None:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
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

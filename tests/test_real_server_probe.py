"""`specplan probe --server` against two real llama-servers on this CPU, end to end, no mocks.

A speculative llama-server (the tiny Q8_0 pair, two slots) runs from the command line
``specplan export --server llamacpp`` writes, and a baseline one from the same line without its
``--spec-*`` flags (the target alone; tests/real_llamacpp/server.py).
The probe loads both at concurrency 1 and 2; the test then reads the servers' own logs
(``draft acceptance = r ( a accepted / g generated)`` and ``eval time = ... / n tokens`` per request,
tools/server/server-context.cpp print_timings, b11312) and checks that the file's drafted / accepted
and token counts are the servers' own, and that `estimate --calibration` shows predicted vs measured
at each concurrency (printed into pytest's output for the note).

With SPECPLAN_RECORD_FIXTURES=1 it also saves one raw stream of each server, /props and /v1/models
under tests/data/server/ (the fixtures of tests/test_server_probe.py).
"""

from __future__ import annotations

import http.client
import json
import os
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from planner.cli import main
from tests.real_llamacpp.models import Pair
from tests.real_llamacpp.server import export_script, serving, version_line, without_draft
from tests.test_real_llamacpp import PROMPTS, device, llama_bin, models, runner_module  # noqa: F401 - fixtures

pytestmark = pytest.mark.real_llamacpp

K = 4
SLOT_CONTEXT = 512  # tokens per slot: prompt + MAX_TOKENS fits with room
CONCURRENCY = (1, 2)
REQUESTS = 4
MAX_TOKENS = 32
DATA = Path(__file__).parent / "data" / "server"
_DRAFT_LINE = re.compile(r"draft acceptance = [0-9.]+ \( *(\d+) accepted / *(\d+) generated\)")
_EVAL_LINE = re.compile(r"(?<!prompt) eval time = [^/\n]*/\s*(\d+) tokens")  # n_gen = timings.predicted_n
_EVAL_RATE = re.compile(r"(?<!prompt) eval time = [^\n]*?([0-9.]+) tokens per second")


@dataclass(frozen=True)
class Servers:
    spec_url: str
    base_url: str
    spec_log: Path
    base_log: Path
    folder: Path
    p_min: float  # what the exported script passes as --spec-draft-p-min


def _exported_p_min(script: Path) -> float:
    text = script.read_text(encoding="utf-8")
    found = re.search(r"--spec-draft-p-min[ =]+([0-9.]+)", text) or re.search(r"LLAMA_ARG_SPEC_DRAFT_P_MIN=['\"]?([0-9.]+)", text)
    assert found, text
    return float(found.group(1))


def _drafts_counter(url: str) -> int:
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=30) as r:
        text = r.read().decode()
    return int(float(re.search(r"^llamacpp:spec_decode_num_drafts_total\s+(\S+)", text, re.MULTILINE).group(1)))


@pytest.fixture(scope="module")
def servers(llama_bin: Path, models: Pair, device, runner_module, tmp_path_factory) -> Iterator[Servers]:  # noqa: F811
    folder = tmp_path_factory.mktemp("server-probe")
    version = version_line(llama_bin)
    batch = max(CONCURRENCY)  # -np slots, so both requests of concurrency 2 decode together
    spec = export_script(runner_module, models, device[0], version, folder, context=SLOT_CONTEXT, k=K, batch=batch,
                         name="spec-serve.sh")
    base = without_draft(spec, "base-serve.sh")
    with ExitStack() as stack:
        # The probe loads one server at a time, so each may use both of this machine's cores.
        # --metrics (by its variable): the probe reads the server's own verification steps there
        sport, _, slog = stack.enter_context(serving(spec, llama_bin, folder, "spec.log", threads=2,
                                                     env_extra={"LLAMA_ARG_ENDPOINT_METRICS": "1"}))
        bport, _, blog = stack.enter_context(serving(base, llama_bin, folder, "base.log", threads=2))
        yield Servers(f"http://127.0.0.1:{sport}", f"http://127.0.0.1:{bport}", slog, blog, folder,
                      _exported_p_min(spec))


def _raw_stream(url: str, prompt: str) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    body = {"prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 0, "stream": True, "ignore_eos": True,
            "stream_options": {"include_usage": True}}
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200, response.read()[:500]
    data = response.read()
    conn.close()
    return data


def _record_fixtures(servers: Servers) -> None:
    """Save what the real servers sent, for the unit tests (only with SPECPLAN_RECORD_FIXTURES=1)."""
    import urllib.request

    DATA.mkdir(parents=True, exist_ok=True)
    (DATA / "llamacpp_b11312_stream.sse").write_bytes(_raw_stream(servers.spec_url, PROMPTS[0]))
    (DATA / "llamacpp_b11312_stream_baseline.sse").write_bytes(_raw_stream(servers.base_url, PROMPTS[0]))
    for path, name in (("/props", "llamacpp_b11312_props.json"), ("/v1/models", "llamacpp_b11312_models.json")):
        with urllib.request.urlopen(servers.spec_url + path, timeout=30) as r:
            (DATA / name).write_bytes(r.read())


def _server_rates(log: Path, offset: int) -> list[float]:
    """The server's own decode rate per request since ``offset`` (its 'eval time' line), tokens/s."""
    text = log.read_bytes()[offset:].decode("utf-8", errors="replace")
    return [float(x) for x in _EVAL_RATE.findall(text)]


def _median(values: list[float]) -> float:
    s = sorted(values)
    return (s[(len(s) - 1) // 2] + s[len(s) // 2]) / 2


def _log_requests(log: Path, offset: int) -> tuple[list[tuple[int, int]], list[int]]:
    """Per request since byte ``offset`` of the server log: (accepted, drafted) pairs and eval tokens."""
    text = log.read_bytes()[offset:].decode("utf-8", errors="replace")
    return [(int(a), int(g)) for a, g in _DRAFT_LINE.findall(text)], [int(n) for n in _EVAL_LINE.findall(text)]


def test_probe_server_against_real_llama_servers(servers: Servers, models: Pair, runner_module, tmp_path: Path,  # noqa: F811
                                                 capsys) -> None:
    if os.environ.get("SPECPLAN_RECORD_FIXTURES") == "1":
        _record_fixtures(servers)
    spec_offset, base_offset = servers.spec_log.stat().st_size, servers.base_log.stat().st_size
    steps_before = _drafts_counter(servers.spec_url)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    out = tmp_path / "calib.yaml"
    result = runner_module.invoke(main, [
        "probe", "--server", servers.spec_url, "--baseline-url", servers.base_url, "--concurrency",
        ",".join(map(str, CONCURRENCY)), "--requests", str(REQUESTS), "--max-tokens", str(MAX_TOKENS),
        "--prompts", str(prompts), "--budget-s", "600", "--timeout-s", "120", "--target", str(models.target_dir),
        "--draft", str(models.draft_dir), "--gpu", "cpu", "--p-min", str(servers.p_min), "-o", str(out),
        "--format", "json"])
    assert result.exit_code == 0, result.output + result.stderr
    cal = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert cal["source"] == "server-probe" and cal["engine"] == "llamacpp" and not cal["partial"], cal["notes"]

    # The servers' own per-request lines; the first request after the offset is the probe's warm-up.
    spec_pairs, spec_eval = _log_requests(servers.spec_log, spec_offset)
    base_pairs, base_eval = _log_requests(servers.base_log, base_offset)
    n = len(CONCURRENCY) * REQUESTS
    assert len(spec_pairs) == len(spec_eval) == n + 1 and len(base_eval) == n + 1 and not base_pairs
    accepted = sum(a for a, _ in spec_pairs[1:])
    drafted = sum(g for _, g in spec_pairs[1:])
    loads = cal["loads"]
    assert [lv["concurrency"] for lv in loads] == list(CONCURRENCY)
    assert sum(lv["drafted_tokens"] for lv in loads) == drafted == cal["counters"]["num_draft_tokens"]
    assert sum(lv["accepted_tokens"] for lv in loads) == accepted == cal["counters"]["num_accepted_tokens"]
    # Tokens counted are the servers' own predicted_n (the log's eval tokens, stats.n_gen).
    assert sum(lv["output_tokens"] for lv in loads) == sum(spec_eval[1:])
    assert sum(lv["baseline_output_tokens"] for lv in loads) == sum(base_eval[1:])
    for lv in loads:
        assert lv["requests_completed"] == REQUESTS and lv["token_count_source"] in ("timings.predicted_n",
                                                                                    "usage.completion_tokens")
        assert lv["output_tokens"] == REQUESTS * MAX_TOKENS  # ignore_eos: every request decodes max_tokens
        assert lv["measured_speedup_per_sequence"] > 0 and lv["measured_speedup_total"] > 0
        assert lv["ttft_s_median"] > 0 and lv["itl_s_median"] > 0
    fitted = cal["fitted_acceptance"][0]
    assert fitted["mode"] == "server" and fitted["k"] == K  # k: the width of the server's per-position series
    # The server's own verification steps (its /metrics around each level), warm-up excluded: the test's own
    # scrapes span the warm-up too, whose steps each drafted at least one token.
    steps = sum(lv["verification_steps"] for lv in loads)
    assert steps == cal["counters"]["num_drafts"] == fitted["rounds"]
    # Per-position acceptance from the same /metrics differences: the steps that accepted position i sum,
    # over positions, to the accepted tokens the streams' timings count.
    for lv in loads:
        assert len(lv["accepted_per_position"]) == K and sum(lv["accepted_per_position"]) == lv["accepted_tokens"]
    assert len(fitted["per_position"]) >= 1 and cal["counters"]["accepted_per_position"] == [
        sum(col) for col in zip(*(lv["accepted_per_position"] for lv in loads))]
    warm_drafted = spec_pairs[0][1]
    assert 0 <= _drafts_counter(servers.spec_url) - steps_before - steps <= warm_drafted

    est = runner_module.invoke(main, [
        "estimate", "--target", str(models.target_dir), "--draft", str(models.draft_dir), "--gpu", "cpu", "--engine",
        "llamacpp", "--precision", "q8_0", "--context", str(SLOT_CONTEXT), "--k", str(K), "--calibration", str(out),
        "--format", "json"])
    assert est.exit_code == 0, est.stderr
    rows = json.loads(est.stdout)["calibration"]["loads"]["rows"]
    assert [r["concurrency"] for r in rows] == list(CONCURRENCY)
    text = runner_module.invoke(main, [
        "estimate", "--target", str(models.target_dir), "--draft", str(models.draft_dir), "--gpu", "cpu", "--engine",
        "llamacpp", "--precision", "q8_0", "--context", str(SLOT_CONTEXT), "--k", str(K), "--calibration", str(out)])
    assert text.exit_code == 0 and "Predicted vs measured per load" in text.stdout, text.stdout + text.stderr
    report = [f"\nprobe --server on this CPU (llama-server b11312, tiny Q8_0 pair, k={K}, {REQUESTS} requests x "
              f"{MAX_TOKENS} tokens per level, load {os.getloadavg()[0]:.1f}): accepted {accepted} of {drafted} drafted"]
    spec_rates, base_rates = _server_rates(servers.spec_log, spec_offset)[1:], _server_rates(servers.base_log, base_offset)[1:]
    for i, (r, lv) in enumerate(zip(rows, loads)):
        own = (_median(spec_rates[i * REQUESTS:(i + 1) * REQUESTS]), _median(base_rates[i * REQUESTS:(i + 1) * REQUESTS]))
        report.append(
            f"  concurrency {r['concurrency']}: tokens/s per sequence predicted {r['predicted_tokens_per_s_per_sequence']:.1f}"
            f" measured {r['measured_tokens_per_s_per_sequence']:.1f} (baseline predicted "
            f"{r['predicted_baseline_tokens_per_s_per_sequence']:.1f}, measured {r['measured_baseline_tokens_per_s_per_sequence']:.1f});"
            f" total predicted {r['predicted_total_tokens_per_s']:.1f} measured {r['measured_total_tokens_per_s']:.1f};"
            f" speedup predicted {r['predicted_speedup']:.2f}x measured {r['measured_speedup_per_sequence']:.2f}x per "
            f"sequence, {r['measured_speedup_total']:.2f}x total; TTFT median {lv['ttft_s_median'] * 1000:.1f} ms, "
            f"ITL median {lv['itl_s_median'] * 1000:.2f} ms, {lv['tokens_per_chunk']:.2f} tokens per chunk; the servers' "
            f"own eval rate (log, median) {own[0]:.1f} spec / {own[1]:.1f} baseline tokens/s")
    with capsys.disabled():
        print("\n".join(report))
        print(text.stdout)

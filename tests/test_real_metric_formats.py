"""specplan's /metrics readers on text rendered by the servers' own metric code.

vLLM and SGLang cannot serve on this machine (no GPU), so the probe paths are tested on their
real metric formats instead: tests/real_servers/render_metrics.py runs inside each release's
CPU-only venv (``bash .ci/server_venvs.sh``), builds that release's own collectors (vLLM's
SpecDecodingProm, and V0's PrometheusStatLogger where the release has one; SGLang's
SchedulerMetricsCollector and TokenizerMetricsCollector), feeds them known statistics and
renders them with prometheus_client. The readers (vllm_counters / vllm_calibration,
sglang_calibration) must read back exactly the counts that were fed.

``SPECPLAN_WRITE_METRIC_FIXTURES=1`` also writes the rendered texts to tests/data/server/
(sglang_<version>_*.prom, vllm_v1_<version>_*.prom, vllm_v0_<version>_*.prom), which the unit tests read.

Without the venvs the tests skip, except under CI=true, where their absence fails.
"""

from __future__ import annotations

import json
import os
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

from planner.calibration.sglang_metrics import sglang_calibration
from planner.calibration.server_metrics import vllm_calibration
from planner.calibration.vllm_metrics import snapshot_delta, vllm_counters
from planner.errors import SpecplanError
from planner.speedup import alpha_from_acceptance_rate
from tests.real_servers.harness import CHECK_TIMEOUT_S, ROOT, Release, releases, venv_python
from tests.real_servers.hub import add_model

pytestmark = pytest.mark.real_servers

SCRIPT = ROOT / "tests" / "real_servers" / "render_metrics.py"
FIXTURES = ROOT / "tests" / "data" / "server"
TARGET, DRAFT = "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"  # render_metrics.SGLANG_TARGET/DRAFT
# Families kept in a fixture: the ones the readers use and a few they must skip past.
FIXTURE_FAMILIES = ("vllm:spec_decode", "sglang:spec_", "sglang:generation_tokens", "sglang:num_requests",
                    "sglang:prompt_tokens", "sglang:num_running_reqs")


@lru_cache(maxsize=None)
def _rendered(release: Release, work: str) -> dict:
    python = venv_python(release)
    hub = Path(work) / "hub"
    for repo_id in (TARGET, DRAFT):
        add_model(hub, repo_id)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": work, "LANG": "C.UTF-8", "TMPDIR": work,
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_CACHE": str(hub), "HF_HOME": f"{work}/hf",
           "CUDA_VISIBLE_DEVICES": "", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([str(python), str(SCRIPT)], env=env, cwd=work, capture_output=True, text=True,
                          timeout=CHECK_TIMEOUT_S)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, f"render_metrics.py failed in {release.name}:\n{proc.stderr[-6000:]}"
    report = json.loads(lines[-1])
    assert report["version"] == release.version
    for rendered in report["sets"]:
        print(f"{release.name} {rendered['name']} ({', '.join(rendered['classes'])}): "
              + (rendered["error"] if rendered.get("absent") else
                 f"could not be built: {rendered['error']}" if "error" in rendered else
                 "exposes " + ", ".join(f"{n} ({t})" for n, t in rendered["exposes"].items()
                                        if n.startswith(FIXTURE_FAMILIES))))
    if os.environ.get("SPECPLAN_WRITE_METRIC_FIXTURES") == "1":
        _write_fixtures(release, report)
    return report


def _keep_families(text: str) -> str:
    """The text with only FIXTURE_FAMILIES' lines (HELP, TYPE and samples), in rendered order."""
    def name_of(line: str) -> str:
        return line.split(" ")[2] if line.startswith("# ") else line.split("{")[0].split(" ")[0]
    return "".join(line + "\n" for line in text.splitlines()
                   if line and name_of(line).startswith(FIXTURE_FAMILIES) and "_histogram" not in name_of(line))


def _write_fixtures(release: Release, report: dict) -> None:
    for rendered in report["sets"]:
        if "error" in rendered:
            continue
        for scrape in ("before", "after"):
            stem = rendered["name"].removesuffix("-collectors").replace("-", "_")
            path = FIXTURES / f"{stem}_{release.version}_{scrape}.prom"
            header = (f"# Rendered by tests/real_servers/render_metrics.py in {release.name} (CPU venv): "
                      f"{', '.join(rendered['classes'])} fed {json.dumps(rendered['fed'])}; the {scrape} scrape. "
                      + (f"Setup: {rendered['setup']}; environment {json.dumps(report['environment'])}. "
                         if rendered.get("setup") else "")
                      + f"Only the families {', '.join(FIXTURE_FAMILIES)} are kept, histograms left out.\n")
            path.write_text(header + _keep_families(rendered[scrape]), encoding="utf-8")


def _set(report: dict, name: str) -> dict:
    rendered = next(r for r in report["sets"] if r["name"] == name)
    assert "error" not in rendered, f"{name}: {rendered['error']}\n{rendered.get('traceback', '')}"
    return rendered


def _releases(server: str) -> list:
    return [pytest.param(r, id=r.name) for r in releases(server)]


@pytest.mark.parametrize("release", _releases("sglang"))
def test_sglang_reader_reads_back_what_sglang_rendered(release: Release, tmp_path_factory) -> None:
    report = _rendered(release, str(tmp_path_factory.mktemp(release.name)))
    rendered = _set(report, "sglang-collectors")
    fed, exposes = rendered["fed"], rendered["exposes"]
    assert exposes["sglang:spec_accept_length"] == "gauge"
    k = fed["k"]
    if "verify_calls" in fed:  # 0.5.23: a counter window
        assert exposes["sglang:spec_verify_calls"] == exposes["sglang:generation_tokens"] == "counter"
        assert exposes["sglang:spec_accept_rate"] == exposes["sglang:spec_num_steps"] == "gauge"
        cal = sglang_calibration(rendered["before"], rendered["after"], None, TARGET, DRAFT)
        c = cal.counters
        assert (c.num_drafts, c.num_accepted_tokens, c.num_draft_tokens, c.k) == (
            fed["verify_calls"], fed["accepted"], k * fed["verify_calls"], k)
        rate = fed["accepted"] / (k * fed["verify_calls"])
    else:  # 0.5.3: the gauge only, and k must be given
        assert "sglang:spec_verify_calls" not in exposes
        with pytest.raises(SpecplanError, match="--k"):
            sglang_calibration(rendered["before"], rendered["after"], None, TARGET, DRAFT)
        cal = sglang_calibration(rendered["before"], rendered["after"], k, TARGET, DRAFT)
        assert cal.counters is None
        rate = (fed["gauges"]["spec_accept_length"] - 1) / k
    assert cal.source == "sglang-metrics" and cal.engine == "sglang"
    assert cal.fitted_acceptance[0].alpha == pytest.approx(float(alpha_from_acceptance_rate(rate, k)), abs=1e-12)
    print(f"{release.name}: alpha {cal.fitted_acceptance[0].alpha:.4f} from rate {rate:.4f} at k={k}")


@pytest.mark.parametrize("release", _releases("vllm"))
def test_vllm_reader_reads_back_what_vllm_rendered(release: Release, tmp_path_factory) -> None:
    report = _rendered(release, str(tmp_path_factory.mktemp(release.name)))
    assert any(r["name"] == "vllm-v1" for r in report["sets"])
    for rendered in report["sets"]:
        if rendered.get("absent"):  # V0 is gone from 0.33.0; 0.9.2 must still have it
            assert release.version != "0.9.2", rendered["error"]
            continue
        rendered = _set(report, rendered["name"])
        fed = rendered["fed"]
        before = vllm_counters(rendered["before"], origin="before")
        after = vllm_counters(rendered["after"], origin="after")
        got = snapshot_delta(before, after, "before", "after")
        for key in ("num_drafts", "num_draft_tokens", "num_accepted_tokens", "accepted_per_position",
                    "num_emitted_tokens"):
            if key in fed:
                value = getattr(got, key)
                assert (list(value) if isinstance(value, tuple) else value) == fed[key], (rendered["name"], key)
        if "lifetime_at_after" in fed:  # V0: the counters grow by lifetime totals at every logging interval
            print(f"{release.name} {rendered['name']}: window read {fed['num_draft_tokens']} draft tokens; "
                  f"lifetime totals at the after scrape {fed['lifetime_at_after']}")
        cal = vllm_calibration(rendered["before"], rendered["after"], fed["k"], TARGET, DRAFT)
        assert cal.counters.num_draft_tokens == fed["num_draft_tokens"]
        print(f"{release.name} {rendered['name']}: alpha {cal.fitted_acceptance[0].alpha:.4f}")

"""SGLang /metrics -> calibration, on texts SGLang 0.5.23 and 0.5.3's own collectors rendered.

The fixtures (tests/data/server/sglang_<version>_{before,after}.prom) were written by
tests/test_real_metric_formats.py from tests/real_servers/render_metrics.py; their first line
says what was fed: k = 3, a window of 10 verification steps, 15 accepted drafts, 3 requests
(28 generated tokens); the gauges of the last logging interval say accept length 2.5.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.calibration.schema import read_calibration, write_calibration
from planner.calibration.sglang_metrics import sglang_calibration, sglang_counters
from planner.cli import main
from planner.errors import SpecplanError
from planner.speedup import alpha_from_acceptance_rate

DATA = Path(__file__).parent / "data" / "server"
TARGET, DRAFT = "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"
V, A, K = 10, 15, 3


def text(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def window(version: str = "0.5.23", k: int | None = None, **kwargs):
    return sglang_calibration(text(f"sglang_{version}_before.prom"), text(f"sglang_{version}_after.prom"), k,
                              TARGET, DRAFT, **kwargs)


def error(excinfo: pytest.ExceptionInfo[SpecplanError]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_one_scrape_sums_label_sets_and_reads_gauges():
    snap = sglang_counters(text("sglang_0.5.23_after.prom"))
    # 4 requests in all: 14 verification steps, 11 + 28 generated tokens over is_streaming false/true.
    assert (snap.verify_calls, snap.generation_tokens, snap.num_requests) == (14, 39, 4)
    assert snap.accept_length == (2.5,) and snap.accept_rate == (0.5,) and snap.num_steps == (3.0,)
    assert snap.model_names == (TARGET,)


def test_0_5_23_window_counts_and_alpha():
    cal = window()
    assert cal.source == "sglang-metrics" and cal.engine == "sglang"
    c = cal.counters
    assert (c.num_drafts, c.num_draft_tokens, c.num_accepted_tokens, c.k) == (V, K * V, A, K)
    fit = cal.fitted_acceptance[0]
    assert fit.alpha == pytest.approx(float(alpha_from_acceptance_rate(A / (K * V), K)), abs=1e-12)
    assert fit.alpha_low < fit.alpha < fit.alpha_high and fit.rounds == V and fit.k == K


def test_window_notes_separate_counters_from_gauges():
    notes = "\n".join(window().notes)
    assert "k = 3 from the sglang:spec_num_steps gauge" in notes
    assert "(G - N) / V" in notes and ": 2.5000;" in notes  # (28 - 3) / 10
    assert "completion_tokens / spec_verify_ct over the window: 2.8000" in notes  # SGLang's own, prefill token kept
    assert "last logging interval, not the window" in notes and "cross-check only" in notes


def test_k_given_must_match_the_num_steps_gauge():
    assert window(k=3).counters.k == 3
    with pytest.raises(SpecplanError) as excinfo:
        window(k=4)
    assert "sglang:spec_num_steps" in error(excinfo)


def test_0_5_3_has_only_the_gauge_and_needs_k():
    with pytest.raises(SpecplanError) as excinfo:
        window("0.5.3")
    assert "--k" in error(excinfo)
    cal = window("0.5.3", k=K)
    assert cal.counters is None
    fit = cal.fitted_acceptance[0]
    assert fit.alpha == pytest.approx(float(alpha_from_acceptance_rate((2.5 - 1) / K, K)), abs=1e-12)
    assert fit.alpha_low < fit.alpha < fit.alpha_high
    assert cal.notes[0].startswith("the after scrape's gauges only; the before scrape adds nothing")
    notes = "\n".join(cal.notes)
    assert "no counter window" in notes and "used for alpha" in notes and "not the window" in notes


def test_gauge_outside_one_to_k_plus_one_is_refused():
    with pytest.raises(SpecplanError) as excinfo:
        window("0.5.3", k=1)  # accept length 2.5 > k + 1 = 2
    assert "check --k" in error(excinfo)


def test_single_scrape_is_cumulative_and_says_so():
    cal = sglang_calibration(None, text("sglang_0.5.23_after.prom"), None, TARGET, DRAFT)
    assert cal.counters.num_drafts == 14 and cal.counters.num_accepted_tokens == 39 - 4 - 14
    assert "cumulative since the server started" in cal.notes[0]


def test_before_scrape_of_a_fresh_server_reads_as_zero():
    # A labelled prometheus_client metric without children renders its HELP and TYPE lines only.
    fresh = "".join(line + "\n" for line in text("sglang_0.5.23_after.prom").splitlines() if line.startswith("#"))
    cal = sglang_calibration(fresh, text("sglang_0.5.23_after.prom"), None, TARGET, DRAFT)
    assert cal.counters.num_drafts == 14
    with pytest.raises(SpecplanError) as excinfo:
        sglang_calibration(None, fresh, None, TARGET, DRAFT)
    assert "--enable-metrics" in error(excinfo)


def test_counters_going_down_mean_a_restart():
    with pytest.raises(SpecplanError) as excinfo:
        sglang_calibration(text("sglang_0.5.23_after.prom"), text("sglang_0.5.23_before.prom"), None, TARGET, DRAFT)
    assert "restarted" in error(excinfo)


def test_empty_window_is_refused():
    after = text("sglang_0.5.23_after.prom")
    with pytest.raises(SpecplanError) as excinfo:
        sglang_calibration(after, after, None, TARGET, DRAFT)
    assert "no verification step" in error(excinfo)


def test_model_name_filter():
    assert window(model_name=TARGET).counters.num_drafts == V
    with pytest.raises(SpecplanError) as excinfo:
        window(model_name="nope")
    assert TARGET in error(excinfo)
    samples = [line for line in text("sglang_0.5.23_after.prom").splitlines() if not line.startswith("#")]
    two = "\n".join(samples + [line.replace(TARGET, "other") for line in samples]) + "\n"  # untyped, one server
    with pytest.raises(SpecplanError) as excinfo:
        sglang_counters(two)
    assert "2 models" in error(excinfo)
    assert sglang_counters(two, model_name="other").verify_calls == 14


def test_vllm_text_is_not_sglang():
    with pytest.raises(SpecplanError) as excinfo:
        sglang_counters(text("vllm_v1_after.prom"), origin="vllm.prom")
    assert error(excinfo).startswith("vllm.prom has no sglang:spec_verify_calls_total")


def test_file_round_trips(tmp_path):
    cal = window()
    write_calibration(cal, tmp_path / "c.yaml")
    assert read_calibration(tmp_path / "c.yaml") == cal


def test_cli_calibrate_sglang_metrics(runner, tmp_path):
    out = tmp_path / "cal.yaml"
    result = runner.invoke(main, ["calibrate", "--sglang-metrics-before", str(DATA / "sglang_0.5.23_before.prom"),
                                  "--sglang-metrics", str(DATA / "sglang_0.5.23_after.prom"), "--target", TARGET,
                                  "--draft", DRAFT, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert read_calibration(out).counters.num_drafts == V


@pytest.mark.parametrize("flags", [
    ["--sglang-metrics", "a.prom", "--vllm-metrics", "b.prom"],
    ["--sglang-metrics-before", str(DATA / "sglang_0.5.23_before.prom")],
    ["--sglang-metrics", str(DATA / "sglang_0.5.3_after.prom")],  # 0.5.3 without --k
    ["--sglang-metrics", str(DATA / "nope.prom")],
])
def test_cli_errors_are_one_line_exit_2(runner, tmp_path, flags):
    result = runner.invoke(main, ["calibrate", *flags, "--target", TARGET, "--draft", DRAFT,
                                  "-o", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("specplan: error: ") and result.stderr.count("\n") == 1, result.stderr

"""Server metrics -> calibration: recorded vLLM /metrics dumps and llama.cpp outputs, sums by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.calibration.schema import read_calibration, write_calibration
from planner.calibration.server_metrics import (
    llamacpp_calibration,
    read_text_source,
    vllm_calibration,
    vllm_counters,
)
from planner.errors import SpecplanError
from planner.speedup import acceptance_rate_from_alpha, alpha_from_acceptance_rate, expected_accepted_length

DATA = Path(__file__).parent / "data" / "server"
MODEL = "meta-llama/Llama-3.1-70B-Instruct"
DRAFT = "meta-llama/Llama-3.2-1B-Instruct"

# The recorded V1 window (after - before, engines 0 and 1 summed), worked out by hand from the dumps.
S, D, A = 8000, 32000, 15221
PER_POS = [6430, 4480, 2786, 1525]


def text(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def v1_window(**kwargs):
    return vllm_calibration(text("vllm_v1_before.prom"), text("vllm_v1_after.prom"), kwargs.pop("k", None),
                            MODEL, DRAFT, **kwargs)


def one_line_error(excinfo: pytest.ExceptionInfo[SpecplanError]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# --- reading sources ---------------------------------------------------------------------------


def test_read_text_source_reads_a_file():
    assert read_text_source(str(DATA / "vllm_v0.prom")) == text("vllm_v0.prom")


def test_read_text_source_missing_file_names_it(tmp_path):
    missing = tmp_path / "metrics.txt"
    with pytest.raises(SpecplanError) as excinfo:
        read_text_source(str(missing))
    assert str(missing) in one_line_error(excinfo)


@pytest.mark.parametrize("url, why", [("ftp://host/metrics", "expected an http:// or https:// URL"),
                                      ("http://[::1/metrics", "not a URL"), ("http://ex ample/metrics", "without spaces"),
                                      ("http://h\u00e9/metrics", "printable ASCII"), ("http://h:99999/metrics", "port")])
def test_read_text_source_refuses_what_is_not_an_http_url(url, why):
    with pytest.raises(SpecplanError, match=why):
        read_text_source(url, "--vllm-metrics")


# --- vLLM: one scrape --------------------------------------------------------------------------


def test_v1_scrape_sums_engines_and_ignores_created_and_other_metrics():
    after = vllm_counters(text("vllm_v1_after.prom"))
    assert after.version == "v1"
    # engine 0 + engine 1, read off the dump
    assert after.num_drafts == 17000 + 14000
    assert after.num_draft_tokens == 68000 + 56000
    assert after.num_accepted_tokens == 31991 + 26530
    assert after.accepted_per_position == (13500 + 11230, 9400 + 7780, 5836 + 4850, 3255 + 2670)
    assert after.model_names == (MODEL,)
    before = vllm_counters(text("vllm_v1_before.prom"))
    assert (before.num_drafts, before.num_draft_tokens, before.num_accepted_tokens) == (23000, 92000, 43300)


def test_counter_names_with_or_without_type_lines_read_the_same():
    typed = "\n".join([
        "# HELP vllm:spec_decode_num_drafts_total Number of spec decoding drafts.",
        "# TYPE vllm:spec_decode_num_drafts_total counter",
        'vllm:spec_decode_num_drafts_total{engine="0",model_name="m"} 10.0',
        "# HELP vllm:spec_decode_num_draft_tokens_total Number of draft tokens.",
        "# TYPE vllm:spec_decode_num_draft_tokens_total counter",
        'vllm:spec_decode_num_draft_tokens_total{engine="0",model_name="m"} 30.0',
        "# HELP vllm:spec_decode_num_accepted_tokens_total Number of accepted tokens.",
        "# TYPE vllm:spec_decode_num_accepted_tokens_total counter",
        'vllm:spec_decode_num_accepted_tokens_total{engine="0",model_name="m"} 12.0',
    ]) + "\n"
    # No TYPE lines: the parser keeps the _total in the family name ("unknown" type).
    untyped = "\n".join(line for line in typed.splitlines() if not line.startswith("#")) + "\n"
    for dump in (typed, untyped):
        snap = vllm_counters(dump)
        assert (snap.num_drafts, snap.num_draft_tokens, snap.num_accepted_tokens) == (10, 30, 12)
        assert snap.accepted_per_position is None


def test_model_name_filter():
    dump = text("vllm_v1_two_models.prom")
    big = vllm_counters(dump, model_name="Qwen/Qwen2.5-32B-Instruct")
    small = vllm_counters(dump, model_name="Qwen/Qwen2.5-7B-Instruct")
    assert (big.num_drafts, big.num_draft_tokens, big.num_accepted_tokens) == (2000, 6000, 3300)
    assert (small.num_drafts, small.num_draft_tokens, small.num_accepted_tokens) == (1000, 3000, 1200)
    assert vllm_counters(text("vllm_v1_after.prom"), model_name=MODEL) == vllm_counters(text("vllm_v1_after.prom"))


def test_several_models_without_a_filter_are_refused_not_mixed():
    with pytest.raises(SpecplanError) as excinfo:
        vllm_counters(text("vllm_v1_two_models.prom"), origin="two.prom")
    message = one_line_error(excinfo)
    assert "two.prom" in message and "Qwen/Qwen2.5-32B-Instruct" in message and "Qwen/Qwen2.5-7B-Instruct" in message


def test_unknown_model_name_lists_the_models_found():
    with pytest.raises(SpecplanError, match=r"no vllm:spec_decode_\* metrics for model_name 'nope'.*Llama-3.1-70B"):
        vllm_counters(text("vllm_v1_after.prom"), model_name="nope")


def test_missing_spec_decode_metrics():
    with pytest.raises(SpecplanError) as excinfo:
        vllm_counters(text("vllm_no_spec.prom"), origin="http://gpu1:8000/metrics")
    assert one_line_error(excinfo) == (
        "http://gpu1:8000/metrics has no vllm:spec_decode_* metrics: is speculative decoding enabled?"
    )


def test_not_prometheus_text():
    with pytest.raises(SpecplanError, match=r"^scrape\.txt: not Prometheus text"):
        vllm_counters("<html><body>404 not found</body></html>\n{{{\n", origin="scrape.txt")


# --- vLLM: a window of two scrapes -------------------------------------------------------------


def test_v1_window_counters_and_inferred_k():
    cal = v1_window(window_s=600)
    assert cal.source == "vllm-metrics" and cal.engine == "vllm"
    assert cal.target.id == MODEL and cal.draft is not None and cal.draft.id == DRAFT
    c = cal.counters
    assert c is not None
    assert (c.num_drafts, c.num_draft_tokens, c.num_accepted_tokens) == (S, D, A)
    assert c.accepted_per_position == PER_POS
    assert sum(PER_POS) == A and D == 4 * S  # the fixture is self-consistent
    assert c.k == 4 and c.window_s == 600
    assert any("inferred from the 4 per-position series" in n for n in cal.notes)
    assert any("deltas between two scrapes" in n for n in cal.notes)


def test_v1_window_rate_alpha_and_interval():
    fit = v1_window().fitted_acceptance[0]
    rate = A / D
    assert fit.mode == "server" and fit.k == 4 and fit.rounds == S
    assert fit.alpha == pytest.approx(float(alpha_from_acceptance_rate(rate, 4)), abs=1e-12)
    assert fit.alpha > rate  # per-token alpha exceeds accepted/proposed whenever 0 < alpha < 1 and k > 1
    assert float(acceptance_rate_from_alpha(fit.alpha, 4)) == pytest.approx(rate, abs=1e-12)
    # with full drafts (D = k S) the fitted alpha reproduces the measured mean acceptance length 1 + A/S
    assert float(expected_accepted_length(fit.alpha, 4)) == pytest.approx(1 + A / S, abs=1e-9)
    assert fit.alpha_low < fit.alpha < fit.alpha_high
    assert fit.alpha_high - fit.alpha_low < 0.05  # 8000 rounds pin alpha down to a few hundredths


def test_v1_window_notes_label_the_two_rates():
    notes = v1_window().notes
    assert any(n.startswith("draft acceptance rate (accepted / proposed") and f"{A / D:.4f} = {A} / {D}" in n
               for n in notes)
    assert any(n.startswith("mean acceptance length") and f"{1 + A / S:.4f}" in n for n in notes)
    rejected_rounds = S - PER_POS[-1]  # rounds that did not accept all k drafts
    mle = A / (A + rejected_rounds)
    assert any("MLE" in n and f"alpha = {mle:.4f}" in n and f"R = {rejected_rounds}" in n for n in notes)


def test_v1_window_per_position_conditional_rates():
    fit = v1_window().fitted_acceptance[0]
    by_hand = [6430 / 8000, 4480 / 6430, 2786 / 4480, 1525 / 2786]
    assert fit.per_position == pytest.approx(by_hand, abs=1e-12)
    assert fit.decays_with_position  # 0.804 -> 0.547
    assert fit.geometric_p_value is not None and fit.geometric_p_value < 1e-6  # decaying rates are not geometric


def test_k_given_must_match_per_position_series():
    assert v1_window(k=4).fitted_acceptance[0].k == 4
    with pytest.raises(SpecplanError, match=r"k=5 was given but the server exposes 4 per-position series"):
        v1_window(k=5)


def test_k_inferred_from_draft_tokens_per_draft():
    cal = vllm_calibration(None, text("vllm_v1_two_models.prom"), None, "Qwen/Qwen2.5-32B-Instruct", None,
                           model_name="Qwen/Qwen2.5-32B-Instruct")
    fit = cal.fitted_acceptance[0]
    assert fit.k == 3 and fit.per_position == [] and not fit.decays_with_position
    assert fit.alpha == pytest.approx(float(alpha_from_acceptance_rate(3300 / 6000, 3)), abs=1e-12)
    assert fit.alpha_low < fit.alpha < fit.alpha_high
    assert cal.draft is None


def test_single_scrape_is_cumulative_and_says_so():
    cal = vllm_calibration(None, text("vllm_v1_after.prom"), None, MODEL, DRAFT)
    c = cal.counters
    assert c is not None and (c.num_drafts, c.num_draft_tokens, c.num_accepted_tokens) == (31000, 124000, 58521)
    assert any("cumulative since the server started" in n for n in cal.notes)


def test_negative_delta_means_a_restart():
    with pytest.raises(SpecplanError) as excinfo:
        vllm_calibration(text("vllm_v1_after.prom"), text("vllm_v1_before.prom"), None, MODEL, DRAFT,
                         before_origin="a.prom", after_origin="b.prom")
    message = one_line_error(excinfo)
    assert "went down" in message and "restarted" in message and "a.prom" in message and "b.prom" in message


def test_empty_window_is_refused():
    after = text("vllm_v1_after.prom")
    with pytest.raises(SpecplanError, match="no draft tokens were proposed in the window"):
        vllm_calibration(after, after, None, MODEL, DRAFT)


def test_v0_dump():
    snap = vllm_counters(text("vllm_v0.prom"))
    assert snap.version == "v0" and snap.num_drafts is None and snap.accepted_per_position is None
    assert (snap.num_draft_tokens, snap.num_accepted_tokens, snap.num_emitted_tokens) == (50000, 33000, 26980)
    assert snap.draft_acceptance_rate == pytest.approx(0.66)

    cal = vllm_calibration(None, text("vllm_v0.prom"), 5, "meta-llama/Meta-Llama-3-70B-Instruct", None)
    c, fit = cal.counters, cal.fitted_acceptance[0]
    steps = 50000 // 5
    prefix = 26980 - steps  # each step emits its accepted prefix plus one token
    assert c is not None and (c.num_drafts, c.num_accepted_tokens, c.num_draft_tokens) == (steps, prefix, 50000)
    assert fit.alpha == pytest.approx(float(alpha_from_acceptance_rate(prefix / 50000, 5)), abs=1e-12)
    # V0 counted accepts at every position, so its own A/D already estimates alpha: the two agree here
    assert fit.alpha == pytest.approx(33000 / 50000, abs=2e-3)
    assert fit.alpha_low < fit.alpha < fit.alpha_high


def test_v0_needs_k():
    with pytest.raises(SpecplanError, match=r"pass --k"):
        vllm_calibration(None, text("vllm_v0.prom"), None, "t", None)
    with pytest.raises(SpecplanError, match=r"not a multiple of k=3"):
        vllm_calibration(None, text("vllm_v0.prom"), 3, "t", None)


# --- llama.cpp ---------------------------------------------------------------------------------


def llama(names: list[str], k: int | None = 8):
    return llamacpp_calibration([text(n) for n in names], k, "qwen2.5-32b", "qwen2.5-0.5b", names)


def test_llamacpp_completion_json():
    cal = llama(["llamacpp_completion.json"])
    assert cal.source == "llamacpp" and cal.engine == "llamacpp"
    c, fit = cal.counters, cal.fitted_acceptance[0]
    assert c is not None and (c.num_accepted_tokens, c.num_draft_tokens) == (187, 312)
    # Issue 10: responses carry no verification-step count, and predicted_n - draft_n_accepted
    # over-counts it (steps without a draft, the first token): rounds stay unknown, the bound is noted.
    assert c.num_drafts is None and fit.rounds is None and fit.drafted_per_round is None
    assert any("at most 68" in n for n in cal.notes)  # 256 - 187 - 1
    assert fit.mode == "server" and fit.k == 8
    # The response states speculative.p_min 0.75: alpha goes through llama.cpp's p-min loop
    # (issue 9 point 3), below the fixed-k reading at k = 8.
    from planner.draftloop import alpha_from_loop_counts, engine_loop

    assert fit.p_min == 0.75
    loop = alpha_from_loop_counts(engine_loop("llamacpp", p_min=0.75), 187 / 312, 8)
    assert fit.alpha == pytest.approx(loop.alpha, abs=1e-9)
    assert fit.alpha < float(alpha_from_acceptance_rate(187 / 312, 8))
    assert fit.alpha > 187 / 312 and fit.alpha_low <= fit.alpha <= fit.alpha_high
    assert any("p_min" in n for n in cal.notes)


def test_llamacpp_json_lines_and_lists_sum_over_responses():
    cal = llama(["llamacpp_chat.jsonl"])
    c = cal.counters
    assert c is not None
    assert (c.num_accepted_tokens, c.num_draft_tokens, c.num_drafts) == (121 + 52, 210 + 104, None)
    assert any(f"at most {(180 - 121 - 1) + (95 - 52 - 1)}" in n for n in cal.notes)
    responses = [json.loads(line) for line in text("llamacpp_chat.jsonl").splitlines()]
    as_list = llamacpp_calibration([json.dumps(responses)], 8, "t", None, "list.json")
    assert as_list.counters == c


def test_llamacpp_stream_counts_the_last_timings_only():
    # each chunk carries the running totals, so summing the chunks would count tokens twice
    chunks = [{"choices": [{"delta": {"content": "a"}}],
               "timings": {"predicted_n": n, "draft_n": d, "draft_n_accepted": a}}
              for n, d, a in [(10, 12, 7), (40, 50, 28), (64, 80, 45)]]
    stream = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"
    cal = llamacpp_calibration([stream], 8, "t", None, "stream.txt")
    c = cal.counters
    assert c is not None and (c.num_accepted_tokens, c.num_draft_tokens, c.num_drafts) == (45, 80, None)
    assert any(f"at most {64 - 45 - 1}" in n for n in cal.notes)


def test_llamacpp_server_log():
    cal = llama(["llama_server.log"])
    c = cal.counters
    assert c is not None
    assert (c.num_accepted_tokens, c.num_draft_tokens) == (187 + 171, 312 + 297)
    assert c.num_drafts is None and cal.fitted_acceptance[0].rounds is None  # a log does not give steps
    assert cal.fitted_acceptance[0].alpha == pytest.approx(float(alpha_from_acceptance_rate(358 / 609, 8)))


def test_llamacpp_log_with_bracketed_timestamps_is_not_json():
    log = "[2026-07-10 12:00:01] draft acceptance rate = 0.50000 (   10 accepted /    20 generated)\n"
    c = llamacpp_calibration([log], 4, "t", None, "ts.log").counters
    assert c is not None and (c.num_accepted_tokens, c.num_draft_tokens) == (10, 20)


def test_llama_speculative_output():
    cal = llama(["llama_speculative.txt"], k=16)
    c = cal.counters
    assert c is not None and (c.num_accepted_tokens, c.num_draft_tokens, c.num_drafts) == (198, 340, 262 - 198)
    assert not any("n_draft = 16 but" in n for n in cal.notes)
    mismatched = llama(["llama_speculative.txt"], k=8)
    assert any("printed n_draft = 16 but k=8" in n for n in mismatched.notes)
    assert mismatched.fitted_acceptance[0].k == 16  # issue 10: the output's k wins over --k


def test_llamacpp_several_files_sum():
    cal = llama(["llamacpp_completion.json", "llamacpp_chat.jsonl"])
    c = cal.counters
    assert c is not None
    assert (c.num_accepted_tokens, c.num_draft_tokens) == (187 + 121 + 52, 312 + 210 + 104)
    assert sum(n.startswith(("llamacpp_completion.json:", "llamacpp_chat.jsonl:")) for n in cal.notes) == 2
    # issue 10: the log's first request is the saved completion (187 / 312): the log alone is counted
    both = llama(["llamacpp_completion.json", "llama_server.log"])
    assert (both.counters.num_accepted_tokens, both.counters.num_draft_tokens) == (187 + 171, 312 + 297)
    assert both.counters.num_drafts is None  # the old log format cannot tell its steps
    assert any("every request of llamacpp_completion.json is in llama_server.log" in n for n in both.notes)
    # issue 10: the outputs state their k (n_max 8, n_draft 16): two settings are not summed
    with pytest.raises(SpecplanError, match="several draft n_max") as excinfo:
        llama(["llamacpp_completion.json", "llama_speculative.txt"])
    one_line_error(excinfo)


def test_llamacpp_requires_k():
    with pytest.raises(SpecplanError) as excinfo:
        llama(["llama_server.log"], k=None)  # issue 10: only a text that states no k needs --k
    assert "--k" in one_line_error(excinfo)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"timings": {"predicted_n": 10, "draft_n": 5', r"bad\.json: invalid JSON"),
        ('{"content": "hi", "tokens_predicted": 3}', r"bad\.json: JSON without a 'timings' object"),
        ('{"timings": {"predicted_n": 30, "predicted_ms": 300.0}}', r"bad\.json: .*speculative decoding did not run"),
        ('{"timings": {"predicted_n": 30, "draft_n": 5, "draft_n_accepted": 9}}', r"bad\.json: .*exceeds"),
        ('{"timings": {"predicted_n": 30, "draft_n": "five", "draft_n_accepted": 1}}', r"bad\.json: timings\.draft_n"),
        ("srv  update_slots: all slots are idle\n", r"bad\.json: no llama\.cpp acceptance data"),
        ("n_drafted = 10\n", r"bad\.json: 1 'n_drafted =' lines but 0 'n_accept =' lines"),
    ],
)
def test_llamacpp_malformed_inputs_name_the_file(content, expected):
    with pytest.raises(SpecplanError, match=expected) as excinfo:
        llamacpp_calibration([content], 8, "t", None, "bad.json")
    one_line_error(excinfo)


# --- the calibration file ----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_calibration_files_round_trip(tmp_path, suffix):
    for i, cal in enumerate([v1_window(window_s=120.5),
                             vllm_calibration(None, text("vllm_v0.prom"), 5, "t", None),
                             llama(["llamacpp_completion.json", "llamacpp_chat.jsonl"])]):
        path = write_calibration(cal, tmp_path / f"cal{i}{suffix}")
        assert read_calibration(path) == cal


# --- texts vLLM's own SpecDecodingProm rendered (tests/test_real_metric_formats.py wrote them) -----------


@pytest.mark.parametrize("version", ["0.33.0", "0.9.2"])
def test_real_v1_text_reads_back_what_was_fed(version):
    # Fed: k = 4, drafts accepting 4, 2, 0, 3, 1 tokens over engines 0 and 1 (the fixture's first line).
    cal = vllm_calibration(text(f"vllm_v1_{version}_before.prom"), text(f"vllm_v1_{version}_after.prom"), None,
                           MODEL, DRAFT)
    c = cal.counters
    assert (c.num_drafts, c.num_draft_tokens, c.num_accepted_tokens, c.accepted_per_position, c.k) == (
        5, 20, 10, [4, 3, 2, 1], 4)
    assert cal.fitted_acceptance[0].alpha == pytest.approx(float(alpha_from_acceptance_rate(10 / 20, 4)), abs=1e-12)


def test_real_v0_text_is_a_sum_of_lifetime_snapshots():
    # vLLM 0.9.2's V0 PrometheusStatLogger fed two logging intervals in the window: its counters grew by
    # the sampler's lifetime totals at each (draft 16 then 28, accepted 10 then 16, emitted 12 then 20), while the
    # window itself drafted 20 tokens.
    cal = vllm_calibration(text("vllm_v0_0.9.2_before.prom"), text("vllm_v0_0.9.2_after.prom"), 4, MODEL, DRAFT)
    c = cal.counters
    assert (c.num_draft_tokens, c.num_drafts, c.num_accepted_tokens) == (44, 11, 32 - 11)
    assert any("sum of lifetime snapshots" in note for note in cal.notes)

"""llama.cpp outputs of current builds (issue 10 point 3): every log variant, the server's own rounds, mixed files, k.

Fixtures under tests/data/server copy the print formats of llama.cpp b11312 (vendored in the
llama-cpp-python 0.3.36 sdist) and of the PR #24536 thread; each file's header names its source.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from planner.calibration.llamacpp_outputs import llamacpp_calibration
from planner.calibration.llamacpp_texts import llamacpp_counts, mean_length_spread, rounds_from_mean_length
from planner.calibration.server_metrics import read_text_source
from planner.cli import main
from planner.errors import SpecplanError
from planner.inputs import read_text

DATA = Path(__file__).parent / "data" / "server"
B11312_RUN = (79, 142, 50)  # accepted, drafted, verification steps of the 2-request b11312 run (23 + 27 rounds)


def log_text(name: str) -> str:
    return read_text_source(str(DATA / name), "--llamacpp", log=True)


def calibrate(names: list[str], k: int | None = None, p_min: float | None = None):
    return llamacpp_calibration([log_text(n) for n in names], k, "t", "d", names, p_min=p_min)


def counts(cal) -> tuple[int, int, int | None]:
    c = cal.counters
    return c.num_accepted_tokens, c.num_draft_tokens, c.num_drafts


# --- every variant to exact counts -----------------------------------------------------------


def test_b11312_line_of_the_issue_gives_its_rounds():
    line = ("slot print_timing: id  0 | task 0 | draft acceptance = 0.61290 (   38 accepted /    62 generated), "
            "mean len =  2.65\n")
    c = llamacpp_counts(line, "server.log")
    assert (c.accepted, c.drafted, c.rounds) == (38, 62, 23)  # 1 + 38 / 23 = 2.652
    cal = llamacpp_calibration([line], 3, "t", "d", "server.log")
    assert cal.fitted_acceptance[0].drafted_per_round == pytest.approx(62 / 23)


def test_b11312_server_log_two_requests():
    cal = calibrate(["llama_server_b11312.log"])
    fit = cal.fitted_acceptance[0]
    assert counts(cal) == B11312_RUN
    assert fit.k == 3 and fit.p_min == 0.75  # "- n_max=3, n_min=0, p_min=0.750000": no --k needed
    assert fit.drafted_per_round == pytest.approx(142 / 50)
    # the trace lines "acc per pos" pooled as counts: (15 + 17, 12 + 13, 11 + 11) of 50 rounds
    assert cal.counters.accepted_per_position == [32, 25, 22]
    assert fit.per_position == pytest.approx([32 / 50, 25 / 32, 22 / 25])


def test_pr24536_line_with_mean_acceptance_length_and_rates():
    cal = calibrate(["llama_server_pr24536.log"])
    fit = cal.fitted_acceptance[0]
    assert counts(cal) == (167, 259, 87)
    assert fit.k == 3  # the server sizes its per-position rates to n_max
    assert cal.counters.accepted_per_position == [70, 55, 42]  # 0.805, 0.632, 0.483 of 87 rounds
    assert fit.p_min is None and fit.drafted_per_round == pytest.approx(259 / 87)


# Lines of real servers as users quoted them in public notes and log parsers (found by code search, 2026):
# draft-mtp runs of builds around PR #24536 and an ngram-mod run of the PR #19164 era.
REAL_LINES = [
    # draft-mtp, mean len and statistics of the same (first) request: 308 / 1.52 = 202.6 -> 203 = #calls(a)
    ("0.27.402.300 I slot print_timing: id  0 | task 0 | draft acceptance = 0.76049 (  308 accepted /   405 generated), "
     "mean len =  2.52\n0.27.402.358 I spec common_specu: statistics        draft-mtp: #calls(b,g,a) =    1    203    "
     "203, #gen drafts =    203, #acc drafts =   172, #gen tokens =    405, #acc tokens =   308, #mean acc len = 2.52, "
     "#acc rate/pos = (0.847, 0.670), dur(b,g,a) = 0.003, 1396.591, 0.467 ms\n", (308, 405, 203)),
    # a build between: no mean len; the statistics line is cumulative over earlier tasks, so it is not used
    ("[36225] 2.48.844.217 I slot print_timing: id  2 | task 359 | draft acceptance = 0.89771 ( 3405 accepted /  3793 "
     "generated)\n[36225] 2.48.844.228 I statistics        draft-mtp: #calls(b,g,a) =    2   3220   2477, #gen drafts = "
     "  2477, #acc drafts =  2301, #gen tokens =   4304, #acc tokens =  3858, dur(b,g,a) = 0.002, 17227.157, 1.162 ms\n",
     (3405, 3793, None)),
    # ngram-mod, older statistics line: no mean, no rates
    ("statistics ngram_mod: #calls(b,g,a) = 5 887 7, #gen drafts = 7, #acc drafts = 7, #gen tokens = 448, "
     "#acc tokens = 148, dur(b,g,a) = 0.88, 2.66, 4.75 ms\n", (148, 448, 7)),
]


@pytest.mark.parametrize(("text", "expected"), REAL_LINES)
def test_lines_from_real_servers(text, expected):
    c = llamacpp_counts(text, "posted.log")
    assert (c.accepted, c.drafted, c.rounds) == expected


def test_statistics_line_alone_is_cumulative_so_the_last_counts():
    text = log_text("llama_server_b11312.log")
    stats = "\n".join(line for line in text.splitlines() if "statistics" in line)
    c = llamacpp_counts(stats, "stats.log")
    assert (c.accepted, c.drafted, c.rounds) == B11312_RUN
    assert c.per_position == pytest.approx((0.64, 0.5, 0.44))


def test_metrics_give_the_servers_own_rounds():
    cal = calibrate(["llamacpp_b11312.prom"])
    assert counts(cal) == B11312_RUN
    assert cal.fitted_acceptance[0].k == 3 and cal.counters.accepted_per_position == [32, 25, 22]


def test_responses_alone_do_not_over_count_the_rounds():
    cal = calibrate(["llamacpp_b11312_responses.jsonl"])
    assert counts(cal) == (79, 142, None)
    # predicted_n - accepted would say (64 - 38) + (96 - 41) = 81 against the server's 50
    assert any("at most 79" in n for n in cal.notes)  # minus each request's first token
    assert cal.fitted_acceptance[0].k == 3  # generation_settings speculative.n_max


@pytest.mark.parametrize("other", ["llama_server_b11312.log", "llamacpp_b11312.prom"])
def test_responses_and_log_of_one_run_are_counted_once(other):
    cal = calibrate(["llamacpp_b11312_responses.jsonl", other])
    assert counts(cal) == B11312_RUN
    assert any("counted once" in n for n in cal.notes)
    assert any("committed tokens = accepted + target steps" in n for n in cal.notes)


def test_a_log_with_more_requests_than_the_saved_responses_counts_the_log():
    log = log_text("llama_server_b11312.log")
    first = log_text("llamacpp_b11312_responses.jsonl").splitlines()[0]  # request 1 only (38 / 62)
    cal = llamacpp_calibration([first, log], None, "t", "d", ["r.json", "server.log"])
    assert counts(cal) == B11312_RUN
    assert any("every request of r.json is in server.log" in n for n in cal.notes)


def test_props_give_settings_only():
    props = json.dumps({"default_generation_settings": {"params": {"speculative.n_max": 3, "speculative.p_min": 0.5}}})
    metrics = log_text("llamacpp_b11312.prom")
    cal = llamacpp_calibration([props, metrics], None, "t", "d", ["props.json", "metrics.prom"])
    assert counts(cal) == B11312_RUN and cal.fitted_acceptance[0].p_min == 0.5
    assert any("props.json: settings only" in n for n in cal.notes)
    with pytest.raises(SpecplanError, match="only settings"):
        llamacpp_calibration([props], None, "t", "d", "props.json")


def test_speculative_simple_plain_output():
    cal = calibrate(["llama_speculative_simple_b11312_plain.txt"])
    fit = cal.fitted_acceptance[0]
    assert counts(cal) == (98, 190, 130 - 98)  # steps = n_predict - n_accept
    assert fit.k == 16 and fit.p_min is None and fit.drafted_per_round == pytest.approx(190 / 32)


def test_speculative_simple_mixed_stdout_stderr_with_bad_bytes():
    with pytest.raises(SpecplanError, match="not UTF-8"):
        read_text(DATA / "llama_speculative_simple_b11312_mixed.txt")  # strict reading refuses it
    cal = calibrate(["llama_speculative_simple_b11312_mixed.txt"])
    fit = cal.fitted_acceptance[0]
    # the -lv 4 statistics line counts 31 verification steps (one of the 32 target steps had no draft)
    assert counts(cal) == (98, 190, 31)
    assert fit.k == 16 and fit.p_min == 0.75 and fit.drafted_per_round == pytest.approx(190 / 31)
    assert cal.counters.accepted_per_position[:4] == [27, 21, 15, 11]


def test_ansi_codes_do_not_hide_the_counters():
    text = "tokens\x1b[36m here\x1b[37mn_draft   = 4\nn_predict = 20\nn_drafted = 30\nn_accept  = 12\n"
    c = llamacpp_counts(text, "x")
    assert (c.accepted, c.drafted, c.rounds) == (12, 30, 8)
    assert llamacpp_calibration([text], None, "t", "d").fitted_acceptance[0].k == 4


# --- k and p-min from the output ---------------------------------------------------------------


def test_k_is_asked_for_only_when_nothing_states_it():
    old_format = log_text("llama_server.log")  # "draft acceptance rate = ..." states no n_max
    with pytest.raises(SpecplanError, match="pass --k") as excinfo:
        llamacpp_calibration([old_format], None, "t", "d", "llama_server.log")
    assert "\n" not in str(excinfo.value)
    assert llamacpp_calibration([old_format], 8, "t", "d").fitted_acceptance[0].k == 8


def test_cli_calibrate_reads_k_and_writes(tmp_path):
    out = tmp_path / "cal.yaml"
    res = CliRunner().invoke(main, ["calibrate", "--llamacpp", str(DATA / "llama_speculative_simple_b11312_mixed.txt"),
                                    "--llamacpp", str(DATA / "llama_server_pr24536.log"), "--target", "t",
                                    "--draft", "d", "-o", str(out), "--format", "json"])
    # two settings (n_draft 16, n_max 3): one line, exit 2
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1 and "one server setting" in res.output
    res = CliRunner().invoke(main, ["calibrate", "--llamacpp", str(DATA / "llama_speculative_simple_b11312_mixed.txt"),
                                    "--target", "t", "--draft", "d", "-o", str(out), "--format", "json"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["calibrate", "--llamacpp", str(DATA / "llama_server.log"), "--target", "t",
                                    "--draft", "d", "-o", str(tmp_path / "b.yaml")])
    assert res.exit_code == 2 and "--k" in res.output and "Traceback" not in res.output


# --- bad input: one line ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("draft acceptance = 0.5 (   10 accepted /    20 generated), mean len =  9.99\n", "fits no whole number"),
        ("draft acceptance = 0.5 (   10 accepted /    20 generated), mean len =  1.00\n", "fits no whole number"),
        ("draft acceptance = 0.5 (   10 accepted /    20 generated), mean len =  0.50\n", "below 1"),
        ("draft acceptance = 0.9 (   30 accepted /    20 generated), mean len =  2.00\n", "more tokens than"),
        ("draft acceptance = 0.5 ( 10 accepted / 20 generated), mean acceptance length = 2.00, "
         "acceptance rate per position = (1.5, 0.2)\n", "not rates"),
        ("statistics draft-simple: #calls(b,g,a) = 1 5 5, #gen drafts = 5, #acc drafts = 5, #gen tokens = 10, "
         "#acc tokens = 11\n", "more tokens than"),
        ("llamacpp:spec_decode_num_draft_tokens_total 10\nllamacpp:spec_decode_num_accepted_tokens_total 1.5\n",
         "not a whole count"),
    ],
)
def test_bad_llamacpp_texts_are_one_line(content, expected):
    with pytest.raises(SpecplanError, match=expected) as excinfo:
        llamacpp_calibration([content], 4, "t", "d", "bad.log")
    assert "\n" not in str(excinfo.value)


def test_mean_len_of_one_with_few_accepts_is_read():
    # 1 accepted in 300 rounds prints "mean len =  1.00": any S from 200 up to the drafted count fits
    c = llamacpp_counts("draft acceptance = 0.00200 (    1 accepted /   500 generated), mean len =  1.00\n", "x")
    assert c.rounds is not None and 200 <= c.rounds <= 500


def test_more_drafted_than_k_per_round_is_refused():
    line = "draft acceptance = 0.5 (   10 accepted /    40 generated), mean len =  3.00\n"  # 5 rounds, 8 per round
    with pytest.raises(SpecplanError, match="more than k=4 per round"):
        llamacpp_calibration([line], 4, "t", "d")


# --- the mean-length inversion and a simulated server ------------------------------------------


@given(st.integers(1, 5000), st.integers(1, 3000))
def test_rounds_from_mean_length_reproduce_the_printed_value(accepted, rounds):
    mean = float(f"{1 + accepted / rounds:5.2f}")
    found = rounds_from_mean_length(accepted, 10**9, mean, "x")
    assert f"{1 + accepted / found:5.2f}" == f"{mean:5.2f}"
    assert abs(found - rounds) <= mean_length_spread(accepted, 10**9, mean)


def _server_run(rng: random.Random, n_max: int, alpha: float, requests: int) -> tuple[str, list[dict], tuple]:
    """A log and responses in b11312's formats for simulated requests with variable draft lengths."""
    lines, responses, pooled = [], [], [0, 0, 0, [0] * n_max, 0, 0]  # acc, gen, rounds, per_pos, calls_g, acc_drafts
    for task in range(requests):
        acc = gen = rounds = committed = 0
        per_pos = [0] * n_max
        committed = 1  # the first token comes from the prompt pass
        for _ in range(rng.randint(5, 60)):
            pooled[4] += 1
            drafted = rng.choice([0, *range(1, n_max + 1)])  # p-min: some steps draft nothing
            if drafted == 0:
                committed += 1
                continue
            a = 0
            while a < drafted and rng.random() < alpha:
                a += 1
            for i in range(a):
                per_pos[i] += 1
            acc, gen, rounds, committed = acc + a, gen + drafted, rounds + 1, committed + a + 1
            pooled[5] += a > 0
        if gen == 0:
            continue
        mean = 1 + acc / rounds if rounds else 1.0
        lines.append(f"slot print_timing: id  0 | task {task} | draft acceptance = {acc / gen:0.5f} "
                     f"({acc:5d} accepted / {gen:5d} generated), mean len = {mean:5.2f}")
        lines.append(f"slot print_timing: id  0 | task {task} |      acc per pos = ("
                     + ", ".join(f"{c / rounds:.3f}" for c in per_pos) + ")")
        pooled[0], pooled[1], pooled[2] = pooled[0] + acc, pooled[1] + gen, pooled[2] + rounds
        pooled[3] = [x + y for x, y in zip(pooled[3], per_pos)]
        lines.append(f"spec common_specu: statistics     draft-simple: #calls(b,g,a) = {task + 1:4d} {pooled[4]:6d} "
                     f"{pooled[2]:6d}, #gen drafts = {pooled[2]:6d}, #acc drafts = {pooled[5]:5d}, #gen tokens = "
                     f"{pooled[1]:6d}, #acc tokens = {pooled[0]:5d}, #mean acc len = {1 + pooled[0] / pooled[2]:.2f}")
        responses.append({"timings": {"predicted_n": committed, "draft_n": gen, "draft_n_accepted": acc}})
    return "\n".join(lines) + "\n", responses, (pooled[0], pooled[1], pooled[2], pooled[3])


@pytest.mark.parametrize("seed", range(6))
def test_simulated_server_runs_parse_to_exact_counts(seed):
    rng = random.Random(seed)
    n_max = rng.randint(1, 8)
    log, responses, (acc, gen, rounds, per_pos) = _server_run(rng, n_max, rng.uniform(0.2, 0.9), rng.randint(1, 6))
    if gen == 0:
        return
    cal = llamacpp_calibration([log, "\n".join(json.dumps(r) for r in responses)], None, "t", "d", ["l", "r"])
    assert counts(cal) == (acc, gen, rounds)
    assert cal.fitted_acceptance[0].k == n_max
    assert cal.counters.accepted_per_position == per_pos
    assert cal.fitted_acceptance[0].drafted_per_round == pytest.approx(gen / rounds)
    # the per-request lines alone (no statistics line) give the same counts
    alone = "\n".join(line for line in log.splitlines() if "statistics" not in line)
    c = llamacpp_counts(alone, "l")
    assert (c.accepted, c.drafted) == (acc, gen) and c.rounds is not None and abs(c.rounds - rounds) <= 2 * n_max


# --- real outputs of the b11312 tools (tests/data/server/real_b11312/README.md) ----------------

REAL = DATA / "real_b11312"


def real(*names: str, k: int | None = None):
    return llamacpp_calibration([read_text_source(str(REAL / n), "--llamacpp", log=True) for n in names], k,
                                "t", "d", list(names))


@pytest.mark.parametrize("names", [("server.log",), ("metrics.prom",), ("responses.jsonl", "server.log"),
                                   ("responses.jsonl", "metrics.prom"), ("props.json", "metrics.prom")])
def test_real_server_run_counts(names):
    cal = real(*names)
    assert counts(cal) == (87, 112, 29)  # 9 + 10 + 10 rounds, as the server's /metrics counts them
    assert cal.counters.accepted_per_position == [29, 26, 20, 12]
    assert cal.fitted_acceptance[0].k == 4 and cal.fitted_acceptance[0].drafted_per_round == pytest.approx(112 / 29)


def test_real_server_p_min_from_the_trace_line():
    assert real("server.log").fitted_acceptance[0].p_min == 0.5  # "- n_max=4, n_min=0, p_min=0.500000"


def test_real_responses_alone_need_k_and_bound_the_rounds():
    with pytest.raises(SpecplanError, match="pass --k"):
        real("responses.jsonl")  # b11312's generation_settings carry speculative.types only
    cal = real("responses.jsonl", k=4)
    assert counts(cal) == (87, 112, None) and any("at most 30" in n for n in cal.notes)  # 3 x (40 - 29 - 1)


def test_real_llama_speculative_mixed_output():
    with pytest.raises(SpecplanError, match="not UTF-8"):
        read_text(REAL / "speculative_mixed.txt")
    cal = real("speculative_mixed.txt")
    assert counts(cal) == (31, 40, 42 - 31) and cal.fitted_acceptance[0].k == 4  # "n_draft   = 4"


PMIN = REAL / "pmin095"


def test_real_p_min_run_counts_the_servers_rounds_not_predicted_minus_accepted():
    texts = [read_text_source(str(PMIN / n), "--llamacpp", log=True) for n in ("server.log", "responses.jsonl")]
    with pytest.raises(SpecplanError, match="pass --k"):
        llamacpp_calibration(texts, None, "t", "d", ["server.log", "responses.jsonl"])  # default verbosity
    cal = llamacpp_calibration(texts, 8, "t", "d", ["server.log", "responses.jsonl"])
    assert counts(cal) == (92, 95, 28)  # 52 by predicted_n - accepted
    assert cal.fitted_acceptance[0].drafted_per_round == pytest.approx(95 / 28)
    assert any("cut its drafts" in n for n in cal.notes)
    with_p_min = llamacpp_calibration(texts, 8, "t", "d", ["server.log", "responses.jsonl"], p_min=0.95)
    assert with_p_min.fitted_acceptance[0].p_min == 0.95


def test_real_p_min_run_metrics_state_k():
    cal = llamacpp_calibration([read_text_source(str(PMIN / "metrics.prom"), "--llamacpp", log=True)], None, "t", "d")
    assert counts(cal) == (92, 95, 28) and cal.fitted_acceptance[0].k == 8
    assert cal.counters.accepted_per_position == [28, 20, 17, 8, 8, 7, 2, 2]

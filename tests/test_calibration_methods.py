"""calibrate per proposal method: what each server prints for EAGLE/EAGLE-3/MTP/n-gram, trees, and whose alpha applies.

Metric texts use the servers' own names, labels and layout (vllm/v1/spec_decode/metrics.py and
vllm/v1/metrics/loggers.py of vLLM 0.33.0; sglang/srt/observability/metrics_collector.py of SGLang
0.5.23, as in tests/data/server/*.prom; TensorRT-LLM's IterationStats JSON keys of
cpp/tensorrt_llm/executor/jsonSerialization.cpp). Expected alphas are solved by hand from the
chain formulas (E[L] = 1 + a + ... + a^k, rate = (E[L] - 1) / k) or by a round trip through the
tree's forward model.
"""

from __future__ import annotations

import json
import math

import pytest
import yaml

from planner.calibration.apply import apply_calibration
from planner.calibration.method_fits import decode_steps, lookup_rate, measured_proposer, tree_shape
from planner.calibration.schema import CalibrationFile, read_calibration
from planner.calibration.server_metrics import llamacpp_calibration, vllm_calibration
from planner.calibration.sglang_metrics import sglang_calibration
from planner.calibration.trtllm_stats import trtllm_calibration
from planner.catalog.lookup import find_gpu, find_model
from planner.cli import main
from planner.errors import SpecplanError
from planner.trees import model_from_alpha, sglang_expected_lengths

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
HEAD = "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"


# --- sample texts --------------------------------------------------------------------------------


def vllm_text(drafts: int, draft_tokens: int, accepted: int, per_pos: list[int], generated: int | None = None,
              finished: dict[str, int] | None = None) -> str:
    """One vLLM 0.33.0 scrape (engine 0): SpecDecodingProm's counters, plus PrometheusStatLogger's totals."""
    lab = f'engine="0",model_name="{MODEL}"'
    lines = []
    for name, doc, value in (("num_drafts", "Number of spec decoding drafts.", drafts),
                             ("num_draft_tokens", "Number of draft tokens.", draft_tokens),
                             ("num_accepted_tokens", "Number of accepted tokens.", accepted)):
        lines += [f"# HELP vllm:spec_decode_{name}_total {doc}", f"# TYPE vllm:spec_decode_{name}_total counter",
                  f"vllm:spec_decode_{name}_total{{{lab}}} {float(value)}"]
    lines += ["# HELP vllm:spec_decode_num_accepted_tokens_per_pos_total Accepted tokens per draft position.",
              "# TYPE vllm:spec_decode_num_accepted_tokens_per_pos_total counter"]
    lines += [f'vllm:spec_decode_num_accepted_tokens_per_pos_total{{{lab},position="{i}"}} {float(c)}'
              for i, c in enumerate(per_pos)]
    if generated is not None:
        lines += ["# HELP vllm:generation_tokens_total Number of generation tokens processed.",
                  "# TYPE vllm:generation_tokens_total counter", f"vllm:generation_tokens_total{{{lab}}} {float(generated)}"]
    if finished is not None:
        lines += ["# HELP vllm:request_success_total Count of successfully processed requests.",
                  "# TYPE vllm:request_success_total counter"]
        lines += [f'vllm:request_success_total{{engine="0",finished_reason="{r}",model_name="{MODEL}"}} {float(n)}'
                  for r, n in finished.items()]
    return "\n".join(lines) + "\n"


def sglang_text(verify: int | None, generated: int | None, requests: int | None, *, steps: int, draft_tokens: int,
                accept_length: float = 0.0) -> str:
    """One SGLang 0.5.23 scrape: scheduler gauges (one tp rank) and tokenizer counters."""
    g = f'engine_type="unified",model_name="{MODEL}",moe_ep_rank="0",pp_rank="0",tp_rank="0"'
    lines = ["# TYPE sglang:spec_accept_length gauge", f"sglang:spec_accept_length{{{g}}} {accept_length}",
             "# TYPE sglang:spec_num_steps gauge", f"sglang:spec_num_steps{{{g}}} {float(steps)}",
             "# TYPE sglang:spec_num_draft_tokens gauge", f"sglang:spec_num_draft_tokens{{{g}}} {float(draft_tokens)}"]
    if verify is not None:
        lines += ["# HELP sglang:spec_verify_calls_total Number of speculative decoding verification calls.",
                  "# TYPE sglang:spec_verify_calls_total counter",
                  f'sglang:spec_verify_calls_total{{engine_type="unified",model_name="{MODEL}"}} {float(verify)}',
                  "# TYPE sglang:generation_tokens_total counter",
                  f'sglang:generation_tokens_total{{engine_type="unified",is_streaming="false",model_name="{MODEL}"}} '
                  f"{float(generated)}",
                  "# HELP sglang:num_requests_total Number of requests processed.",
                  "# TYPE sglang:num_requests_total counter",
                  f'sglang:num_requests_total{{engine_type="unified",is_streaming="false",model_name="{MODEL}"}} '
                  f"{float(requests)}"]
    return "\n".join(lines) + "\n"


def trtllm_iteration(it: int, gen: int, drafted: int, accepted: int, with_draft: int) -> dict:
    """One IterationStats entry as trtllm-serve's GET /metrics returns it (the JSON keys of the C++ structs)."""
    return {
        "timestamp": "12-03-2026 08:00:00", "iter": it, "iterLatencyMS": 21.5, "newActiveRequestsQueueLatencyMS": 0.0,
        "numNewActiveRequests": 0, "numActiveRequests": gen, "numQueuedRequests": 0, "numCompletedRequests": 0,
        "maxNumActiveRequests": 64, "gpuMemUsage": 70_000_000_000, "cpuMemUsage": 0, "pinnedMemUsage": 0,
        "kvCacheStats": {"maxNumBlocks": 4096, "freeNumBlocks": 4000, "usedNumBlocks": 96, "tokensPerBlock": 32,
                         "allocTotalBlocks": 96, "allocNewBlocks": 0, "reusedBlocks": 0, "missedBlocks": 0,
                         "cacheHitRate": 0.0},
        "inflightBatchingStats": {"numScheduledRequests": gen, "numContextRequests": 0, "numGenRequests": gen,
                                  "numPausedRequests": 0, "numCtxTokens": 0, "microBatchId": 0,
                                  "avgNumDecodedTokensPerIter": 0.0},
        "specDecodingStats": {"numDraftTokens": drafted, "numAcceptedTokens": accepted,
                              "numRequestsWithDraftTokens": with_draft,
                              "acceptanceLength": (accepted + with_draft) / with_draft if with_draft else 0.0,
                              "iterLatencyMS": 0.0, "draftOverhead": 0.0},
    }


def chain_alpha_k2(rate: float) -> float:
    """k = 2: rate = (a + a^2) / 2, so a = (-1 + sqrt(1 + 8 rate)) / 2."""
    return (-1 + math.sqrt(1 + 8 * rate)) / 2


# --- which proposer --------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "head", "draft", "expected"), [
    (None, None, "d", ("draft", None)),
    (None, HEAD, None, ("eagle3", HEAD)),  # the head's catalogued method
    ("EAGLE", "leptonai/EAGLE-Llama-3.1-8B-Instruct", None, ("eagle", "leptonai/EAGLE-Llama-3.1-8B-Instruct")),
    ("mtp", None, None, ("mtp", "deepseek-ai/DeepSeek-V3")),  # the target's own layers
    ("ngram", None, None, ("ngram", None)),
    ("suffix", None, None, ("suffix", None)),
])
def test_measured_proposer_records_method_and_head(method, head, draft, expected):
    p = measured_proposer(method, head, draft, "deepseek-ai/DeepSeek-V3")
    assert (p.method, p.head) == expected


@pytest.mark.parametrize(("method", "head", "draft", "says"), [
    ("ngram", "x/head", None, "--method ngram runs no model: drop --head"),
    ("eagle3", None, "d", "--method eagle3 runs no draft model"),
    ("eagle3", None, None, "--method eagle3 needs --head"),
    ("draft", HEAD, "d", "--head belongs to --method eagle / eagle3 / mtp"),
    ("draft", None, None, "--method draft needs --draft"),
    ("medusa", None, None, "unknown --method 'medusa'"),
])
def test_measured_proposer_refuses_contradictions(method, head, draft, says):
    with pytest.raises(SpecplanError, match=says.replace("(", r"\(")):
        measured_proposer(method, head, draft, MODEL)


def test_old_files_read_as_draft_models_and_the_schema_refuses_a_head_on_a_lookup(tmp_path):
    old = {"schema_version": 1, "source": "vllm-metrics", "target": {"id": MODEL}, "draft": {"id": "d"},
           "fitted_acceptance": [{"mode": "server", "alpha": 0.5, "alpha_low": 0.4, "alpha_high": 0.6, "k": 2}]}
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(old))
    cal = read_calibration(path)
    assert cal.method == "draft" and cal.head is None and cal.fitted_acceptance[0].tree is None
    for bad in ({"method": "ngram", "head": "x/h", "draft": None}, {"method": "eagle3", "head": HEAD}):
        path.write_text(yaml.safe_dump({**old, **bad}))
        with pytest.raises(SpecplanError):
            read_calibration(path)


# --- vLLM: the same counters for every method -------------------------------------------------------


@pytest.mark.parametrize("method,head", [("draft", None), ("eagle", "leptonai/EAGLE-Llama-3.1-8B-Instruct"),
                                         ("eagle3", HEAD), ("mtp", MODEL)])
def test_vllm_counters_read_the_same_for_draft_eagle_eagle3_and_mtp(method, head):
    # k = 2, 400 steps, 300 accepted of 800: rate 0.375 = (a + a^2) / 2 at a = 0.5; per_pos [200, 100]
    after = vllm_text(400, 800, 300, [200, 100])
    cal = vllm_calibration(None, after, None, MODEL, "d" if method == "draft" else None, method=method, head=head)
    fit = cal.fitted_acceptance[0]
    assert fit.alpha == pytest.approx(0.5, abs=1e-9)
    assert fit.k == 2 and fit.mean_accepted_length == pytest.approx(1.75)
    assert (cal.method, cal.head) == (method, head)


def test_vllm_ngram_spreads_accepted_tokens_over_steps_without_a_match():
    # 400 steps found a match (800 drafts, 300 accepted); 10 requests generated 1310 tokens:
    # T = 1310 - 10 - 300 = 1000 decode steps, 600 of them without a draft.
    before = vllm_text(0, 0, 0, [0, 0], generated=0, finished={"stop": 0, "length": 0})
    after = vllm_text(400, 800, 300, [200, 100], generated=1310, finished={"stop": 4, "length": 6, "abort": 0})
    cal = vllm_calibration(before, after, 2, MODEL, None, method="ngram")
    fit = cal.fitted_acceptance[0]
    assert decode_steps(1310, 10, 300) == 1000 and lookup_rate(300, 2, 1000) == pytest.approx(0.15)
    assert fit.alpha == pytest.approx(chain_alpha_k2(0.15), abs=1e-9)  # 0.24162...
    assert fit.alpha == pytest.approx(0.241620, abs=1e-6)
    assert fit.mean_accepted_length == pytest.approx(1.3) and fit.rounds == 1000
    assert cal.counters.steps_without_draft == 600 and cal.counters.num_drafts == 400
    assert fit.alpha_low < fit.alpha < fit.alpha_high


def test_vllm_ngram_without_step_totals_keeps_the_drafted_steps_alpha_and_says_it_is_an_upper_bound():
    cal = vllm_calibration(None, vllm_text(400, 800, 300, [200, 100]), 2, MODEL, None, method="ngram")
    assert cal.fitted_acceptance[0].alpha == pytest.approx(0.5, abs=1e-9)
    assert cal.counters.steps_without_draft is None
    assert any("upper bound" in n for n in cal.notes)


def test_vllm_ngram_with_requests_in_flight_falls_back_with_a_note():
    # T = 500 - 10 - 300 = 190 < 400 steps with a draft: the totals do not cover the window
    cal = vllm_calibration(None, vllm_text(400, 800, 300, [200, 100], generated=500, finished={"stop": 10}), 2,
                           MODEL, None, method="ngram")
    assert cal.fitted_acceptance[0].alpha == pytest.approx(0.5, abs=1e-9)
    assert any("in flight" in n for n in cal.notes)


# --- SGLang: chains, trees, NGRAM -----------------------------------------------------------------


def test_sglang_eagle3_chain_inverts_the_chain():
    # k = 3 at a = 0.5: E[L] = 1.875 -> 200 steps accept 175; 5 requests: G = 175 + 5 + 200 = 380
    after = sglang_text(200, 380, 5, steps=3, draft_tokens=4)
    cal = sglang_calibration(None, after, None, MODEL, None, method="eagle3", head=HEAD)
    fit = cal.fitted_acceptance[0]
    assert fit.alpha == pytest.approx(0.5, abs=1e-9) and fit.k == 3 and fit.tree is None
    assert fit.mean_accepted_length == pytest.approx(1.875)
    assert (cal.method, cal.head) == ("eagle3", HEAD)


def test_sglang_tree_tau_round_trips_through_the_tree_model_and_is_below_the_chain_reading():
    steps, topk, nodes, alpha = 3, 4, 8, 0.6
    tau = float(sglang_expected_lengths(steps, topk, model_from_alpha(alpha, topk))[nodes - 1])
    verify = 1_000_000
    accepted = round((tau - 1) * verify)
    after = sglang_text(verify, accepted + 7 + verify, 7, steps=steps, draft_tokens=nodes)
    shape = tree_shape(steps, topk, nodes, None, "test")
    tree = sglang_calibration(None, after, None, MODEL, None, method="eagle3", head=HEAD, shape=shape)
    chain = sglang_calibration(None, after, None, MODEL, None, method="eagle3", head=HEAD)
    fit = tree.fitted_acceptance[0]
    assert fit.alpha == pytest.approx(alpha, abs=1e-4)
    assert fit.tree is not None and (fit.tree.num_steps, fit.tree.topk, fit.tree.num_draft_tokens) == (3, 4, 8)
    # siblings commit more per round than a chain of the same top-1 alpha: the chain reading overstates alpha
    assert chain.fitted_acceptance[0].alpha > fit.alpha + 0.01
    assert fit.alpha_low <= fit.alpha <= fit.alpha_high
    assert fit.mean_accepted_length == pytest.approx(tau, abs=1e-5)


def test_sglang_tree_from_the_gauge_alone_uses_the_tree_inversion():
    steps, topk, nodes = 3, 4, 8
    tau = float(sglang_expected_lengths(steps, topk, model_from_alpha(0.5, topk))[nodes - 1])
    after = sglang_text(None, None, None, steps=steps, draft_tokens=nodes, accept_length=tau)
    cal = sglang_calibration(None, after, None, MODEL, None, method="eagle3", head=HEAD,
                             shape=tree_shape(steps, topk, nodes, None, "test"))
    assert cal.fitted_acceptance[0].alpha == pytest.approx(0.5, abs=1e-6)


def test_sglang_tree_shape_must_match_the_gauges():
    after = sglang_text(200, 380, 5, steps=5, draft_tokens=16)
    with pytest.raises(SpecplanError, match="spec_num_steps says 5"):
        sglang_calibration(None, after, None, MODEL, None, method="eagle3", head=HEAD,
                           shape=tree_shape(3, 4, 8, None, "test"))


def test_sglang_ngram_depth_is_num_draft_tokens_minus_one_not_the_num_steps_gauge():
    # NGRAM: SGLang sets num_steps = 12 // topk(10) = 1; its draft is 11 tokens. 100 steps accepting
    # 110 of 11 x 100: rate 0.1 -> alpha with (a + ... + a^11) / 11 = 0.1.
    after = sglang_text(100, 110 + 4 + 100, 4, steps=1, draft_tokens=12)
    cal = sglang_calibration(None, after, None, MODEL, None, method="ngram")
    fit = cal.fitted_acceptance[0]
    assert fit.k == 11 and fit.mean_accepted_length == pytest.approx(2.1)
    a = fit.alpha
    assert sum(a ** i for i in range(1, 12)) / 11 == pytest.approx(0.1, abs=1e-9)


# --- TensorRT-LLM ------------------------------------------------------------------------------------


def test_trtllm_iteration_stats_give_the_chain_alpha():
    # k = 3 at a = 0.5: (A / S) = 0.875 -> 8 request-steps accept 7; D = 3 S = 24
    stats = [trtllm_iteration(1, 4, 0, 0, 0), trtllm_iteration(2, 4, 12, 3, 4), trtllm_iteration(3, 4, 12, 4, 4)]
    cal = trtllm_calibration([json.dumps(stats)], None, MODEL, None, method="eagle3", head=HEAD)
    fit = cal.fitted_acceptance[0]
    assert cal.source == "trtllm-stats" and cal.engine == "trtllm"
    assert fit.k == 3 and fit.alpha == pytest.approx(0.5, abs=1e-9)
    assert fit.mean_accepted_length == pytest.approx(1.875)
    assert any("acceptanceLength" in n and "1.8750" in n for n in cal.notes)


def test_trtllm_ngram_counts_generation_steps_without_a_match_and_reads_get_stats_strings():
    # get_stats() output: JSON strings. k = 2; 400 steps with drafts accept 300 of 800; 1000 generation steps
    stats = [json.dumps(trtllm_iteration(1, 500, 400, 150, 200)), json.dumps(trtllm_iteration(2, 500, 400, 150, 200))]
    cal = trtllm_calibration([json.dumps(stats)], 2, MODEL, None, method="ngram")
    assert cal.fitted_acceptance[0].alpha == pytest.approx(chain_alpha_k2(0.15), abs=1e-9)
    assert cal.counters.steps_without_draft == 600


@pytest.mark.parametrize(("text", "says"), [
    (json.dumps([trtllm_iteration(1, 4, 0, 0, 0)]), "no iteration with specDecodingStats.numDraftTokens > 0"),
    (json.dumps([trtllm_iteration(1, 4, 4, 5, 4)]), "accepts 5 of 4 draft tokens"),
    ("[1, 2]", "expected iteration-stat objects"),
])
def test_trtllm_refuses_what_is_not_spec_decode_stats(text, says):
    with pytest.raises(SpecplanError, match=says):
        trtllm_calibration([text], None, MODEL, None)


# --- llama.cpp n-gram -------------------------------------------------------------------------------


def test_llamacpp_ngram_responses_spread_acceptance_over_every_decode_step():
    # two responses: predicted_n 101 and 51, drafts 40 / 20 tokens, 20 / 10 accepted, draft max 4.
    # T = (101 - 20 - 1) + (51 - 10 - 1) = 120 decode steps; rate 30 / (4 x 120) = 0.0625.
    def response(predicted, drafted, accepted):
        return json.dumps({"content": "x", "timings": {"prompt_n": 12, "prompt_ms": 5.0, "predicted_n": predicted,
                                                       "predicted_ms": 900.0, "draft_n": drafted,
                                                       "draft_n_accepted": accepted}})
    cal = llamacpp_calibration([response(101, 40, 20) + "\n" + response(51, 20, 10)], 4, MODEL, None,
                               method="ngram")
    a = cal.fitted_acceptance[0].alpha
    assert (a + a**2 + a**3 + a**4) / 4 == pytest.approx(0.0625, abs=1e-9)
    assert cal.method == "ngram" and cal.fitted_acceptance[0].p_min is None


def test_llamacpp_ngram_statistics_line_reads_like_a_draft_models():
    line = ("statistics ngram_mod: #calls(b,g,a) = 5 887 7, #gen drafts = 7, #acc drafts = 7, #gen tokens = 448, "
            "#acc tokens = 330")
    cal = llamacpp_calibration([line], 64, MODEL, None, method="ngram")
    assert cal.counters.num_drafts == 7 and cal.counters.num_accepted_tokens == 330
    assert any("upper bound" in n for n in cal.notes)


# --- applying a file to a plan ----------------------------------------------------------------------


def _file(method: str, head: str | None, draft: str | None = None) -> CalibrationFile:
    return CalibrationFile.model_validate({
        "source": "vllm-metrics", "engine": "vllm", "target": {"id": MODEL}, "draft": {"id": draft} if draft else None,
        "method": method, "head": head,
        "fitted_acceptance": [{"mode": "server", "alpha": 0.7, "alpha_low": 0.6, "alpha_high": 0.8, "k": 3}]})


@pytest.fixture(scope="module")
def plan_models():
    return find_gpu("H100"), find_model(MODEL).spec, find_model("meta-llama/Llama-3.2-1B-Instruct").spec


def test_a_draft_model_measurement_does_not_set_an_eagle3_plan_and_vice_versa(plan_models):
    gpu, target, draft = plan_models
    draft_file = _file("draft", None, "meta-llama/Llama-3.2-1B-Instruct")
    applied = apply_calibration(draft_file, "cal.yaml", gpu, target, None, "vllm", method="eagle3", head=HEAD)
    assert applied.acceptance is None
    assert "cal.yaml was measured with --method draft; this plan runs eagle3: its acceptance is not used" in applied.warnings
    eagle_file = _file("eagle3", HEAD)
    applied = apply_calibration(eagle_file, "cal.yaml", gpu, target, draft, "vllm")
    assert applied.acceptance is None and any("--method eagle3; this plan runs draft" in w for w in applied.warnings)
    # today's callers (no method): a draft file still applies to its pair
    assert apply_calibration(draft_file, "cal.yaml", gpu, target, draft, "vllm").acceptance is not None


def test_the_same_method_applies_only_with_the_same_head(plan_models):
    gpu, target, _ = plan_models
    eagle_file = _file("eagle3", HEAD)
    same = apply_calibration(eagle_file, "c", gpu, target, None, "vllm", method="eagle3", head=HEAD.upper())
    assert same.acceptance is not None and same.acceptance.alpha == 0.7 and not same.warnings
    other = apply_calibration(eagle_file, "c", gpu, target, None, "vllm", method="eagle3", head="/models/my-head")
    assert other.acceptance is None and other.warnings == (
        f"c was measured with head {HEAD}, not /models/my-head: its acceptance is not used",)
    for method, head in (("mtp", MODEL), ("ngram", None)):
        applied = apply_calibration(_file(method, head), "c", gpu, target, None, "vllm", method=method, head=head)
        assert applied.acceptance is not None


# --- the CLI ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("extra", "says"), [
    (["--vllm-metrics", "M", "--method", "ngram", "--head", "x/h"], "--method ngram runs no model: drop --head"),
    (["--vllm-metrics", "M", "--method", "eagle3", "--draft", "d"], "--method eagle3 runs no draft model"),
    (["--vllm-metrics", "M", "--method", "eagle3"], "--method eagle3 needs --head"),
    (["--vllm-metrics", "M", "--draft", "d", "--topk", "4"], "--topk: only --sglang-metrics reads a tree shape"),
    (["--sglang-metrics", "M", "--method", "ngram", "--topk", "4"], "NGRAM trie is not an EAGLE tree"),
    (["--sglang-metrics", "M", "--method", "ngram", "--num-draft-tokens", "100"], "k must be between 1 and 64"),
    (["--trtllm-stats", "M", "--method", "suffix", "--head", "x/h"], "--method suffix runs no model"),
    (["--sglang-metrics", "M", "--method", "eagle3", "--head", HEAD, "--num-steps", "3", "--num-draft-tokens", "8"],
     "give --topk"),
    (["--sglang-metrics", "M", "--method", "eagle3", "--head", HEAD, "--num-steps", "3", "--topk", "4",
      "--num-draft-tokens", "99"], "speculative_num_draft_tokens must be between 2 and"),
])
def test_calibrate_refuses_contradictions_in_one_line(runner, tmp_path, extra, says):
    metrics = tmp_path / "m.prom"
    metrics.write_text(sglang_text(200, 380, 5, steps=3, draft_tokens=4))
    argv = ["calibrate", "--target", MODEL, "-o", str(tmp_path / "c.yaml")] + [str(metrics) if a == "M" else a
                                                                               for a in extra]
    result = runner.invoke(main, argv)
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert says in message and len(message.splitlines()) == 1 and "Traceback" not in result.output


def test_calibrate_writes_the_method_and_head_it_measured(runner, tmp_path):
    stats = tmp_path / "iter.json"
    stats.write_text(json.dumps([trtllm_iteration(1, 4, 12, 3, 4), trtllm_iteration(2, 4, 12, 4, 4)]))
    out = tmp_path / "c.yaml"
    result = runner.invoke(main, ["calibrate", "--trtllm-stats", str(stats), "--target", MODEL, "--head", HEAD,
                                  "-o", str(out)])
    assert result.exit_code == 0, result.output
    cal = read_calibration(out)
    assert (cal.method, cal.head, cal.draft) == ("eagle3", HEAD, None)
    assert cal.fitted_acceptance[0].alpha == pytest.approx(0.5, abs=1e-9)


def test_recommend_ranks_a_method_with_the_acceptance_calibrated_for_it(runner, tmp_path):
    stats = tmp_path / "iter.json"
    stats.write_text(json.dumps([trtllm_iteration(1, 4, 12, 3, 4), trtllm_iteration(2, 4, 12, 4, 4)]))
    out = tmp_path / "c.yaml"
    assert runner.invoke(main, ["calibrate", "--trtllm-stats", str(stats), "--target", MODEL, "--head", HEAD,
                                "-o", str(out)]).exit_code == 0
    args = ["recommend", "--target", MODEL, "--gpu", "h100-sxm", "--engine", "trtllm", "--method", "all",
            "--format", "json"]
    plain = json.loads(runner.invoke(main, args).stdout)
    result = runner.invoke(main, [*args, "--calibration", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["candidates"]

    def row(data, method):
        return next(r for r in data if r["method"] == method and r["gpus"] == 1)

    # The file measured EAGLE-3 with this head at alpha 0.5: its row uses it; other methods keep their priors.
    assert row(rows, "eagle3")["alpha"] == pytest.approx(0.5, abs=1e-3)
    assert row(plain["candidates"], "eagle3")["alpha"] > 0.6
    assert row(rows, "ngram")["alpha"] == row(plain["candidates"], "ngram")["alpha"]

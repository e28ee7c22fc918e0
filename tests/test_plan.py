"""estimate, recommend and the alpha prior: behaviour and the command line."""

from __future__ import annotations

import json

import pytest

from planner import speedup as sp
from planner.catalog.lookup import find_model
from planner.catalog.precisions import weight_format
from planner.cli import main
from planner.plan import EstimateInputs, RecommendInputs, estimate, recommend
from planner.priors import TASKS, alpha_prior, relationship
from planner.requests import FitInputs

ESTIMATE_KEYS = {"t_target_ms", "t_draft_ms", "t_verify_ms", "target_tokens_per_s", "c", "r", "k", "alpha",
                 "alpha_source", "mean_accepted_length", "speedup", "speedup_low", "speedup_high",
                 "spec_tokens_per_s", "best_k", "bound", "fit"}
CANDIDATE_KEYS = {"draft", "draft_precision", "k", "gpus", "speedup", "speedup_low", "speedup_high", "c", "alpha",
                  "alpha_source", "fits", "tokens_per_s", "verdict"}


def _est(runner, *args):
    result = runner.invoke(main, ["estimate", *args, "--format", "json"])
    return result, (json.loads(result.stdout) if result.exit_code in (0, 1) else None)


# --- prior ---------------------------------------------------------------------------------------------


def _m(name):
    return find_model(name).spec


def test_prior_relationships():
    assert relationship(_m("qwen2.5-72b"), _m("qwen2.5-0.5b")) == "same-generation"
    assert relationship(_m("llama-3.1-70b"), _m("llama-3.2-1b")) == "other-generation"
    assert relationship(_m("deepseek-v3"), _m("deepseek-r1-draft-0.5b")) == "distilled"
    assert relationship(_m("llama-3.1-8b"), _m("qwen2.5-0.5b")) == "cross-tokenizer"  # issue 9: UAG mode


def test_prior_matches_spec_bench_anchor():
    # Spec-Bench SpS: vicuna-68m drafting Vicuna-7B, mean accepted 2.28 at k=5 -> alpha 0.578.
    prior = alpha_prior(_m("lmsys/vicuna-7b-v1.3"), _m("double7/vicuna-68m"), weight_format("fp16"), "chat")
    assert prior.low <= 0.578 <= prior.high


def test_prior_orders():
    t, fmt = _m("qwen2.5-72b"), weight_format("bf16")
    small, big = alpha_prior(t, _m("qwen2.5-0.5b"), fmt), alpha_prior(t, _m("qwen2.5-7b"), fmt)
    assert big.mid > small.mid
    assert alpha_prior(t, _m("qwen2.5-7b"), weight_format("int4-awq")).mid < big.mid
    by_task = {task: alpha_prior(t, _m("qwen2.5-0.5b"), fmt, task).mid for task in TASKS}
    assert by_task["code"] > by_task["chat"] and by_task["structured"] > by_task["chat"]
    assert all(p.low < p.mid < p.high for p in (small, big))


# --- estimate ------------------------------------------------------------------------------------------


def test_estimate_json_fields_and_prior_band(runner):
    result, d = _est(runner, "--target", "llama-3.1-70b", "--draft", "llama-3.2-1b", "--gpu", "h100-sxm", "--gpus", "2")
    assert result.exit_code == 0, result.stderr
    assert ESTIMATE_KEYS <= d.keys()
    assert d["alpha_source"] == "prior" and d["speedup_low"] < d["speedup"] < d["speedup_high"]
    assert d["k"] == d["best_k"]
    assert d["c"] == pytest.approx(d["t_draft_ms"] / d["t_target_ms"], rel=1e-3)
    # vLLM drafts a fixed k; its round adds a fixed host cost (planner/draftloop/loops.yaml, issue 9 point 3)
    assert d["speedup"] == pytest.approx(float(sp.speedup(d["alpha"], d["k"], d["c"], d["r"] + d["fixed_round_steps"])),
                                         rel=1e-3)
    assert {k: d["bound"][k] for k in ("target", "draft", "verify")} == {"target": "memory", "draft": "memory", "verify": "memory"}
    # Issue 9: the bound block also names the operator that takes most of each pass, and its regime.
    for role in ("target", "draft", "verify"):
        op = d["bound"]["operator"][role]
        assert op["regime"] in ("memory", "compute", "fixed") and op["operators_ms"][op["operator"]] == max(op["operators_ms"].values())


def test_estimate_target_alone(runner):
    result, d = _est(runner, "--target", "llama-3.1-8b", "--gpu", "h100-sxm")
    assert result.exit_code == 0 and d["draft"] is None and d["speedup"] == 1.0 and d["t_target_ms"] > 0


def test_user_alpha_and_acceptance_rate_convert(runner):
    args = ["--target", "llama-3.1-8b", "--draft", "llama-3.2-1b", "--gpu", "h100-sxm", "--k", "4"]
    _, by_alpha = _est(runner, *args, "--alpha", "0.8")
    rate = float(sp.acceptance_rate_from_alpha(0.8, 4))
    _, by_rate = _est(runner, *args, "--acceptance-rate", str(rate))
    assert by_alpha["alpha_source"] == by_rate["alpha_source"] == "user"
    assert by_rate["alpha"] == pytest.approx(0.8, abs=1e-3)
    assert by_alpha["speedup"] == pytest.approx(by_rate["speedup"], rel=1e-3)
    assert by_alpha["speedup_low"] == by_alpha["speedup_high"] == by_alpha["speedup"]


@pytest.mark.parametrize("flags, message", [
    (["--alpha", "1.2"], "--alpha must be a finite decimal number at least 0 and at most 1 (got '1.2')"),
    (["--alpha", "-0.1"], "--alpha must be a finite decimal number at least 0 and at most 1"),
    (["--alpha", "nan"], "--alpha must be a finite decimal number at least 0 and at most 1 (got 'nan')"),
    (["--acceptance-rate", "1.5", "--k", "4"], "--acceptance-rate must be a finite decimal number at least 0"),
    (["--k", "0"], "--k must be at least 1 and at most 64 (got '0')"),
    (["--k", "65"], "--k must be at least 1 and at most 64 (got '65')"),
    (["--acceptance-rate", "0.5"], "give that --k too"),
    (["--alpha", "0.7", "--acceptance-rate", "0.5", "--k", "3"], "not both"),
])
def test_bad_acceptance_and_k_exit_2(runner, flags, message):
    result = runner.invoke(main, ["estimate", "--target", "llama-3.1-8b", "--draft", "llama-3.2-1b",
                                  "--gpu", "h100-sxm", *flags])
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_large_batch_makes_speculation_stop_paying():
    small = estimate(EstimateInputs(FitInputs(target="llama-3.1-8b", draft="llama-3.2-1b", gpu="h100-sxm",
                                              batch=1, context=512)))
    large = estimate(EstimateInputs(FitInputs(target="llama-3.1-8b", draft="llama-3.2-1b", gpu="h100-sxm",
                                              batch=512, context=256)))
    assert float(small.prices.speedup) > 1.2
    assert float(large.prices.speedup) < 1.0 and "compute-bound" in large.verdict


def test_warnings_for_tiny_draft_low_alpha_and_large_k():
    e = estimate(EstimateInputs(FitInputs(target="lmsys/vicuna-7b-v1.3", draft="double7/vicuna-68m", gpu="a100-sxm-80gb",
                                          engine="hf", k=16), k_given=True, alpha=0.5))
    text = " ".join(e.warnings)
    assert "under 0.5B" in text and "wrong draft" in text and "far above" in text


def test_draft_larger_than_target_is_allowed_with_a_warning(runner):
    result, d = _est(runner, "--target", "llama-3.2-1b", "--draft", "llama-3.1-8b", "--gpu", "h100-sxm")
    assert result.exit_code == 0
    assert any("not smaller" in w for w in d["warnings"]) and d["speedup"] < 1


# --- recommend -----------------------------------------------------------------------------------------


def _rec(runner, *args):
    result = runner.invoke(main, ["recommend", *args, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_recommend_ranks_and_always_has_baseline(runner):
    d = _rec(runner, "--target", "llama-3.1-70b", "--gpu", "h100-sxm", "--gpus", "4", "--top", "3")
    rows = d["candidates"]
    assert all(CANDIDATE_KEYS <= r.keys() for r in rows)
    assert any(r["draft"] is None for r in rows)
    fitting = [r for r in rows if r["fits"]]
    assert [r["tokens_per_s"] for r in fitting] == sorted((r["tokens_per_s"] for r in fitting), reverse=True)
    assert rows[0]["draft"] is not None and rows[0]["speedup"] > 1.05
    assert {r["alpha_source"] for r in rows if r["draft"]} == {"prior"}


def test_recommend_never_ranks_non_fitting_above_fitting(runner):
    d = _rec(runner, "--target", "qwen2.5-32b", "--gpu", "rtx-4090", "--engine", "llamacpp", "--top", "50")
    fits = [r["fits"] for r in d["candidates"]]
    assert fits == sorted(fits, reverse=True)
    assert all(r["verdict"].startswith("does not fit") for r in d["candidates"] if not r["fits"])


def test_recommend_says_when_speculation_does_not_pay():
    rows = recommend(RecommendInputs(FitInputs(target="llama-3.1-8b", gpu="h100-sxm", batch=512, context=256),
                                     objective="throughput")).candidates
    assert rows[0].draft is None
    assert all(r.speedup < 1.05 or not r.fits for r in rows if r.draft)


def test_recommend_cost_objective_needs_price(runner):
    result = runner.invoke(main, ["recommend", "--target", "llama-3.1-8b", "--gpu", "h100-sxm", "--objective", "cost"])
    assert result.exit_code == 2 and "--gpu-hour-usd" in result.stderr
    d = _rec(runner, "--target", "llama-3.1-8b", "--gpu", "h100-sxm", "--objective", "cost", "--gpu-hour-usd", "2.5")
    per_usd = [r["tokens_per_usd"] for r in d["candidates"] if r["fits"]]
    assert per_usd == sorted(per_usd, reverse=True)


def test_validate_command_prints_totals(runner):
    result = runner.invoke(main, ["validate"])
    assert "median |error|" in result.stdout and "pure roofline" in result.stdout
    as_json = runner.invoke(main, ["validate", "--format", "json"])
    data = json.loads(as_json.stdout)
    assert data["summary"]["decode_tokens_per_s"]["median_abs_error"] <= 0.15
    # Issue 9: exit 1 exactly when one of the targets (decode, prior-only, measured acceptance, r, no-gain) is missed.
    assert result.exit_code == as_json.exit_code == (0 if data["summary"]["targets_met"] else 1)

"""The draft loop wired in: plans and llama.cpp exports agree on p-min; calibrate records the loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.calibration.llamacpp_outputs import llamacpp_calibration
from planner.cli import main
from planner.speedup import alpha_from_acceptance_rate

PAIR = ["--target", "meta-llama/Llama-3.1-8B-Instruct", "--draft", "meta-llama/Llama-3.2-1B-Instruct",
        "--gpu", "rtx-4090", "--engine", "llamacpp", "--k", "5"]


@pytest.mark.parametrize(("flags", "p_min"), [([], 0.75), (["--p-min", "0.6"], 0.6)])
def test_plan_and_llamacpp_export_agree_on_p_min(flags: list[str], p_min: float, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["estimate", *PAIR, *flags, "--format", "json"])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.output)
    assert plan["p_min"] == p_min and plan["draft_loop"]["rule"] == "stop_before"
    (tmp_path / "plan.json").write_text(res.output, encoding="utf-8")
    out = tmp_path / "llamacpp-serve.sh"
    res = runner.invoke(main, ["export", "--server", "llamacpp", "--from-plan", str(tmp_path / "plan.json"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert f"--spec-draft-p-min {p_min:g}" in out.read_text(encoding="utf-8")
    env = next(tmp_path.glob("*.env")).read_text(encoding="utf-8")
    assert f"LLAMA_ARG_SPEC_DRAFT_P_MIN={p_min:g}\n" in env


def test_counts_and_drafted_per_round_convert_through_the_loop() -> None:
    runner = CliRunner()
    base = ["estimate", *PAIR, "--format", "json"]
    by_counts = json.loads(runner.invoke(main, [*base, "--drafted", "730", "--accepted", "580", "--rounds", "200"]).output)
    by_rate = json.loads(runner.invoke(main, [*base, "--acceptance-rate", str(580 / 730), "--drafted-per-round",
                                              str(730 / 200)]).output)
    assert by_counts["alpha"] == pytest.approx(by_rate["alpha"], abs=1e-4)
    assert by_counts["drafted_per_round"] == pytest.approx(3.65, abs=0.02)
    # below p-min's floor: one line, exit 2
    res = runner.invoke(main, [*base, "--acceptance-rate", "0.05", "--p-min", "0.95"])
    assert res.exit_code == 2 and "p-min" in res.output


def test_llamacpp_calibration_records_p_min_and_drafted_per_round() -> None:
    response = json.dumps({"generation_settings": {"speculative.p_min": 0.75, "speculative.n_max": 8},
                           "timings": {"draft_n": 300, "draft_n_accepted": 240, "predicted_n": 340}})
    # issue 10: the rounds are the server's own count (its /metrics), not predicted_n - accepted
    metrics = ("llamacpp:spec_decode_num_draft_tokens_total 300\nllamacpp:spec_decode_num_accepted_tokens_total 240\n"
               "llamacpp:spec_decode_num_drafts_total 100\n")
    cal = llamacpp_calibration([response, metrics], 8, "meta-llama/Llama-3.1-8B-Instruct",
                               "meta-llama/Llama-3.2-1B-Instruct")
    fit = cal.fitted_acceptance[0]
    assert fit.p_min == 0.75 and fit.drafted_per_round == pytest.approx(300 / 100)
    # the drafted tokens were the confident ones: the fixed-k reading at n-max overstates alpha
    assert fit.alpha < float(alpha_from_acceptance_rate(240 / 300, 8)) - 0.03
    flag = llamacpp_calibration([json.dumps({"timings": {"draft_n": 300, "draft_n_accepted": 240}})], 8,
                                "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.2-1B-Instruct", p_min=0.8)
    assert flag.fitted_acceptance[0].p_min == 0.8


def test_estimate_with_a_llamacpp_calibration_prices_its_p_min(tmp_path: Path) -> None:
    from planner.calibration.schema import write_calibration

    response = json.dumps({"generation_settings": {"speculative.p_min": 0.6},
                           "timings": {"draft_n": 400, "draft_n_accepted": 300, "predicted_n": 400}})
    cal = llamacpp_calibration([response], 5, "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.2-1B-Instruct")
    path = write_calibration(cal, tmp_path / "cal.yaml")
    res = CliRunner().invoke(main, ["estimate", *PAIR, "--draft-precision", "fp16", "--calibration", str(path),
                                    "--format", "json"])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.output)
    assert plan["p_min"] == 0.6 and plan["alpha_source"] == "calibration"
    assert plan["alpha"] == pytest.approx(cal.fitted_acceptance[0].alpha, abs=1e-4)


def test_replanning_an_export_keeps_the_plans_p_min(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["estimate", *PAIR, "--p-min", "0.6", "--format", "json"])
    (tmp_path / "plan.json").write_text(res.output, encoding="utf-8")
    out = tmp_path / "llamacpp-serve.sh"
    res = runner.invoke(main, ["export", "--server", "llamacpp", "--from-plan", str(tmp_path / "plan.json"), "--k", "4",
                               "-o", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text(encoding="utf-8")
    assert "--spec-draft-p-min 0.6" in text and "--spec-draft-n-max 4" in text


def test_transformers_export_writes_the_planned_confidence_threshold(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["estimate", "--target", "meta-llama/Llama-3.1-8B-Instruct", "--draft",
                               "meta-llama/Llama-3.2-1B-Instruct", "--gpu", "h100-sxm", "--engine", "hf", "--k", "6",
                               "--p-min", "0.3", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["p_min"] == 0.3
    (tmp_path / "plan.json").write_text(res.output, encoding="utf-8")
    out = tmp_path / "hf.py"
    assert runner.invoke(main, ["export", "--server", "hf", "--from-plan", str(tmp_path / "plan.json"),
                                "-o", str(out)]).exit_code == 0
    assert "assistant_confidence_threshold=0.3," in out.read_text(encoding="utf-8")


def test_a_proposers_per_step_host_time_is_part_of_every_draft_pass() -> None:
    """vLLM V0's worker adds loops.yaml draft_pass_us to each draft pass: c includes it, V1's does not."""
    from planner.draftloop import engine_loop
    from planner.plan import EstimateInputs, estimate
    from planner.requests import FitInputs

    def priced(version: str):  # type: ignore[no-untyped-def]
        fit = FitInputs(target="meta-llama/Llama-3.1-70B", draft="meta-llama/Llama-3.2-1B", gpu="mi300x",
                        precision="fp8", draft_precision="fp8", k=5)
        return estimate(EstimateInputs(fit, k_given=True, server_version=version)).prices

    v0, v1 = priced("0.6.7"), priced("0.11.0")
    extra = engine_loop("vllm", "0.6.7").draft_pass_us * 1e-6
    assert extra > 0 and engine_loop("vllm", "0.11.0").draft_pass_us == 0
    assert float(v0.t_draft_s) == pytest.approx(float(v1.t_draft_s) + extra)
    assert float(v0.c) == pytest.approx(float(v0.t_draft_s) / float(v0.t_target_s))


def test_recommend_and_report_price_the_release_asked_for(tmp_path: Path) -> None:
    """recommend --server-version prices that release's loop (vLLM V0's worker costs more than V1's)."""
    runner = CliRunner()
    base = ["recommend", "--target", "meta-llama/Llama-3.1-70B-Instruct", "--gpu", "mi300x", "--format", "json"]
    v0 = json.loads(runner.invoke(main, base + ["--server-version", "0.6.7"]).stdout)["candidates"][0]
    v1 = json.loads(runner.invoke(main, base).stdout)["candidates"][0]
    assert v0["draft"] and v1["draft"] and v0["speedup"] < v1["speedup"]
    out = runner.invoke(main, ["report", "--target", "meta-llama/Llama-3.1-70B-Instruct", "--gpu", "mi300x",
                               "--server-version", "0.6.7", "-o", str(tmp_path / "r.html"), "--format", "json"])
    assert out.exit_code == 0, out.stderr


def test_a_rate_without_a_drafted_count_at_long_n_max_is_flagged_a_guess() -> None:
    runner = CliRunner()
    base = ["estimate", "--target", "Qwen/Qwen2.5-32B-Instruct", "--draft", "Qwen/Qwen2.5-0.5B-Instruct",
            "--gpu", "rtx-4090", "--engine", "llamacpp", "--k", "16", "--acceptance-rate", "0.85", "--format", "json"]
    guess = json.loads(runner.invoke(main, base).stdout)["warnings"]
    assert any("without a drafted count" in w for w in guess)
    told = json.loads(runner.invoke(main, base + ["--drafted-per-round", "6"]).stdout)["warnings"]
    assert not any("without a drafted count" in w for w in told)

"""Verdicts that hold under load (issue 9, point 6): what fits comes first, nothing-fits is said first."""

from __future__ import annotations

import json

import pytest

from planner.cli import main
from planner.plan import EstimateInputs, RecommendInputs, estimate, recommend
from planner.requests import FitInputs
from planner.verdicts import Ranked, pass_verdict, recommendation_verdict

_HEAVY = dict(target="meta-llama/Llama-3.1-70B-Instruct", gpu="h100-sxm", gpus=4, batch=256)


def test_nothing_fits_is_the_verdict_and_no_speculation_leads():
    rec = recommend(RecommendInputs(FitInputs(**_HEAVY)))
    assert not any(c.fits for c in rec.candidates)
    assert rec.verdict.startswith("nothing fits on 4 x h100-sxm")
    # Among rows that cannot run, the baseline leads: an impossible speedup is never the top answer.
    assert rec.candidates[0].draft is None


@pytest.mark.parametrize("command", ["recommend", "report"])
def test_nothing_fits_exits_1_and_says_so_first(runner, tmp_path, command):
    args = [command, "--target", _HEAVY["target"], "--gpu", "h100-sxm", "--gpus", "4", "--batch", "256"]
    if command == "report":
        args += ["-o", str(tmp_path / "r.html")]
    result = runner.invoke(main, args)
    assert result.exit_code == 1, result.output
    if command == "recommend":
        lines = result.output.splitlines()
        assert lines[1].startswith("verdict: nothing fits"), lines[:3]
    else:
        assert "Nothing fits" in result.output
    as_json = runner.invoke(main, [a.replace("r.html", "r2.html") for a in args] + ["--format", "json"])
    assert as_json.exit_code == 1 and json.loads(as_json.output)["verdict"].lower().startswith("nothing fits")


@pytest.mark.parametrize("batch, context", [(1, 4096), (64, 2048), (256, 4096), (512, 256)])
@pytest.mark.parametrize("gpus", [1, 4, 8])
def test_rows_that_do_not_fit_never_rank_above_rows_that_do(batch, context, gpus):
    rec = recommend(RecommendInputs(FitInputs(target="meta-llama/Llama-3.1-70B-Instruct", gpu="h100-sxm", gpus=gpus,
                                              batch=batch, context=context), top=100))
    fits = [c.fits for c in rec.candidates]
    assert fits == sorted(fits, reverse=True), fits
    unfit = [c for c in rec.candidates if not c.fits]
    assert [c.draft is None for c in unfit] == sorted((c.draft is None for c in unfit), reverse=True)
    if any(fits):
        assert not rec.verdict.startswith("nothing fits")


def test_compute_bound_verification_says_do_not_speculate_with_the_number():
    est = estimate(EstimateInputs(FitInputs(target="llama-3.1-8b", draft="llama-3.2-1b", gpu="h100-sxm",
                                            batch=512, context=256)))
    assert est.verdict.startswith("do not use speculation")
    assert f"r = {float(est.prices.r):.2f}" in est.verdict and "compute-bound at batch 512" in est.verdict
    rec = recommend(RecommendInputs(FitInputs(target="llama-3.1-8b", gpu="h100-sxm", batch=512, context=256)))
    assert rec.verdict.startswith("do not use speculation: no proposer reaches 1.05x at batch 512")


def test_a_k_that_does_not_pay_points_at_the_k_that_does():
    text = pass_verdict(True, 0.9, c=0.05, r=1.6, alpha=0.8, batch=64, k=8, best_k=2, best_speedup=1.3,
                        verify_bound="compute")
    assert text == ("do not use speculation: 0.90x; verification is compute-bound at batch 64 (r = 1.60); "
                    "k = 2 still pays 1.30x")
    assert "still pays" not in pass_verdict(True, 0.9, 0.05, 1.6, 0.8, 64, k=2, best_k=2, best_speedup=0.9)


def test_recommendation_verdict_reads_the_first_fitting_row():
    rows = [Ranked("big-draft", "bf16", 4, 2, 2.0, False), Ranked(None, None, None, 2, 1.0, True),
            Ranked("d", "fp8", 2, 2, 1.02, True, c=0.1, r=1.0, alpha=0.4)]
    text = recommendation_verdict(rows, "h100-sxm", 8, "nothing fits")
    assert text.startswith("do not use speculation: no proposer reaches 1.05x at batch 8 (best: d fp8 k = 2, 1.02x;")
    rows.insert(1, Ranked("d", "fp8", 3, 2, 1.4, True))
    assert recommendation_verdict(rows, "h100-sxm", 8, "x") == "speculate: d (fp8) with k = 3 on 2 x h100-sxm, 1.40x"
    assert recommendation_verdict(rows[:1], "h100-sxm", 8, "nothing fits here") == "nothing fits here"

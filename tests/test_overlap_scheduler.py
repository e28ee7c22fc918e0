"""An overlap scheduler hides a plain decode step's host time; speculation runs without it (SGLang)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from planner.cli import main
from planner.costmodel import baseline_step_s, decode_cost
from planner.engines import engines
from planner.plan import EstimateInputs, estimate
from planner.plan.common import profiles
from planner.requests import FitInputs, build_fit_request

L31 = "meta-llama/Llama-3.1-8B-Instruct"


def _device(engine: str):  # type: ignore[no-untyped-def]
    """(target profile, device) of Llama-3.1-8B on one H100 under ``engine``."""
    req, _ = build_fit_request(FitInputs(target=L31, gpu="h100-sxm", engine=engine))
    tp, _, device, _ = profiles(req, None, None, 1)
    return tp, device


@given(pass_s=st.floats(1e-5, 1.0), host_s=st.floats(0.0, 0.01))
def test_the_step_shows_the_longer_of_gpu_and_host(pass_s, host_s):
    """max(pass - host, host) with the overlap; the pass as priced without it; never above the pass."""
    _, device = _device("sglang")
    on = replace(device, tau_step_s=host_s, decode_hides_host=1.0)
    off = replace(on, decode_hides_host=0.0)
    total = pass_s + host_s  # a pass always carries its host time
    assert float(baseline_step_s(total, on)) == pytest.approx(max(pass_s, host_s))
    assert float(baseline_step_s(total, off)) == total
    assert float(baseline_step_s(total, on)) <= total


def test_only_sglang_hides_host_time_in_decode():
    specs = engines()
    assert specs["sglang"].decode_overlaps_host
    assert not any(e.decode_overlaps_host for name, e in specs.items() if name != "sglang")


def test_sglang_prices_the_baseline_without_its_host_time_and_every_round_pass_with_it():
    """The plan's target step is SGLang's overlapped decode; its verify ratio carries the host time the
    speculative round exposes (r > 1 at batch 1 for a memory-bound 8B), vLLM's stays the textbook one."""
    fit = FitInputs(target=L31, gpu="h100-sxm", engine="sglang", method="eagle3", k=3, context=2048)
    r = estimate(EstimateInputs(fit, k_given=True))
    t, device = r.prices.passes["target"], _device("sglang")[1]
    assert float(r.prices.t_target_s) == pytest.approx(float(t.total_s) - device.tau_step_s)
    assert float(r.prices.r) == pytest.approx(float(r.prices.passes["verify"].total_s) / float(r.prices.t_target_s))
    assert float(r.prices.r) > 1.05
    v = estimate(EstimateInputs(FitInputs(target=L31, gpu="h100-sxm", engine="vllm", method="eagle3", k=3,
                                          context=2048), k_given=True))
    assert float(v.prices.t_target_s) == pytest.approx(float(v.prices.passes["target"].total_s))
    assert float(v.prices.r) < 1.01


def test_the_published_sglang_baseline_is_within_three_percent():
    """SGLang docs / EAGLE-3 paper Table 4: Llama-3.1-8B-Instruct on one H100, 158.34 tokens/s at batch 1.
    With tau_step on every decode step the plan said 149.7 (-5.5%); overlapped, 161.8 (+2.2%)."""
    tp, device = _device("sglang")
    step = baseline_step_s(decode_cost(tp, device, 1, 512).total_s, device)
    assert 1.0 / float(step) == pytest.approx(158.34, rel=0.03)
    assert np.asarray(step).shape == ()


def test_the_plan_says_how_much_host_time_plain_decode_hides(runner):
    """JSON carries decode_hidden_host_ms (SGLang: its tau_step; vLLM: 0) and the text says what it means."""
    args = ["estimate", "--target", L31, "--gpu", "h100-sxm", "--method", "eagle3", "--k", "3"]
    sglang = runner.invoke(main, args + ["--engine", "sglang", "--format", "json"])
    vllm = runner.invoke(main, args + ["--engine", "vllm", "--format", "json"])
    assert sglang.exit_code == vllm.exit_code == 0
    assert json.loads(sglang.stdout)["decode_hidden_host_ms"] == pytest.approx(_device("sglang")[1].tau_step_s * 1e3)
    assert json.loads(vllm.stdout)["decode_hidden_host_ms"] == 0.0
    text = runner.invoke(main, args + ["--engine", "sglang"]).stdout
    assert "overlap scheduler, which hides 0.50 ms of host time per step" in text
    assert "overlap scheduler" not in runner.invoke(main, args + ["--engine", "vllm"]).stdout

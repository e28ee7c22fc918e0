"""A tree set by hand (planner.plan.given_tree): SGLang's shape flags or a static tree by name, priced as given.

Checks by hand: the passes of a round from the tree's levels, E[L] inverted back to the measured
accept length, the round time from the cost model's own pass costs, and the one-line refusals.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.cli import main
from planner.costmodel import pass_cost
from planner.errors import SpecplanError
from planner.methods.rounds import method_profiles
from planner.plan import EstimateInputs, estimate
from planner.requests import FitInputs, build_fit_request
from planner.trees import (MeasuredShape, alpha_for_shape_length, draft_pass_widths, shape_expected_length,
                           shape_longest_length)

L31 = "meta-llama/Llama-3.1-8B-Instruct"
EAGLE1_TREE = MeasuredShape("static", name="mc_sim_7b_63", verify_tokens=26)
SGLANG_DEFAULT = MeasuredShape("dynamic", depth=5, topk=4, verify_tokens=8)


def test_pass_widths_follow_the_tree_levels():
    # EAGLE's mc_sim_7b_63 (static_trees.yaml): 4 nodes at depth 1, 8 at 2, 8 at 3, 3 at 4, 2 at 5; the head runs
    # on the root, then on each level that has children: 1, 4, 8, 8, 3 tokens.
    assert draft_pass_widths(EAGLE1_TREE) == (1, 4, 8, 8, 3)
    assert shape_longest_length(EAGLE1_TREE) == 6
    assert draft_pass_widths(SGLANG_DEFAULT) == (1, 4, 4, 4, 4)
    assert shape_longest_length(SGLANG_DEFAULT) == 6
    assert draft_pass_widths(MeasuredShape("chain", k=3)) == (1, 1, 1)


@settings(max_examples=40, deadline=None)
@given(alpha=st.floats(0.02, 0.98), which=st.sampled_from([EAGLE1_TREE, SGLANG_DEFAULT, MeasuredShape("chain", k=4)]))
def test_alpha_for_shape_length_inverts_the_expected_length(alpha, which):
    tau = shape_expected_length(which, alpha)
    assert alpha_for_shape_length(which, tau) == pytest.approx(alpha, abs=1e-6)


def test_a_measured_accept_length_on_a_tree_is_reproduced_and_the_round_is_the_cost_models():
    fit = FitInputs(target=L31, gpu="h100-sxm", engine="sglang", method="eagle3", context=2048)
    r = estimate(EstimateInputs(fit, num_steps=5, topk=4, num_draft_tokens=8, mean_accepted_length=3.9))
    assert r.settings == {"method": "eagle3", "head": "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B", "k": 5, "num_steps": 5,
                          "topk": 4, "num_draft_tokens": 8}
    assert float(r.prices.mean_accepted_length) == pytest.approx(3.9, rel=1e-9)
    # The round by hand: the head over 1 then 4 x 4 tokens, verify of 8 tokens, SGLang's fixed round time.
    req, _ = build_fit_request(fit)
    p = method_profiles(req, 1, None, 5)
    ctx = float(r.fit.request.context) / 2
    head = sum(float(pass_cost(p.proposer, p.proposer_device, 1, ctx, w).total_s) for w in (1, 4, 4, 4, 4))
    verify = float(pass_cost(p.target, p.device, 1, ctx, 8).total_s)
    # SGLang's plain decode runs under its overlap scheduler: the step's host time hides under the GPU's.
    target = float(pass_cost(p.target, p.device, 1, ctx, 1).total_s) - p.device.tau_step_s
    fixed = r.loop.fixed_round_us * 1e-6
    assert float(r.prices.speedup) == pytest.approx(3.9 * target / (head + verify + fixed), rel=1e-6)
    assert r.speedup_low == r.speedup_high == pytest.approx(float(r.prices.speedup))


def test_prior_band_brackets_the_mid_and_topk_one_is_a_chain():
    fit = FitInputs(target=L31, gpu="h100-sxm", engine="sglang", method="eagle3")
    tree = estimate(EstimateInputs(fit, num_steps=5, topk=4, num_draft_tokens=8))
    assert tree.alpha.source == "prior" and tree.speedup_low < float(tree.prices.speedup) < tree.speedup_high
    chain = estimate(EstimateInputs(fit, num_steps=3, topk=1, num_draft_tokens=4))
    same = estimate(EstimateInputs(FitInputs(target=L31, gpu="h100-sxm", engine="sglang", method="eagle3", k=3),
                                   k_given=True))
    assert chain.k == 3 and "topk" not in chain.settings
    assert float(chain.prices.speedup) == pytest.approx(float(same.prices.speedup))


@pytest.mark.parametrize("fit, extra, words", [
    (dict(engine="vllm", method="eagle3"), dict(num_steps=5, topk=4, num_draft_tokens=8),
     "serves --method eagle3 as a chain only"),
    (dict(engine="sglang", draft="meta-llama/Llama-3.2-1B-Instruct"), dict(topk=4, num_steps=3, num_draft_tokens=6),
     "a draft model drafts a chain"),
    (dict(engine="sglang", method="eagle3"), dict(topk=4), "needs --num-steps"),
    (dict(engine="sglang", method="eagle3"), dict(num_steps=5, topk=4, num_draft_tokens=8, acceptance_rate=0.6),
     "give --mean-accepted-length"),
    (dict(engine="sglang", method="eagle3"), dict(tree="mc_sim_7b_63"), "two trees share the name"),
    (dict(engine="sglang", method="eagle3"), dict(tree="no_such_tree", num_draft_tokens=9), "no such static tree"),
    (dict(engine="sglang", method="eagle3"), dict(num_steps=5, topk=4, num_draft_tokens=8, mean_accepted_length=6.5),
     "between 1 and 6"),
])
def test_bad_tree_inputs_are_one_line_refusals(fit, extra, words):
    with pytest.raises(SpecplanError) as err:
        estimate(EstimateInputs(FitInputs(target=L31, gpu="h100-sxm", **fit), **extra))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_cli_prices_eagles_static_tree_on_its_reference_code(runner):
    result = runner.invoke(main, ["estimate", "--target", "lmsys/vicuna-7b-v1.3", "--gpu", "a100-sxm-80gb", "--engine", "eagle-ref",
               "--method", "eagle", "--tree", "mc_sim_7b_63", "--num-draft-tokens", "26", "--context", "512",
               "--mean-accepted-length", "3.61", "--format", "json"])
    d = json.loads(result.stdout)
    assert result.exit_code == 0 and d["engine"] == "eagleref" and d["head"] == "yuhuili/EAGLE-Vicuna-7B-v1.3"
    assert d["settings"]["tree"] == "mc_sim_7b_63" and d["settings"]["num_draft_tokens"] == 26
    assert d["mean_accepted_length"] == pytest.approx(3.61, rel=1e-6)
    assert 1.0 < d["speedup"] < 3.61 and np.isfinite(d["speedup"])


def test_cli_tree_on_a_chain_engine_exits_2(runner):
    result = runner.invoke(main, ["estimate", "--target", L31, "--gpu", "h100-sxm", "--engine", "vllm", "--method", "eagle3",
               "--num-steps", "5", "--topk", "4", "--num-draft-tokens", "8"])
    err = result.stderr.strip()
    assert result.exit_code == 2 and len(err.splitlines()) == 1 and "sglang" in err

"""SGLang EAGLE tree rounds priced by the cost model: the chain case, the parts, and the best shape per batch."""

from __future__ import annotations

import numpy as np
import pytest

from planner.costmodel.operators import decode_cost, pass_cost
from planner.costmodel.profiles import device_profile
from planner.costmodel.proposer_profile import proposer_profile
from planner.methods.trees import best_tree, tree_round, tree_round_s
from planner.plan.common import profiles
from planner.requests import FitInputs, build_fit_request
from planner.search import price_rounds
from planner.trees import (
    TreeInputError, expected_accepted_length, method_rank_profile, model_from_alpha, sglang_eagle_tree, sglang_expected_lengths, shape_grid,
)
from tests.test_trees import assert_within_se

CONTEXT = 4096


@pytest.fixture(scope="module")
def h100_8b():
    """Llama-3.1-8B on one H100 under SGLang with its catalogued EAGLE-3 head."""
    req, _ = build_fit_request(FitInputs(target="meta-llama/Llama-3.1-8B-Instruct", gpu="h100", method="eagle3",
                                         engine="sglang"))
    target, _, device, _ = profiles(req, None, None, 1)
    head = proposer_profile(req.proposer, req.target, req.precision, req.kv, 1, req.gpu)
    head_device = device_profile(req.gpu, req.engine, 1, role="draft")

    def head_for(steps):
        return proposer_profile(req.proposer, req.target, req.precision, req.kv, 1, req.gpu, k=steps)

    return target, head, device, head_device, head_for


FITTED = method_rank_profile("eagle3")


@pytest.mark.parametrize("batch", [1, 16, 128])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 7])
def test_a_topk_1_tree_is_price_rounds_chain(h100_8b, batch, k):
    """loop=None: price_rounds' round is k draft passes plus verify(k + 1), the tree's (k, 1, k + 1)."""
    target, head, device, head_device, _ = h100_8b
    pr = price_rounds(target, head, device, head_device, batch, CONTEXT, k, 0.7)
    chain_round = k * float(pr.t_draft_s) + float(pr.t_verify_s)
    tree = float(tree_round_s(target, head, device, head_device, batch, CONTEXT, k, 1, k + 1))
    assert tree == pytest.approx(chain_round, rel=1e-12)
    # The same E[L] too: the fitted model's SGLang chain is 1 + alpha + ... + alpha^k.
    chain_length = sglang_expected_lengths(k, 1, model_from_alpha(0.7, 1, FITTED))[k]
    assert chain_length == pytest.approx(float(pr.mean_accepted_length), rel=1e-12)


def test_round_parts_and_vectorised_draft_tokens(h100_8b):
    target, head, device, head_device, _ = h100_8b
    n = np.arange(2, 33)
    parts = tree_round(target, head, device, head_device, 8, CONTEXT, 5, 4, n, fixed_round_s=2e-4)
    first = float(pass_cost(head, head_device, 8, CONTEXT, 1).total_s)
    later = 4 * float(pass_cost(head, head_device, 8, CONTEXT, 4).total_s)
    assert float(parts.first_draft_s) == pytest.approx(first) and float(parts.later_drafts_s) == pytest.approx(later)
    scalar = [float(tree_round_s(target, head, device, head_device, 8, CONTEXT, 5, 4, int(m), 2e-4)) for m in n]
    assert np.allclose(parts.total_s, scalar, rtol=1e-12)
    assert np.allclose(parts.total_s, first + later + pass_cost(target, device, 8, CONTEXT, n).total_s + 2e-4)
    assert np.all(np.diff(parts.total_s) >= 0)  # more verified tokens never cost less
    with pytest.raises(TreeInputError, match="fixed round time"):
        tree_round_s(target, head, device, head_device, 8, CONTEXT, 5, 4, 8, fixed_round_s=-1.0)


def _brute_force(h100_8b, batch, model):
    """Every grid shape priced one by one with tree_round_s: (tokens/s, -verify tokens, shape)."""
    target, head, device, head_device, _ = h100_8b
    best = None
    for steps, topk, n in shape_grid():
        e = float(sglang_expected_lengths(steps, topk, model)[n - 1])
        t = float(tree_round_s(target, head, device, head_device, batch, CONTEXT, steps, topk, n))
        key = (batch * e / t, -n)
        if best is None or key[0] > best[0][0] * (1 + 1e-12):
            best = (key, (steps, topk, n))
    return best[1]


@pytest.mark.parametrize("batch", [1, 32])
def test_best_tree_is_the_grid_maximum(h100_8b, batch):
    target, head, device, head_device, _ = h100_8b
    model = model_from_alpha(0.75, 8, FITTED)
    got = best_tree(target, head, device, head_device, batch, CONTEXT, model)
    s = got.shape
    assert (s.steps, s.topk, s.num_draft_tokens) == _brute_force(h100_8b, batch, model)
    # SGLang's plain decode runs under its overlap scheduler: the step's host time hides under the GPU's.
    t_target = float(decode_cost(target, device, batch, CONTEXT).total_s) - device.tau_step_s
    assert got.target_decode_s == pytest.approx(t_target)
    assert got.speedup == pytest.approx(s.mean_accepted_length * t_target / s.round_time_s)
    assert s.round_time_s == pytest.approx(float(tree_round_s(target, head, device, head_device, batch, CONTEXT,
                                                              s.steps, s.topk, s.num_draft_tokens)))


@pytest.mark.parametrize("alpha", [0.6, 0.75, 0.85])
def test_trees_pay_at_batch_1_and_shrink_when_verify_turns_compute_bound(h100_8b, alpha):
    """Batch 1 on an H100: verifying 32 tokens costs about one decode step (weight reads dominate),
    so a wide tree is nearly free and the fitted profile makes it pay. Batch 256: 32 tokens per
    request verify at the flop rate, and the best shape verifies fewer tokens and is a chain or narrower."""
    target, head, device, head_device, _ = h100_8b
    model = model_from_alpha(alpha, 8, FITTED)
    small = best_tree(target, head, device, head_device, 1, CONTEXT, model)
    large = best_tree(target, head, device, head_device, 256, CONTEXT, model)
    assert small.shape.topk > 1 and small.speedup > 1
    assert large.shape.num_draft_tokens < small.shape.num_draft_tokens and large.shape.topk < small.shape.topk
    v1 = pass_cost(target, device, 1, CONTEXT, 32).total_s / decode_cost(target, device, 1, CONTEXT).total_s
    v256 = pass_cost(target, device, 256, CONTEXT, 32).total_s / decode_cost(target, device, 256, CONTEXT).total_s
    assert float(v1) < 1.01 and float(v256) > 3  # the physics behind the move


def test_spreading_the_fusion_over_the_round_only_lowers_the_round(h100_8b):
    """EAGLE-3 fuses the target's features once per round: a head profile for k = steps passes
    prices each pass at or below the k = 1 profile, so the best round is no slower."""
    target, head, device, head_device, head_for = h100_8b
    model = model_from_alpha(0.75, 8, FITTED)
    fixed = best_tree(target, head, device, head_device, 4, CONTEXT, model)
    spread = best_tree(target, head_for, device, head_device, 4, CONTEXT, model)
    assert spread.shape.tokens_per_s >= fixed.shape.tokens_per_s * (1 - 1e-12)


def test_bad_batch_is_refused(h100_8b):
    target, head, device, head_device, _ = h100_8b
    with pytest.raises(TreeInputError, match="batch must be >= 1"):
        best_tree(target, head, device, head_device, 0, CONTEXT, model_from_alpha(0.7, 4, FITTED))


@pytest.mark.parametrize("steps, topk, n, alpha", [(5, 4, 8, 0.7), (6, 8, 32, 0.8), (3, 2, 6, 0.5)])
def test_monte_carlo_of_the_fitted_sglang_tree(steps, topk, n, alpha):
    """Simulated rounds of SGLang's tree under the fitted split commit sglang_expected_lengths' E[L]."""
    model = model_from_alpha(alpha, topk, FITTED)
    tree = sglang_eagle_tree(steps, topk, n, model)
    assert float(sglang_expected_lengths(steps, topk, model)[n - 1]) == pytest.approx(
        expected_accepted_length(tree, model), rel=1e-12)
    assert_within_se(tree, model, seed=20261203 + steps)  # the simulated mean and depth pmf vs the closed form

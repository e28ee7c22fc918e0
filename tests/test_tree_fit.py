"""The rank-profile fit to published chain/tree pairs, the static trees by name, and the method priors' tree model."""

from __future__ import annotations

import pytest

from planner.priors.conversions import alpha_from_mean_accepted_length
from planner.priors.method_rows import Shape, method_rows, row_alpha
from planner.priors.methods import method_prior
from planner.priors.tree_model import fitted_tree_model, shape_basis, tree_model_for, tree_tau
from planner.trees import (
    MeasuredShape, TreeInputError, alpha_for_shape_length, best_tree, chain, expected_accepted_length, method_rank_profile, model_from_alpha,
    rank_profile, rank_retention, shape_expected_length, static_tree,
)
from planner.trees.fit import FitRow, fit_rank_retention, fit_rows

FIT = fit_rank_retention(fit_rows())
EAGLE_FIT = rank_profile("eagle-fit")


# ---- the fit ---------------------------------------------------------------------------------------------


def test_the_fit_reproduces_its_data_within_the_stated_residuals():
    """rank_profiles.yaml states q 0.6965, RMSE 0.030 and max |residual| 0.066 tokens over 18 rows."""
    assert len([r for r in FIT.rows if not r.holdout]) == 18 and len(FIT.alphas) == 9
    assert FIT.retention == pytest.approx(EAGLE_FIT.retention, abs=5e-4)
    assert FIT.rmse == pytest.approx(0.030, abs=1e-3) and FIT.max_abs_residual == pytest.approx(0.066, abs=1e-3)
    assert FIT.max_abs_residual < 0.1  # every fitted tau within 0.1 token (about 3%)
    # The holdout (EAGLE-2's dynamic tree on the V13B head, EAGLE-3 paper) is predicted within 5%.
    (holdout,) = [(r, p) for r, p in zip(FIT.rows, FIT.predicted) if r.holdout]
    assert holdout[0].tau == 4.83 and holdout[1] == pytest.approx(5.05, abs=0.01)
    assert abs(holdout[1] - holdout[0].tau) / holdout[0].tau < 0.05


def test_the_fitted_tree_gain_is_the_papers():
    """EAGLE Table 5: the tree commits 0.62..0.75 tokens more than the chain of 5, head by head."""
    pairs = {}
    for row, pred in zip(FIT.rows, FIT.predicted):
        if row.source == "EAGLE1-T5":
            pairs.setdefault(row.group, {})[row.shape.kind] = (row.tau, pred)
    assert len(pairs) == 6
    for group, p in pairs.items():
        published = p["static"][0] - p["chain"][0]
        modelled = p["static"][1] - p["chain"][1]
        assert 0.62 <= published <= 0.75 and abs(modelled - published) < 0.12, group


def test_the_fitted_alphas_match_the_chains_alone():
    """A chain's tau fixes alpha by itself: the fit's alpha is within 0.01 of the chain's own inversion."""
    chains = [r for r in FIT.rows if r.shape.kind == "chain"]
    assert len(chains) == 6
    for row in chains:
        assert FIT.alphas[row.group] == pytest.approx(alpha_from_mean_accepted_length(row.tau, row.shape.k), abs=0.01)


def test_one_row_cannot_separate_alpha_from_the_profile():
    row = FitRow("g", MeasuredShape("chain", k=5), 3.2, "EAGLE1-T5", "Table 5")
    with pytest.raises(TreeInputError, match="at least two fitted rows"):
        fit_rank_retention((row,))


def test_fitted_profile_gives_the_published_tree_gain():
    """At alpha 0.72 (a chain of 5 commits 3.07, EAGLE's LLaMA2-Chat range) EAGLE's 25-node tree gains
    0.71 tokens under the fitted split, inside Table 5's 0.62..0.75; Medusa's split gives 0.41."""
    tree = static_tree("mc_sim_7b_63", 25).tree
    gains = {}
    for name in ("medusa-vicuna", "eagle-fit"):
        m = model_from_alpha(0.72, 4, rank_profile(name))
        gains[name] = expected_accepted_length(tree, m) - expected_accepted_length(chain(5), m)
    assert 0.62 <= gains["eagle-fit"] <= 0.75 and gains["medusa-vicuna"] < 0.45
    assert 1 - rank_retention(EAGLE_FIT) == pytest.approx(0.3035, abs=1e-4)  # rank 2 catches 30% of the misses


# ---- profiles and static trees by name -----------------------------------------------------------------


def test_methods_pick_their_profiles():
    assert method_rank_profile("eagle").name == "eagle-fit" and method_rank_profile("eagle3").name == "eagle3-fit"
    assert method_rank_profile("medusa").name == "medusa-vicuna" and method_rank_profile("mtp") == rank_profile()
    assert "tree_fit_data.yaml" in EAGLE_FIT.source


def test_static_trees_by_name_and_size():
    eagle, medusa = static_tree("mc_sim_7b_63", 25), static_tree("mc_sim_7b_63", 63)
    assert (eagle.owner, eagle.tree.depth, max(eagle.tree.ranks)) == ("eagle", 5, 3)
    assert (medusa.owner, medusa.tree.depth, max(medusa.tree.ranks)) == ("medusa", 4, 9)
    assert static_tree("mc_sim_7b_63") is None and static_tree("nope", 4) is None  # ambiguous / unknown


def test_shape_lengths_hand_computed():
    assert shape_expected_length(MeasuredShape("chain", k=3), 0.5) == pytest.approx(1.875)
    # The EAGLE tree at alpha 1: every top-1 matches, the 5-deep top-1 path commits 6.
    assert shape_expected_length(MeasuredShape("static", name="mc_sim_7b_63", verify_tokens=26), 1.0) == 6.0
    with pytest.raises(TreeInputError, match="no static tree"):
        shape_expected_length(MeasuredShape("static", name="mc_sim_7b_63", verify_tokens=30), 0.5)


# ---- the tree model in the method priors -----------------------------------------------------------------


def test_tree_rows_round_trip_through_the_fitted_model():
    """Each EAGLE-family tree row's point alpha gives back its tau, and sits below the chain bound."""
    seen = 0
    for row in method_rows():
        model = fitted_tree_model(row.method)
        if row.shape.kind != "tree" or model is None:
            continue
        point, bound = row_alpha(row, model), row_alpha(row)
        assert point.bound == "point" and bound.bound == "upper" and point.alpha < bound.alpha
        assert model(row.shape, point.alpha) == pytest.approx(row.value, abs=1e-9)
        seen += 1
    assert seen >= 20


def test_method_prior_uses_the_fitted_tree_model_by_default():
    p = method_prior("eagle2", "chat", "lmsys/vicuna-13b-v1.3", "vicuna")
    bound = method_prior("eagle2", "chat", "lmsys/vicuna-13b-v1.3", "vicuna", tree_model=None)
    given = method_prior("eagle2", "chat", "lmsys/vicuna-13b-v1.3", "vicuna", tree_model=tree_model_for("eagle2"))
    assert p.basis == "tree-model" and bound.basis == "tree-bound" and p.mid < bound.mid
    assert (p.low, p.mid, p.high) == (given.low, given.mid, given.high)
    # Medusa's profile was not fitted to chain/tree pairs: its tree rows stay bounds.
    assert method_prior("medusa", "chat").basis == "tree-bound"


def test_an_uncatalogued_static_tree_falls_back_to_the_best_tree_and_says_so():
    shape = Shape(kind="tree", depth=4, verify_tokens=21, tree="someone_elses_tree")
    assert "best tree of 20 nodes" in shape_basis(shape)
    profile = method_rank_profile("eagle")
    model = model_from_alpha(0.7, 10, profile)
    assert tree_tau(shape, 0.7, profile) == pytest.approx(
        expected_accepted_length(best_tree(20, model, max_depth=4), model))
    assert shape_basis(Shape(kind="tree", depth=6, topk=10, verify_tokens=60, tree="dynamic")).startswith("SGLang")


def test_eagle3_heads_have_their_own_split_fitted_to_their_chain_and_tree():
    """yuhuili/EAGLE3-LLaMA3.1-Instruct-8B: a chain of 7 commits 3.53 (vLLM issue 26191), the paper's tree
    (60 tokens, depth 8, top-k 10) 6.13. Two rows fix alpha 0.744 and q 0.254 (rank_profiles.yaml
    eagle3-fit); EAGLE-1's split would put that tree at 5.03 tokens from the same chain."""
    fit = fit_rank_retention(fit_rows("eagle3-fit"))
    (alpha,) = fit.alphas.values()
    assert fit.retention == pytest.approx(rank_profile("eagle3-fit").retention, abs=5e-4)
    assert alpha == pytest.approx(alpha_from_mean_accepted_length(3.535, 7), abs=0.005)
    assert alpha == pytest.approx(0.744, abs=0.002) and max(abs(r) for r in fit.residuals) < 1e-6
    tree = MeasuredShape("dynamic", depth=8, topk=10, verify_tokens=60)
    assert shape_expected_length(tree, alpha, EAGLE_FIT) == pytest.approx(5.03, abs=0.02)
    assert not set(fit_rows("eagle3-fit")) & set(fit_rows())  # EAGLE-1's fit keeps its 19 rows
    assert len(fit_rows()) == 19


def test_eagle3_tree_accept_lengths_read_as_a_lower_chain_alpha():
    """The prior inverts EAGLE-3's tree rows through its own split: the paper's 6.13 on the 60-token tree
    reads as the chain alpha the vLLM chain measured (0.744), not EAGLE-1's reading (0.84)."""
    tree = MeasuredShape("dynamic", depth=8, topk=10, verify_tokens=60)
    assert alpha_for_shape_length(tree, 6.13, rank_profile("eagle3-fit")) == pytest.approx(0.744, abs=0.003)
    assert alpha_for_shape_length(tree, 6.13, EAGLE_FIT) == pytest.approx(0.84, abs=0.005)

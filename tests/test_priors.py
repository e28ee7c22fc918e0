"""The alpha prior against the public anchors it was set from, and the conversions that read them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import speedup as sp
from planner.catalog.lookup import find_model
from planner.catalog.precisions import weight_format
from planner.errors import SpecplanError
from planner.priors import TASKS, alpha_prior, relationship
from planner.priors.anchors import (
    alpha_floor_from_speedup,
    alpha_from_mean_accepted,
    anchor_table,
    anchors,
)
from planner.priors.model import priors_document, prior_terms

TABLE = anchor_table()


def _m(name):
    return find_model(name).spec


def test_every_anchor_names_its_source_and_pair():
    doc = priors_document()
    assert len(anchors()) >= 25
    for a in anchors():
        assert a.source in doc["sources"] and a.target and a.draft and a.draft_b < a.target_b


@pytest.mark.parametrize("row", [x for x in TABLE if x.prior is not None], ids=lambda x: x.anchor.id)
def test_prior_agrees_with_each_anchor(row):
    """Point anchors inside the band; a speedup's floor at most the mid; a p-min ceiling at least the mid."""
    p = row.prior
    if row.bound == "point":
        assert p.low <= row.alpha <= p.high
    elif row.bound == "lower":
        assert p.mid >= row.alpha
    else:
        assert p.mid <= row.alpha


def test_catalogue_pairs_give_the_anchor_prior():
    """alpha_prior on catalogue entries is the anchor table's line for the same pair."""
    t, d = _m("meta-llama/Llama-3.1-405B"), _m("meta-llama/Llama-3.2-1B")
    prior = alpha_prior(t, d, weight_format("fp8"))
    row = next(x for x in TABLE if x.anchor.id == "TRT-405B-1B")
    assert prior.mid == pytest.approx(row.prior.mid, abs=0.005)
    assert prior.mid >= row.alpha  # TRT-LLM's 3.33x needs alpha >= 0.70
    assert "priors.yaml" in prior.explanation and "target 406B" in prior.explanation


def test_target_size_pulls_only_tiny_drafts():
    tiny = [prior_terms("distilled", 0.068, t, "chat", 16).mid for t in (7, 13, 33)]
    assert tiny[0] > tiny[1] > tiny[2]
    big = {prior_terms("other-generation", 1.24, t, "chat", 16).mid for t in (8, 70, 405)}
    assert len(big) == 1  # from 1B up the target's size does not move the prior


def test_cross_tokenizer_prior_below_same_family_above_uag_floors():
    gemma, vicuna = _m("google/gemma-2-9b"), _m("double7/vicuna-68m")
    prior = alpha_prior(gemma, vicuna, weight_format("bf16"), "summarize")
    assert prior.relationship == "cross-tokenizer" and prior.cross_tokenizer
    assert prior.mid >= alpha_floor_from_speedup(1.76, None)  # UAG blog: 1.76x on CNN/DM
    same = alpha_prior(_m("google/gemma-2-9b"), _m("google/gemma-2-2b"), weight_format("bf16"), "summarize")
    assert same.mid > prior.mid and not same.cross_tokenizer


def test_codellama_7b_drafting_34b_is_same_family():
    prior = alpha_prior(_m("codellama/CodeLlama-34b-hf"), _m("codellama/CodeLlama-7b-hf"), weight_format("q4_0"),
                        "code")
    assert relationship(_m("codellama/CodeLlama-34b-hf"), _m("codellama/CodeLlama-7b-hf")) == "same-generation"
    assert prior.mid >= alpha_floor_from_speedup(3.0, 16)  # llama.cpp PR 5625: "up to x3" at --draft 16


def test_unknown_task_is_refused():
    with pytest.raises(SpecplanError, match="unknown task"):
        alpha_prior(_m("qwen2.5-72b"), _m("qwen2.5-0.5b"), weight_format("bf16"), "poetry")
    assert TASKS == ("chat", "code", "math", "summarize", "structured", "mixed")


# --- the conversions ---------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(alpha=st.floats(0.0, 0.99), k=st.integers(1, 16))
def test_mean_accepted_inverts_expected_length(alpha, k):
    el = float(sp.expected_accepted_length(alpha, k))
    assert alpha_from_mean_accepted(el, k) == pytest.approx(alpha, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(alpha=st.floats(0.01, 0.99), k=st.integers(1, 16), c=st.floats(0.0, 0.5), r=st.floats(1.0, 2.0))
def test_speedup_floor_never_exceeds_the_true_alpha(alpha, k, c, r):
    s = float(sp.speedup(alpha, k, c, r))
    assert alpha_floor_from_speedup(s, k) <= alpha + 1e-9
    assert alpha_floor_from_speedup(s, None) <= alpha + 1e-9


def test_mean_accepted_matches_a_simulated_run():
    """Monte-Carlo: the committed tokens per round of simulated i.i.d. rounds invert back to alpha."""
    rng = np.random.default_rng(7)
    alpha, k, rounds = 0.7, 5, 200_000
    accepted = rng.random((rounds, k)) < alpha
    run = np.cumprod(accepted, axis=1).sum(axis=1) + 1  # accepted prefix + the target's own token
    assert alpha_from_mean_accepted(float(run.mean()), k) == pytest.approx(alpha, abs=0.01)


def test_pmin_ceiling_is_above_the_fixed_k_alpha():
    """llama.cpp's accepted/drafted inverted at k over-states alpha: the anchor is an upper bound."""
    row = next(x for x in TABLE if x.anchor.id == "LCPP-B03")
    assert row.bound == "upper" and row.alpha == pytest.approx(float(sp.alpha_from_acceptance_rate(0.72055, 5)))


def test_anchor_relationships_match_the_catalogue():
    """Where both models of an anchor are catalogue entries, the catalogue classifies the pair the same way."""
    checked = 0
    for a in anchors():
        try:
            t, d = _m(a.target), _m(a.draft)
        except SpecplanError:
            continue
        assert relationship(t, d) == a.relationship, a.id
        checked += 1
    assert checked >= 10


def test_uag_round_work_from_the_data():
    from planner.priors.uag import retokenised_tokens_per_round, uag_mode

    mode = uag_mode()
    assert mode.min_transformers == "4.46.0" and mode.target_lookbehind_tokens == 10
    assert retokenised_tokens_per_round(5, 3.0) == 10 + 3 + 10 + 5

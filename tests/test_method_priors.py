"""Acceptance priors per speculation method: the published rows, their conversions and the bands built from them."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import speedup as sp
from planner.errors import SpecplanError
from planner.priors.anchors import alpha_from_mean_accepted
from planner.priors.conversions import alpha_from_mean_accepted_length, alpha_from_per_position, tree_alpha_bound
from planner.priors.method_rows import method_rows, methods_document, row_alpha
from planner.priors.methods import METHOD_TASKS, METHODS, band_from_points, method_prior

ROWS = method_rows()
BY_ID = {r.id: r for r in ROWS}


# --- the rows ----------------------------------------------------------------------------------------------


def test_every_row_loads_with_a_known_source_and_a_location():
    sources = methods_document()["sources"]
    assert len(ROWS) >= 60
    for r in ROWS:
        assert r.source in sources and len(sources[r.source]) > 40, r.id
        assert r.where.strip() and r.benchmark.strip(), r.id
        assert r.target and r.family, r.id
    assert {r.source for r in ROWS} == set(sources), "every source is used by a row"


def test_every_method_but_suffix_has_rows_and_suffix_says_why_it_borrows():
    have = {r.method for r in ROWS}
    assert have == set(METHODS) - {"suffix"}
    assert methods_document()["method_fallback"]["suffix"]["method"] == "ngram"


def test_every_figure_fits_its_shape():
    """tau of k drafts is at most k + 1; a tree's tau at most its depth + 1 (the bonus token included)."""
    for r in ROWS:
        if r.kind in ("mean_accepted_length", "speedup"):
            assert 1.0 <= r.value <= r.shape.drafts + 1, r.id
        if r.shape.kind == "tree":
            assert r.shape.verify_tokens > r.shape.depth, r.id


# --- each conversion reproduces its published figure --------------------------------------------------------


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_conversion_reproduces_the_published_figure(row):
    a = row_alpha(row)
    k = row.shape.drafts
    if row.kind == "acceptance_rate":
        assert float(sp.acceptance_rate_from_alpha(a.alpha, k)) == pytest.approx(row.value, abs=1e-12)
    elif row.kind == "per_position":
        want = float(sp.expected_accepted_length_positional(list(row.value)))
        assert float(sp.expected_accepted_length(a.alpha, len(row.value))) == pytest.approx(want, abs=1e-12)
    else:  # tau of a chain, a tree's tau at its depth (an upper bound), or a speedup (tau >= S, a lower bound)
        assert float(sp.expected_accepted_length(a.alpha, k)) == pytest.approx(row.value, abs=1e-12)
    assert a.bound == {"speedup": "lower"}.get(row.kind, "upper" if row.shape.kind == "tree" else "point")


def test_hand_computed_conversions():
    # E[L](0.5, 2) = 1 + 0.5 + 0.25; E[L](0.8, 3) = 1 + 0.8 + 0.64 + 0.512
    assert alpha_from_mean_accepted_length(1.75, 2) == pytest.approx(0.5, abs=1e-15)
    assert alpha_from_mean_accepted_length(2.952, 3) == pytest.approx(0.8, abs=1e-15)
    # DeepSeek-V3: one MTP module, "85% to 90%" acceptance of the second token -> alpha 0.85 / 0.90 at k = 1
    assert row_alpha(BY_ID["DSV3-MTP-LOW"]).alpha == pytest.approx(0.85)
    assert row_alpha(BY_ID["DSV3-MTP-HIGH"]).alpha == pytest.approx(0.90)
    # a two-position profile 0.9 then 0.5: E[L] = 1 + 0.9 + 0.45 = 2.35 = 1 + a + a^2 -> a = (sqrt(6.4) - 1) / 2
    assert alpha_from_per_position([0.9, 0.5]) == pytest.approx((math.sqrt(6.4) - 1) / 2, abs=1e-12)
    # Spec-Bench PLD on Vicuna-7B summarisation: 2.66x at k = 10 means tau >= 2.66
    floor = row_alpha(BY_ID["SB-V7-PLD-SUM"]).alpha
    assert float(sp.expected_accepted_length(floor, 10)) == pytest.approx(2.66, abs=1e-12)


def test_a_tree_bound_caps_the_chain_alpha():
    """The tree's deepest chain commits no more than the tree: its alpha is at most the bound."""
    tau, depth = 6.65, 8  # EAGLE-3, Vicuna-13B, MT-bench
    bound = tree_alpha_bound(tau, depth)
    assert float(sp.expected_accepted_length(bound, depth)) == pytest.approx(tau, abs=1e-12)
    assert float(sp.expected_accepted_length(bound - 0.01, depth)) < tau
    assert tree_alpha_bound(depth + 1.0, depth) == 1.0


# --- alpha_from_mean_accepted_length: the exact inverse of E[L] ----------------------------------------------


@settings(max_examples=300, deadline=None)
@given(alpha=st.floats(0.0, 1.0), k=st.integers(1, sp.K_MAX))
def test_mean_accepted_length_is_the_exact_inverse(alpha, k):
    tau = float(sp.expected_accepted_length(alpha, k))
    back = alpha_from_mean_accepted_length(tau, k)
    assert float(sp.expected_accepted_length(back, k)) == pytest.approx(tau, rel=1e-13, abs=1e-13)
    # alpha itself comes back wherever E[L] is not flat in the last float digits (alpha -> 0 at large k is not)
    slope = sum(i * alpha ** (i - 1) for i in range(1, k + 1))
    assert back == pytest.approx(alpha, abs=max(1e-12, 1e-14 * tau / slope))


@pytest.mark.parametrize("k", [1, 3, 7, 64])
def test_mean_accepted_length_edges(k):
    assert alpha_from_mean_accepted_length(1.0, k) == 0.0
    assert alpha_from_mean_accepted_length(k + 1.0, k) == 1.0
    assert alpha_from_mean_accepted_length(1, k) == 0.0  # an int figure works too


@pytest.mark.parametrize("tau,k", [(0.99, 3), (4.01, 3), (float("nan"), 3), ("x", 3), (2.0, 0), (2.0, 2.5)])
def test_mean_accepted_length_out_of_range_is_one_line(tau, k):
    with pytest.raises(SpecplanError) as err:
        alpha_from_mean_accepted_length(tau, k)
    assert "\n" not in str(err.value)


def test_the_anchor_conversion_is_the_same_function():
    """One chain inversion in the code base: the draft-model anchors use it too."""
    assert alpha_from_mean_accepted is alpha_from_mean_accepted_length


# --- the bands ----------------------------------------------------------------------------------------------


def _targets():
    return sorted({(r.target, r.family) for r in ROWS}) + [(None, None), ("someone/unknown-model", "unknown")]


@pytest.mark.parametrize("method", METHODS)
def test_bands_are_ordered_for_every_task_and_target(method):
    for task in METHOD_TASKS + ("structured",):
        for target, family in _targets():
            p = method_prior(method, task, target, family)
            assert 0.0 < p.low <= p.mid <= p.high < 1.0, (method, task, target)
            if p.tree is not None:
                assert p.tree.tau_low <= p.tree.tau_mid <= p.tree.tau_high


def test_band_rule_hand_computed():
    # mid = median 0.7; low = min(0.6, 0.7 - 0.12); high = max(0.8, 0.7 + 0.08); a floor 0.75 lifts low and mid
    assert band_from_points([0.6, 0.7, 0.8]) == pytest.approx((0.58, 0.7, 0.8))
    assert band_from_points([0.6, 0.7, 0.8], floor=0.75) == pytest.approx((0.75, 0.75, 0.83))


def test_fallback_order_target_then_family_then_method():
    # Chain rows only (no tree model): the scope order is what is checked, not the tree conversion.
    exact = method_prior("eagle3", "code", "meta-llama/Llama-3.1-8B-Instruct", "llama", tree_model=None)
    assert exact.scope == "target" and exact.row_ids == ("NEB-L31-8B-YUHUILI-HE",)
    sibling = method_prior("eagle3", "code", "meta-llama/Llama-3.1-70B-Instruct", "llama", tree_model=None)
    assert sibling.scope == "family" and set(sibling.row_ids) == {
        "NEB-L31-8B-YUHUILI-HE", "NEB-L33-70B-REDHAT-HE", "NEB-L33-70B-NEBIUS-HE"}
    stranger = method_prior("eagle3", "code", "someone/unknown-model", "unknown", tree_model=None)
    assert stranger.scope == "method"
    # a head's quality is the target's own: DeepSeek-V3's all-topic MTP figure beats another model's chat row
    dsv3 = method_prior("mtp", "chat", "deepseek-ai/DeepSeek-V3", "deepseek")
    assert dsv3.scope == "target" and dsv3.task_used == "mixed" and dsv3.mid == pytest.approx(0.875)


def test_tree_only_methods_say_so_and_carry_the_trees():
    p = method_prior("eagle2", "chat", "lmsys/vicuna-13b-v1.3", "vicuna", tree_model=None)
    assert p.basis == "tree-bound" and "upper bounds only" in p.explanation
    assert p.tree is not None and p.tree.tau_mid == pytest.approx((4.83 + 4.89) / 2)
    assert {s.kind for s in p.tree.shapes} == {"tree"}


def test_a_tree_model_turns_tree_rows_into_points():
    """With a tree model that is its own deepest chain, the inversion lands on the chain bound."""
    def chain_as_tree(shape, alpha):
        return float(sp.expected_accepted_length(alpha, shape.depth))

    p = method_prior("eagle2", "chat", "lmsys/vicuna-13b-v1.3", "vicuna", tree_model=chain_as_tree)
    q = method_prior("eagle2", "chat", "lmsys/vicuna-13b-v1.3", "vicuna", tree_model=None)
    assert p.basis == "tree-model" and p.mid == pytest.approx(q.mid, abs=1e-12)


# --- what the data says about each method ------------------------------------------------------------------


def _tau(method, target, task, source):
    hits = [r.value for r in ROWS if (r.method, r.target, r.task, r.source) == (method, target, task, source)]
    return hits


def test_eagle3_beats_eagle2_beats_eagle_where_all_were_measured():
    compared = 0
    for target in {r.target for r in ROWS}:
        for task in METHOD_TASKS:
            for source in {r.source for r in ROWS}:
                e1, e2, e3 = (_tau(m, target, task, source) for m in ("eagle", "eagle2", "eagle3"))
                if e1 and e2 and e3:
                    assert min(e3) > max(e2) > max(e1), (target, task, source)
                    compared += 1
    assert compared >= 2  # Spec-Bench Vicuna-13B overall; EAGLE-3 Table 1 Vicuna-13B MT-bench


def test_eagle3_prior_above_eagle2_above_eagle_on_vicuna_13b():
    taus = [method_prior(m, "mixed", "lmsys/vicuna-13b-v1.3", "vicuna").tree.tau_mid for m in ("eagle", "eagle2", "eagle3")]
    assert taus == sorted(taus) and len(set(taus)) == 3


@pytest.mark.parametrize("target", ["lmsys/vicuna-7b-v1.3", "lmsys/vicuna-13b-v1.3", "lmsys/vicuna-33b-v1.3", None])
def test_ngram_accepts_most_on_summarization_least_on_translation(target):
    """Spec-Bench PLD: summarisation copies the document; chat copies little, translation almost nothing."""
    fam = "vicuna" if target else None
    mid = {t: method_prior("ngram", t, target, fam).mid for t in ("summarize", "rag", "chat", "translation", "qa")}
    assert mid["summarize"] > mid["chat"] and mid["summarize"] >= mid["rag"]
    floors = {t: max(row_alpha(r).alpha for r in ROWS if r.method == "ngram" and r.task == t and r.kind == "speedup"
                     and (target is None or r.target == target)) for t in mid}
    assert floors["summarize"] > floors["rag"] > floors["qa"] > floors["translation"]
    assert floors["summarize"] > floors["chat"]


def test_mtp_per_position_figures_sit_in_the_band():
    p = method_prior("mtp", "mixed", "deepseek-ai/DeepSeek-V3", "deepseek")
    assert p.low <= 0.85 and 0.90 <= p.high


# --- explanations and bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [("eagle3", "chat", "meta-llama/Llama-3.1-8B-Instruct", "llama"),
                                  ("ngram", "summarize", "lmsys/vicuna-13b-v1.3", "vicuna"),
                                  ("mtp", "math", "Qwen/Qwen3.6-27B", "qwen"),
                                  ("medusa", "code", None, None)])
def test_explanation_names_its_rows(args):
    p = method_prior(*args)
    for row_id in p.row_ids + p.floor_ids + (p.tree.row_ids if p.tree else ()):
        assert row_id in p.explanation
    assert "planner/priors/methods.yaml" in p.explanation and f"{p.mid:.3f}" in p.explanation


def test_suffix_borrows_ngram_and_says_so():
    p = method_prior("suffix", "summarize")
    assert p.mid == method_prior("ngram", "summarize").mid
    assert "suffix uses ngram's rows" in p.explanation and "\n" not in p.explanation


@pytest.mark.parametrize("method,task", [("eagle4", "chat"), ("eagle3", "poetry")])
def test_unknown_method_or_task_is_one_line(method, task):
    with pytest.raises(SpecplanError) as err:
        method_prior(method, task)
    assert "choose from" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_fixed_k_servers_read_the_same_alpha_through_their_loop(engine):
    """A fixed-k server's acceptance length read through the draft loop gives the chain inversion's alpha."""
    from planner.draftloop import engine_loop
    from planner.draftloop.convert import alpha_from_mean_length

    loop = engine_loop(engine)
    for tau, k in [(2.77, 7), (3.556, 3), (1.75, 10)]:
        assert alpha_from_mean_length(loop, tau, k) == pytest.approx(alpha_from_mean_accepted_length(tau, k), abs=1e-9)


def test_the_eagle_prior_reads_eagle2_rows_of_the_same_heads():
    """EAGLE-2 runs EAGLE-1's weights (methods.yaml method_pools): Llama-3.1-8B's EAGLE prior is the EAGLE-3
    paper's Table 2 EAGLE-2 row (tau 4.05 on the 60-token tree -> 0.618), not Vicuna-13B's 0.754; a
    Llama-3.1-8B chain head is that much weaker than the Vicuna and LLaMA2-Chat ones of EAGLE's Table 5."""
    p = method_prior("eagle", "chat", "meta-llama/Llama-3.1-8B-Instruct", "llama")
    assert p.row_ids == ("E3T2-L31-8B-EAGLE2-MT",) and p.mid == pytest.approx(0.618, abs=0.003)
    l2 = method_prior("eagle", "chat", "meta-llama/Llama-2-13b-chat-hf", "llama")
    assert set(l2.row_ids) == {"E1T5-L2-13B-CHAIN", "E1T5-L2-13B-TREE"} and l2.scope == "target"
    chain_only = alpha_from_mean_accepted_length(3.18, 5)  # Table 5's chain of 5 alone
    assert abs(l2.mid - chain_only) < 0.01


def test_a_mixed_workload_reads_the_mixed_rows():
    """Spec-Bench's overall column is six tasks: --task mixed takes the target's mixed rows, chat its MT-bench ones."""
    mixed = method_prior("eagle", "mixed", "lmsys/vicuna-7b-v1.3", "vicuna")
    chat = method_prior("eagle", "chat", "lmsys/vicuna-7b-v1.3", "vicuna")
    assert set(mixed.row_ids) == {"SB-V7-EAGLE", "SB-V7-EAGLE2"} and mixed.task_used == "mixed"
    assert set(chat.row_ids) == {"E1T5-V7-CHAIN", "E1T5-V7-TREE"} and mixed.mid < chat.mid

"""planner.trees: closed forms against hand sums, planner.speedup, brute force and Monte-Carlo."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import speedup
from planner.errors import SpecplanError
from planner.trees import (
    AcceptanceModel, ShapeGrid, alpha_from_mean_accepted_length, TokenTree, TreeInputError, accepted_depth_pmf, best_tree, best_tree_shape,
    chain, chain_model, check_eagle_shape, depth_survival, eagle_candidate_count, expected_accepted_length,
    from_paths, full_tree, model_from_alpha, path_probabilities, rank_acceptance, rank_profile,
    residual_rank_share, round_counts, sglang_eagle_tree, sglang_expected_lengths, vllm_token_tree,
)

ROUNDS = 100_000


def simulate(tree: TokenTree, model: AcceptanceModel, rounds: int, seed: int) -> np.ndarray:
    """Tokens committed in each of ``rounds`` simulated verify rounds.

    At every depth the target's token is the rank-j candidate with probability a[d][j] (else no
    candidate); the walk follows the matching child from the root and stops at the first miss.
    """
    rng = np.random.default_rng(seed)
    width = max(model.num_ranks, max(tree.ranks, default=0) + 1)
    child = np.full((tree.num_nodes + 1, width + 1), -1)  # last row: the root; last column: no match
    for i, (p, r) in enumerate(zip(tree.parents, tree.ranks)):
        child[tree.num_nodes if p < 0 else p, r] = i
    node = np.full(rounds, tree.num_nodes)
    alive = np.ones(rounds, dtype=bool)
    committed = np.ones(rounds)
    for d in range(1, tree.depth + 1):
        probs = model.rate(d, np.arange(width))
        target_rank = np.searchsorted(np.cumsum(probs), rng.random(rounds), side="right")  # width = none
        nxt = child[node, np.minimum(target_rank, width)]
        alive &= nxt >= 0
        committed += alive
        node = np.where(alive, nxt, node)
    return committed


def assert_within_se(tree: TokenTree, model: AcceptanceModel, seed: int, n_se: float = 4.0) -> None:
    sample = simulate(tree, model, ROUNDS, seed)
    se = sample.std(ddof=1) / np.sqrt(ROUNDS)
    closed = expected_accepted_length(tree, model)
    assert abs(sample.mean() - closed) <= n_se * se + 1e-12, (sample.mean(), closed, se)
    # The whole accepted-depth distribution, bin by bin (binomial standard errors).
    pmf = accepted_depth_pmf(tree, model)
    freq = np.bincount(sample.astype(int) - 1, minlength=tree.depth + 1) / ROUNDS
    bin_se = np.sqrt(np.maximum(pmf * (1 - pmf), 1e-12) / ROUNDS)
    assert np.all(np.abs(freq - pmf) <= n_se * bin_se + 1e-9), (freq, pmf)


# ---- shapes -------------------------------------------------------------------------------------

def test_shapes_depths_ranks_and_counts():
    t = full_tree([2, 3])
    assert t.num_nodes == 2 + 6 and t.num_draft_tokens == 9 and t.depth == 2
    assert list(t.depths) == [1, 1, 2, 2, 2, 2, 2, 2]
    assert t.ranks == (0, 1, 0, 1, 2, 0, 1, 2)
    assert t.paths[4] == (0, 2) and t.paths[7] == (1, 2)
    assert chain(3).paths == ((0,), (0, 0), (0, 0, 0))
    assert from_paths([(0, 0), (0,), (1,)]).paths == ((0,), (1,), (0, 0))
    assert full_tree([2, 3]).contains(chain(2)) and not chain(2).contains(full_tree([2]))


@pytest.mark.parametrize(
    "parents, ranks, words",
    [((0,), (0,), "parent must be -1"), ((-1, -1), (0, 0), "repeats rank 0"), ((-1,), (-1,), "rank must be >= 0")],
)
def test_bad_trees_are_refused_in_one_line(parents, ranks, words):
    with pytest.raises(TreeInputError, match=words) as err:
        TokenTree(parents, ranks)
    assert "\n" not in str(err.value)


def test_vllm_token_tree_string():
    assert vllm_token_tree(full_tree([1, 2])) == "[(0,), (0, 0), (0, 1)]"  # the form vLLM's tests pass
    assert vllm_token_tree(best_tree(3, chain_model(0.8))) == "[(0,), (0, 0), (0, 0, 0)]"


def test_from_paths_needs_every_prefix():
    with pytest.raises(TreeInputError, match="no parent"):
        from_paths([(0, 1)])


# ---- acceptance model ---------------------------------------------------------------------------

def test_rank_profile_reproduces_the_medusa_coverage():
    p = rank_profile()
    assert (p.top1_coverage, p.topk_coverage, p.k_ref) == (0.60, 0.80, 5) and "together.ai/blog/medusa" in p.source
    assert residual_rank_share(p) == pytest.approx(0.5)  # (0.8 - 0.6) / (1 - 0.6)
    a = rank_acceptance(0.6, 5)
    assert a[0] == 0.6 and a.sum() == pytest.approx(0.8, abs=1e-12)  # the published top-5 figure back
    assert np.all(np.diff(a) <= 0)


def test_rank_split_is_capped_at_the_top1_and_sums_below_one():
    a = rank_acceptance(0.05, 8)
    assert np.all(a <= 0.05 + 1e-15) and a.sum() <= 1
    assert rank_acceptance(1.0, 4).tolist() == [1.0, 0.0, 0.0, 0.0]


def test_acceptance_rows_over_one_are_refused():
    with pytest.raises(TreeInputError, match="sum to 1.1 > 1"):
        AcceptanceModel(((0.6, 0.5),))
    with pytest.raises(SpecplanError, match="in \\[0, 1\\]"):  # planner.speedup's own check
        AcceptanceModel(((1.2,),))


def test_depths_past_the_table_repeat_its_last_row():
    m = AcceptanceModel(((0.9, 0.05), (0.5, 0.2)))
    assert m.rate(7, 1) == 0.2 and m.rate(1, 0) == 0.9 and m.rate(2, 5) == 0.0


# ---- closed forms -------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.62, 0.9, 1.0])
@pytest.mark.parametrize("k", [1, 2, 5, 12])
def test_chain_is_the_iid_special_case(alpha, k):
    tree, model = chain(k), chain_model(alpha)
    assert expected_accepted_length(tree, model) == speedup.expected_accepted_length_positional([alpha] * k)
    assert expected_accepted_length(tree, model) == pytest.approx(speedup.expected_accepted_length(alpha, k), rel=1e-13)
    assert np.allclose(accepted_depth_pmf(tree, model), speedup.accepted_length_pmf(alpha, k), atol=1e-15)
    # Ranks below the top-1 change nothing on a chain.
    assert expected_accepted_length(tree, model_from_alpha(alpha)) == expected_accepted_length(tree, model)


def test_hand_computed_tree():
    # Root's top-2, and the top-1's own top-2: P = 0.6, 0.2, 0.6*0.5, 0.6*0.3.
    m = AcceptanceModel(((0.6, 0.2), (0.5, 0.3)))
    t = from_paths([(0,), (1,), (0, 0), (0, 1)])
    assert path_probabilities(t, m) == pytest.approx([0.6, 0.2, 0.3, 0.18])
    assert expected_accepted_length(t, m) == pytest.approx(2.28)
    assert depth_survival(t, m) == pytest.approx([1.0, 0.8, 0.48])
    assert accepted_depth_pmf(t, m) == pytest.approx([0.2, 0.32, 0.48])


def test_empty_tree_commits_the_targets_token_only():
    assert expected_accepted_length(chain(0), chain_model(0.9)) == 1.0
    assert accepted_depth_pmf(chain(0), chain_model(0.9)).tolist() == [1.0]


# ---- the best tree ------------------------------------------------------------------------------

def _all_trees(n: int, ranks: int) -> set[frozenset]:
    """Every ancestor-closed set of n rank paths with ranks < ``ranks``."""
    level = {frozenset()}
    for _ in range(n):
        grown = set()
        for tree in level:
            for parent in [()] + list(tree):
                for r in range(ranks):
                    p = parent + (r,)
                    if p not in tree:
                        grown.add(tree | {p})
        level = grown
    return level


BRUTE_MODELS = [
    AcceptanceModel(((0.5, 0.3, 0.1), (0.8, 0.1, 0.05), (0.3, 0.3, 0.3))),
    AcceptanceModel(((0.2, 0.6, 0.1), (0.9, 0.05, 0.0))),  # a badly ranked draft: rank 1 beats rank 0
    model_from_alpha(0.7, 3),
]


@pytest.mark.parametrize("model", BRUTE_MODELS)
@pytest.mark.parametrize("budget", [1, 2, 3, 4, 5])
def test_best_tree_is_optimal_by_brute_force(model, budget):
    brute = max(expected_accepted_length(from_paths(t), model) for t in _all_trees(budget, model.num_ranks))
    greedy = best_tree(budget, model)
    assert greedy.num_nodes == budget
    assert expected_accepted_length(greedy, model) == pytest.approx(brute, abs=1e-12)


def test_best_tree_respects_max_depth():
    m = chain_model(0.9)
    assert best_tree(6, m, max_depth=3).depth <= 3
    assert best_tree(6, m) == chain(6)  # only the top-1 can match: the best tree is a chain


# ---- SGLang's EAGLE shape -----------------------------------------------------------------------

def test_sglang_tree_by_hand():
    m = AcceptanceModel(((0.6, 0.2), (0.5, 0.3)))
    # Candidates 0.6, 0.2 | 0.3, 0.18, 0.1, 0.06: the top 3 are (0), (1), (0, 0).
    t = sglang_eagle_tree(2, 2, 4, m)
    assert set(t.paths) == {(0,), (1,), (0, 0)}
    assert expected_accepted_length(t, m) == pytest.approx(2.1)
    # Step 2 expands only the frontier (0, 0) and (0, 1), never (1, 0): keep every candidate.
    full = sglang_eagle_tree(3, 2, eagle_candidate_count(3, 2) + 1, m)
    assert (1, 0) in full.paths and not any(p[:2] == (1, 0) for p in full.paths if len(p) == 3)
    assert full.num_nodes == 2 + 4 + 4


def test_sglang_topk1_is_a_chain_and_shapes_are_checked_like_sglang():
    m = model_from_alpha(0.75)
    assert sglang_eagle_tree(5, 1, 6, m) == chain(5)
    with pytest.raises(TreeInputError, match="steps \\+ 1 = 6"):
        check_eagle_shape(5, 1, 8)
    with pytest.raises(TreeInputError, match="= 21"):
        check_eagle_shape(2, 4, 22)  # 4 + 16 candidates + the root


def test_sglang_expected_lengths_match_the_trees():
    m = model_from_alpha(0.7)
    lengths = sglang_expected_lengths(5, 4, m)
    for n in (2, 8, 16, 32):
        assert lengths[n - 1] == pytest.approx(expected_accepted_length(sglang_eagle_tree(5, 4, n, m), m), abs=1e-12)


def test_round_counts_of_sglang_default_shape():
    c = round_counts(5, 4, 8)  # SGLang's auto-chosen default for Llama
    assert (c.verify_tokens, c.draft_passes, c.draft_tokens_per_pass, c.drafted_tokens) == (8, 5, (1, 4, 4, 4, 4), 17)


# ---- Monte-Carlo --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "tree, model",
    [
        (chain(6), chain_model(0.72)),
        (chain(4), chain_model([0.9, 0.7, 0.5])),
        (full_tree([3, 2, 2]), model_from_alpha(0.6, 4)),
        (full_tree([4, 1, 1, 1]), AcceptanceModel(((0.5, 0.25, 0.1, 0.05), (0.8, 0.1, 0.05, 0.0)))),
        (sglang_eagle_tree(5, 4, 8, model_from_alpha(0.7)), model_from_alpha(0.7)),
        (sglang_eagle_tree(4, 8, 32, model_from_alpha(0.5)), model_from_alpha(0.5)),
        (best_tree(20, model_from_alpha([0.8, 0.6])), model_from_alpha([0.8, 0.6])),
    ],
    ids=["chain", "chain-per-depth", "full-3x2x2", "star-then-chains", "sglang-5-4-8", "sglang-4-8-32", "best-20"],
)
def test_monte_carlo_matches_the_closed_form(tree, model):
    assert_within_se(tree, model, seed=20261203)


# ---- best shape per batch -----------------------------------------------------------------------

def test_free_drafting_picks_the_largest_tree():
    m = model_from_alpha(0.7)
    grid = ShapeGrid()
    best = best_tree_shape(4, lambda s, k, n: 1.0, m, grid)
    assert best.num_draft_tokens == grid.max_draft_tokens
    top = max(sglang_expected_lengths(s, k, m)[min(grid.max_draft_tokens, eagle_candidate_count(s, k) + 1) - 1]
              for s in grid.steps for k in grid.topks if k > 1)
    assert best.mean_accepted_length == pytest.approx(top) and best.tokens_per_s == pytest.approx(4 * top)


def test_chain_only_draft_with_free_drafting_gives_the_longest_chain():
    best = best_tree_shape(1, lambda s, k, n: 1.0, chain_model(0.5))
    assert (best.steps, best.topk, best.num_draft_tokens) == (8, 1, 9)  # ties go to fewer verified tokens
    assert best.mean_accepted_length == pytest.approx((1 - 0.5**9) / 0.5)


def test_chain_search_agrees_with_speedup_best_k():
    # Free drafting, verify cost 1 + c (k + 1): planner.speedup.best_k on the same r(k).
    alpha, c = 0.8, 0.15
    best = best_tree_shape(1, lambda s, k, n: 1 + c * n, chain_model(alpha), ShapeGrid(topks=(1,)))
    ks = np.arange(1, 9)
    k_best, s_best = speedup.best_k(alpha, 0.0, 1 + c * (ks + 1), k_max=8)
    assert best.steps == k_best and best.tokens_per_s == pytest.approx(s_best)


def test_best_shape_shrinks_as_the_batch_grows():
    m = model_from_alpha(0.75)

    def cost_at(batch):
        # Weights stream once a pass (memory-bound); compute grows with batch x tokens; draft passes are cheap.
        def cost(steps, topk, n):
            return 1.0 + 0.004 * batch * n + steps * (0.05 + 0.0005 * batch * topk)
        return cost

    picks = [best_tree_shape(b, cost_at(b), m) for b in (1, 16, 64, 256, 1024)]
    sizes = [p.num_draft_tokens for p in picks]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    assert picks[0].topk > 1 and picks[-1].num_draft_tokens <= 3


def test_bad_costs_and_batches_are_refused():
    m = chain_model(0.5)
    with pytest.raises(TreeInputError, match="round cost must be > 0"):
        best_tree_shape(1, lambda s, k, n: 0.0, m)
    with pytest.raises(TreeInputError, match="batch must be at least 1"):
        best_tree_shape(0, lambda s, k, n: 1.0, m)
    with pytest.raises(TreeInputError, match="max_draft_tokens >= 2"):
        ShapeGrid(max_draft_tokens=1)


# ---- properties ---------------------------------------------------------------------------------

alphas = st.floats(0.0, 1.0)
branchings = st.lists(st.integers(1, 3), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(alpha=alphas, budget=st.integers(0, 24))
def test_best_tree_value_grows_with_the_budget(alpha, budget):
    m = model_from_alpha(alpha, 4)
    assert expected_accepted_length(best_tree(budget + 1, m), m) >= expected_accepted_length(best_tree(budget, m), m) - 1e-12


@settings(max_examples=60, deadline=None)
@given(a=alphas, b=alphas, budget=st.integers(1, 16), branching=branchings)
def test_expected_length_grows_with_alpha(a, b, budget, branching):
    lo, hi = sorted((a, b))
    assert expected_accepted_length(chain(budget), chain_model(lo)) <= expected_accepted_length(chain(budget), chain_model(hi)) + 1e-12
    m_lo, m_hi = model_from_alpha(lo, 4), model_from_alpha(hi, 4)
    assert (expected_accepted_length(best_tree(budget, m_lo), m_lo)
            <= expected_accepted_length(best_tree(budget, m_hi), m_hi) + 1e-12)
    # On a fixed tree, raising every a[d][j] can only help.
    t = full_tree(branching)
    assert expected_accepted_length(t, AcceptanceModel(((lo * 0.5, lo * 0.3),))) <= expected_accepted_length(
        t, AcceptanceModel(((hi * 0.5, hi * 0.3),))) + 1e-12


@settings(max_examples=60, deadline=None)
@given(alpha=alphas, branching=branchings)
def test_chain_is_below_a_tree_containing_it_and_bounds_hold(alpha, branching):
    m = model_from_alpha(alpha, 3)
    tree = full_tree(branching)
    e = expected_accepted_length(tree, m)
    assert tree.contains(chain(len(branching)))
    assert expected_accepted_length(chain(len(branching)), m) <= e + 1e-12
    assert 1.0 <= e <= tree.depth + 1 + 1e-12
    pmf = accepted_depth_pmf(tree, m)
    assert pmf.sum() == pytest.approx(1.0) and np.all(np.diff(depth_survival(tree, m)) <= 1e-12)


@settings(max_examples=40, deadline=None)
@given(alpha=alphas, steps=st.integers(1, 6), topk=st.sampled_from([2, 4]), extra=st.integers(0, 40))
def test_sglang_trees_are_trees_and_grow_with_draft_tokens(alpha, steps, topk, extra):
    m = model_from_alpha(alpha, 4)
    n = 2 + extra % eagle_candidate_count(steps, topk)
    t = sglang_eagle_tree(steps, topk, n, m)
    assert t.num_nodes == n - 1 and t.depth <= steps
    assert expected_accepted_length(t, m) <= expected_accepted_length(best_tree(n - 1, m), m) + 1e-12
    if n + 1 <= eagle_candidate_count(steps, topk) + 1:
        bigger = sglang_eagle_tree(steps, topk, n + 1, m)
        assert bigger.contains(t) or expected_accepted_length(bigger, m) >= expected_accepted_length(t, m)


# ---- inverse ------------------------------------------------------------------------------------

def test_expected_length_rises_with_alpha_over_the_whole_grid():
    alphas_ = np.linspace(0, 1, 41)
    for steps in range(1, 9):
        for topk in (2, 4, 8):
            e = np.array([sglang_expected_lengths(steps, topk, model_from_alpha(a, topk)) for a in alphas_])
            assert np.all(np.diff(e, axis=0) >= -1e-12), (steps, topk)


def test_alpha_from_a_chains_accepted_length_is_speedups_alpha():
    # topk 1: E[L] = (1 - a^(k+1)) / (1 - a); k = 3, a = 0.7 gives 2.533.
    length = float(speedup.expected_accepted_length(0.7, 3))
    assert alpha_from_mean_accepted_length(length, 3, 1, 4) == pytest.approx(0.7, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(alpha=st.floats(0.01, 0.99), shape=st.sampled_from([(5, 4, 8), (3, 1, 4), (6, 8, 32), (2, 2, 5)]))
def test_alpha_round_trips_through_sglang_shapes(alpha, shape):
    steps, topk, n = shape
    length = float(sglang_expected_lengths(steps, topk, model_from_alpha(alpha, topk))[n - 1])
    back = alpha_from_mean_accepted_length(length, steps, topk, n)
    again = float(sglang_expected_lengths(steps, topk, model_from_alpha(back, topk))[n - 1])
    assert again == pytest.approx(length, abs=1e-9)


def test_accepted_lengths_past_the_shape_are_refused():
    with pytest.raises(TreeInputError, match="between 1 and 6"):
        alpha_from_mean_accepted_length(6.5, 5, 4, 8)
    assert alpha_from_mean_accepted_length(6.0, 5, 4, 8) == 1.0 and alpha_from_mean_accepted_length(1.0, 5, 4, 8) == 0.0

"""Speculative-decoding math: hand values, properties, and a Monte-Carlo run of real rejection sampling."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.errors import SpecplanError
from planner.speedup import (
    accepted_length_pmf,
    acceptance_rate_from_alpha,
    alpha_from_acceptance_rate,
    alpha_mle,
    best_k,
    break_even_alpha,
    check_alpha,
    check_k,
    expected_accepted_length,
    expected_accepted_length_positional,
    per_position_acceptance,
    seed_formula_speedup,
    speedup,
    speedup_breakdown,
)

alphas = st.floats(0, 1)
ks = st.integers(1, 64)
costs = st.floats(0, 2)
verify_costs = st.floats(0.5, 5)
# Float rounding may break a monotone comparison by an ulp or so; the math allows no more.
ROUNDING = 1e-12


# --- hand values -----------------------------------------------------------------------------


def test_mean_accepted_length_by_hand():
    assert expected_accepted_length(0.8, 4) == pytest.approx((1 - 0.8**5) / 0.2) == pytest.approx(3.3616)


@pytest.mark.parametrize("k", [1, 4, 64])
def test_mean_accepted_length_at_the_ends(k):
    assert expected_accepted_length(1.0, k) == k + 1  # every draft kept plus the bonus token
    assert expected_accepted_length(0.0, k) == 1  # only the target's own token
    # Continuous at alpha = 1 (the closed form is 0/0 there).
    assert expected_accepted_length(1 - 1e-12, k) == pytest.approx(k + 1, rel=1e-9)


def test_ends_inside_arrays_raise_no_warning():
    # filterwarnings=error turns any divide-by-zero RuntimeWarning into a failure.
    got = expected_accepted_length(np.array([0.0, 0.5, 1.0]), np.array([[1], [3]]))
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, [[1, 1.5, 2], [1, 1.875, 4]])


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.8, 1.0])
@pytest.mark.parametrize("k", [1, 4, 10])
def test_pmf_sums_to_one_and_its_mean_is_the_mean_length(alpha, k):
    pmf = accepted_length_pmf(alpha, k)
    assert pmf.shape == (k + 1,)
    assert pmf.sum() == pytest.approx(1.0)
    assert pmf @ np.arange(1, k + 2) == pytest.approx(expected_accepted_length(alpha, k))


def test_pmf_by_hand():
    np.testing.assert_allclose(accepted_length_pmf(0.5, 2), [0.5, 0.25, 0.25])


def test_positional_form():
    assert expected_accepted_length_positional([0.9, 0.5]) == pytest.approx(1 + 0.9 + 0.9 * 0.5)
    same = np.full((3, 5), 0.7)  # leading axes are configurations, the last is position
    np.testing.assert_allclose(expected_accepted_length_positional(same), expected_accepted_length(0.7, 5))


def test_per_position_acceptance_adds_up_to_the_mean_length():
    p = per_position_acceptance(0.6, 5)
    np.testing.assert_allclose(p, 0.6 ** np.arange(1, 6))
    assert 1 + p.sum() == pytest.approx(expected_accepted_length(0.6, 5))


def test_speedup_is_leviathan_theorem_3_8():
    # (1 - alpha^(k+1)) / ((1 - alpha)(k c + 1)) with alpha 0.8, k 4, c 0.05.
    assert speedup(0.8, 4, 0.05) == pytest.approx(3.3616 / 1.2)
    assert speedup(0.8, 4, 0.05, r=1.5) == pytest.approx(3.3616 / 1.7)


def test_speedup_broadcasts_over_a_grid():
    s = speedup(np.linspace(0, 1, 5)[:, None, None], np.arange(1, 9)[None, :, None], np.array([0.02, 0.1]))
    assert s.shape == (5, 8, 2)
    assert np.all(s[0] < 1)  # nothing accepted: speculation is pure overhead


def test_seed_formula_is_per_round_cost():
    # The seed's c is the whole round's drafting cost: c_round = k * c converts it.
    assert seed_formula_speedup(0.8, 4, 4 * 0.05) == pytest.approx(speedup(0.8, 4, 0.05))
    assert seed_formula_speedup(0.8, 4, 0.05) > speedup(0.8, 4, 0.05)  # mixing them up flatters the draft


@pytest.mark.parametrize("c, r", [(0.1, 1.0), (0.05, 1.3), (0.0, 1.0)])
def test_break_even_alpha_gives_speedup_one_at_k1(c, r):
    alpha = break_even_alpha(c, r)
    assert speedup(alpha, 1, c, r) == pytest.approx(1.0)


def test_break_even_alpha_clips():
    assert break_even_alpha(0.0, 0.5) == 0.0  # cheap verification: always pays
    assert break_even_alpha(0.8, 1.5) == 1.0  # never pays at k = 1
    np.testing.assert_allclose(break_even_alpha(np.array([0.1, 0.3])), [0.1, 0.3])


def test_breakdown_names_per_token_and_per_round_costs():
    b = speedup_breakdown(0.8, 4, 0.05, 1.0)
    assert (b.alpha, b.k, b.c, b.r) == (0.8, 4, 0.05, 1.0)
    assert b.mean_accepted_length == pytest.approx(3.3616)
    assert b.drafting_overhead == pytest.approx(0.2)
    assert b.round_time == pytest.approx(1.2)
    assert b.speedup == pytest.approx(3.3616 / 1.2)
    with pytest.raises(ValueError, match="c must be >= 0"):
        speedup_breakdown(0.8, 4, -0.1)


def test_best_k_by_hand():
    k, s = best_k(0.8, 0.05, 1.0, k_max=16)
    every = speedup(0.8, np.arange(1, 17), 0.05)
    assert k == np.argmax(every) + 1 and s == pytest.approx(every.max())
    # A verification cost that grows with k pulls the best k down.
    k_growing, _ = best_k(0.8, 0.05, 1.0 + 0.1 * np.arange(1, 17), k_max=16)
    assert k_growing < k


def test_best_k_rejects_a_wrong_length_r():
    with pytest.raises(ValueError, match="k_max = 16 values"):
        best_k(0.8, 0.05, np.ones(10), k_max=16)


def test_acceptance_rate_by_hand():
    # alpha 0.5, k 2: E[L] = 1.75, so 0.75 of 2 drafts accepted per round = 0.375.
    assert acceptance_rate_from_alpha(0.5, 2) == pytest.approx(0.375)
    assert acceptance_rate_from_alpha(1.0, 7) == 1.0
    assert acceptance_rate_from_alpha(0.0, 7) == 0.0
    assert alpha_from_acceptance_rate(0.375, 2) == pytest.approx(0.5, abs=1e-12)
    assert alpha_from_acceptance_rate(0.0, 5) == 0.0 and alpha_from_acceptance_rate(1.0, 5) == 1.0


def test_alpha_from_rate_is_vectorised():
    rates = np.array([[0.1, 0.5, 0.9]])
    k = np.array([[1], [4]])
    got = alpha_from_acceptance_rate(rates, k)
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got[0], rates[0], atol=1e-12)  # k = 1: the two rates coincide
    np.testing.assert_allclose(acceptance_rate_from_alpha(got, k), np.broadcast_to(rates, (2, 3)), atol=1e-12)


# --- properties ------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(a1=alphas, a2=alphas, k=ks, c=costs, r=verify_costs)
def test_speedup_rises_with_alpha(a1, a2, k, c, r):
    lo, hi = sorted((a1, a2))
    assert speedup(hi, k, c, r) >= speedup(lo, k, c, r) * (1 - ROUNDING)


@settings(max_examples=300, deadline=None)
@given(a=alphas, k=ks, c1=costs, c2=costs, r=verify_costs)
def test_speedup_falls_with_draft_cost(a, k, c1, c2, r):
    lo, hi = sorted((c1, c2))
    assert speedup(a, k, hi, r) <= speedup(a, k, lo, r)


@settings(max_examples=300, deadline=None)
@given(a=alphas, k=ks)
def test_mean_length_between_1_and_k_plus_1(a, k):
    e = expected_accepted_length(a, k)
    assert 1 <= e <= k + 1


@settings(max_examples=300, deadline=None)
@given(a=alphas, k=ks)
def test_rate_conversions_invert_each_other(a, k):
    rate = acceptance_rate_from_alpha(a, k)
    assert rate <= a * (1 + ROUNDING)  # the server's rate never exceeds per-token alpha
    assert alpha_from_acceptance_rate(rate, k) == pytest.approx(a, abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(rate=alphas, k=ks)
def test_rate_to_alpha_to_rate(rate, k):
    assert acceptance_rate_from_alpha(alpha_from_acceptance_rate(rate, k), k) == pytest.approx(rate, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(a=alphas, c=costs, slope=st.floats(0, 0.5), k_max=st.integers(1, 32))
def test_best_k_beats_every_k(a, c, slope, k_max):
    r = 1.0 + slope * np.arange(1, k_max + 1)
    k, s = best_k(a, c, r, k_max=k_max)
    assert 1 <= k <= k_max
    for kk in range(1, k_max + 1):
        assert s >= speedup(a, kk, c, r[kk - 1])


@settings(max_examples=100, deadline=None)
@given(
    many=st.lists(st.tuples(alphas, costs), min_size=1, max_size=20),
    slope=st.floats(0, 0.5),
)
def test_best_k_vectorised_equals_a_loop(many, slope):
    a, c = np.array(many).T
    r = 1.0 + slope * np.arange(1, 17)
    k_vec, s_vec = best_k(a, c, r)
    for i in range(len(a)):
        k_one, s_one = best_k(a[i], c[i], r)
        assert (k_vec[i], s_vec[i]) == (k_one, s_one)


# --- Monte Carlo: real speculative sampling --------------------------------------------------

# Fixed target p and draft q over 6 tokens, the same at every position (context-independent).
P = np.array([0.30, 0.25, 0.15, 0.12, 0.10, 0.08])
Q = np.array([0.10, 0.15, 0.30, 0.20, 0.15, 0.10])
K, ROUNDS = 4, 20_000


def speculative_rounds(rng, p, q, k, rounds, lossless=True):
    """Run rounds of speculative sampling; return (drafts accepted per round, every emitted token).

    Lossless (Leviathan; Chen): keep draft x ~ q with probability min(1, p(x)/q(x)); at the first
    rejection resample from norm(max(0, p - q)); if all k are kept, add a bonus token from p.
    ``lossless=False`` keeps x when a uniform draw falls below p(x), the seed's flawed rule.
    """
    drafts = rng.choice(len(q), size=(rounds, k), p=q)
    threshold = np.minimum(1.0, p[drafts] / q[drafts]) if lossless else p[drafts]
    keep = rng.random((rounds, k)) < threshold
    accepted = np.where(keep.all(axis=1), k, np.argmin(keep, axis=1))  # index of the first rejection
    rejected = accepted < k
    residual = np.maximum(p - q, 0.0) / np.maximum(p - q, 0.0).sum()
    last = np.empty(rounds, dtype=int)
    last[rejected] = rng.choice(len(p), size=int(rejected.sum()), p=residual)
    last[~rejected] = rng.choice(len(p), size=int((~rejected).sum()), p=p)
    kept = drafts[np.arange(k) < accepted[:, None]]
    return accepted, np.concatenate([kept, last])


@pytest.fixture(scope="module")
def simulated():
    return speculative_rounds(np.random.default_rng(20230518), P, Q, K, ROUNDS)


def alpha_pq() -> float:
    return float(np.minimum(P, Q).sum())  # Leviathan et al. 2023, Definition 3.1: 1 - TV(p, q)


def test_measured_per_token_acceptance_is_alpha(simulated):
    accepted, _ = simulated
    tried = accepted.sum() + np.count_nonzero(accepted < K)  # drafts actually checked by the target
    measured = accepted.sum() / tried
    a = alpha_pq()
    assert abs(measured - a) < 4 * np.sqrt(a * (1 - a) / tried)


def test_tokens_per_round_match_mean_length(simulated):
    accepted, _ = simulated
    a = alpha_pq()
    mean = expected_accepted_length(a, K)
    sd = np.sqrt(accepted_length_pmf(a, K) @ (np.arange(1, K + 2) - mean) ** 2)
    assert abs((accepted + 1).mean() - mean) < 4 * sd / np.sqrt(ROUNDS)
    # ...and the server-style ratio accepted / proposed matches the conversion.
    ratio = accepted.sum() / (K * ROUNDS)
    assert abs(ratio - acceptance_rate_from_alpha(a, K)) < 4 * sd / (K * np.sqrt(ROUNDS))


def test_accepted_length_distribution_and_positions(simulated):
    from scipy.stats import chisquare

    accepted, _ = simulated
    counts = np.bincount(accepted + 1, minlength=K + 2)[1:]
    expected = accepted_length_pmf(alpha_pq(), K) * ROUNDS
    assert chisquare(counts, expected).pvalue > 1e-3
    reached = (accepted[:, None] >= np.arange(1, K + 1)).mean(axis=0)  # draft i accepted
    p_i = per_position_acceptance(alpha_pq(), K)
    assert np.all(np.abs(reached - p_i) < 4 * np.sqrt(p_i * (1 - p_i) / ROUNDS))


def test_emitted_tokens_follow_the_target(simulated):
    from scipy.stats import chisquare

    _, tokens = simulated
    counts = np.bincount(tokens, minlength=len(P))
    assert chisquare(counts, P * counts.sum()).pvalue > 1e-3


def test_the_seed_acceptance_rule_is_detected_as_lossy():
    # Negative control: the same check must catch a sampler that is not lossless.
    from scipy.stats import chisquare

    _, tokens = speculative_rounds(np.random.default_rng(7), P, Q, K, ROUNDS, lossless=False)
    counts = np.bincount(tokens, minlength=len(P))
    assert chisquare(counts, P * counts.sum()).pvalue < 1e-6


# --- estimating alpha from observed rounds ---------------------------------------------------


def geometric_rounds(rng, alpha, proposed):
    """Accepted drafts per round under the i.i.d. model, for per-round proposal counts."""
    proposed = np.asarray(proposed)
    keep = rng.random((proposed.size, proposed.max())) < alpha
    keep &= np.arange(proposed.max()) < proposed[:, None]  # positions beyond k_i count as rejections
    return np.argmin(np.concatenate([keep, np.zeros((proposed.size, 1), bool)], axis=1), axis=1)


def test_alpha_mle_recovers_a_known_alpha():
    accepted = geometric_rounds(np.random.default_rng(1), 0.7, np.full(5000, 5))
    hat, low, high = alpha_mle(accepted, 5)
    assert low < hat < high
    assert low <= 0.7 <= high
    assert high - low < 0.03


def test_alpha_mle_with_varying_k():
    proposed = np.random.default_rng(2).integers(1, 9, size=5000)
    accepted = geometric_rounds(np.random.default_rng(3), 0.55, proposed)
    hat, low, high = alpha_mle(accepted, proposed)
    assert low <= 0.55 <= high and low < hat < high


def test_alpha_mle_by_hand():
    # 5 drafts accepted; rounds 1 and 3 ended on a rejection, round 2 kept all 3.
    hat, low, high = alpha_mle([2, 3, 0], [3, 3, 3])
    assert hat == pytest.approx(5 / 7)
    assert 0 < low < hat < high < 1
    _, low50, high50 = alpha_mle([2, 3, 0], [3, 3, 3], level=0.5)
    assert low < low50 < high50 < high


def test_alpha_mle_all_accepted():
    # Beta(11, 1) posterior: cdf x^11, so the one-sided 95% bound is 0.05^(1/11).
    assert alpha_mle([5, 5], [5, 5]) == pytest.approx((1.0, 0.05 ** (1 / 11), 1.0))


def test_alpha_mle_none_accepted():
    # Three rejections: Beta(1, 4) posterior, cdf 1 - (1 - x)^4, so the upper bound is 1 - 0.05^(1/4).
    assert alpha_mle([0, 0, 0], 4) == pytest.approx((0.0, 0.0, 1 - 0.05 ** (1 / 4)))


@pytest.mark.parametrize(
    "accepted, proposed, message",
    [
        ([6], [5], "accepted must be between 0 and proposed"),
        ([-1], [5], "accepted must be between 0 and proposed"),
        ([0], [0], "k must be at least 1"),
        ([1.5], [4], "whole numbers"),
        ([], [], "at least one observed round"),
    ],
)
def test_alpha_mle_rejects_bad_rounds(accepted, proposed, message):
    with pytest.raises(ValueError, match=message):
        alpha_mle(accepted, proposed)


def test_alpha_mle_rejects_bad_level():
    with pytest.raises(ValueError, match="level"):
        alpha_mle([1], [2], level=1.0)


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [1.2, -0.1, float("nan")])
def test_check_alpha_message(bad):
    with pytest.raises(ValueError, match=rf"^alpha must be in \[0, 1\] \(got {bad!r}\)$"):
        check_alpha(bad)


def test_check_alpha_points_at_the_bad_value_in_an_array():
    with pytest.raises(ValueError, match=r"\(got 1\.5\)"):
        check_alpha([0.2, 1.5, 0.9])


@pytest.mark.parametrize("bad", [0, -3, 65])
def test_check_k_message(bad):
    with pytest.raises(ValueError, match=rf"^k must be between 1 and 64 \(got {bad}\)$"):
        check_k(bad)


def test_check_k_wants_whole_numbers():
    with pytest.raises(ValueError, match=r"k must be a whole number \(got 2\.5\)"):
        check_k(2.5)
    assert check_k(4.0) == 4


def test_conversions_and_breakdown_validate():
    with pytest.raises(ValueError, match=r"acceptance rate must be in \[0, 1\] \(got 1\.5\)"):
        alpha_from_acceptance_rate(1.5, 4)
    with pytest.raises(ValueError, match="k must be between 1 and 64"):
        alpha_from_acceptance_rate(0.5, 0)
    with pytest.raises(ValueError, match="alpha must be in"):
        speedup_breakdown(1.2, 4, 0.05)


def test_bad_input_is_a_one_line_cli_error():
    # The CLI prints SpecplanError on one line (exit 2) instead of a traceback.
    with pytest.raises(SpecplanError):
        check_k(0)


def test_import_does_not_load_scipy():
    code = "import sys, planner.speedup; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"


@given(st.floats(0.01, 0.99), st.integers(1, 16))
def test_root_of_increasing_inverts_expected_length(alpha, k):
    """root_of_increasing (Illinois regula falsi) recovers alpha from E[L](alpha, k) to 1e-9."""
    from planner import speedup as sp

    tau = float(sp.expected_accepted_length(alpha, k))
    got = sp.root_of_increasing(lambda a: float(sp.expected_accepted_length(a, k)) - tau)
    assert got == pytest.approx(alpha, abs=1e-9)

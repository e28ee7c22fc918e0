"""planner.draftloop: each engine's draft loop against a simulation of the loop itself, and its properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from planner import speedup as sp
from planner.draftloop import (
    LoopSpec,
    alpha_from_loop_counts,
    confidence_split,
    engine_loop,
    loop_round,
    round_distribution,
    round_means,
)
from planner.draftloop.schedules import stationary_weights, state_rounds, transient_weights, up_probability
from planner.errors import SpecplanError

ROUNDS = 200_000


def _simulate(rule: str, alpha: float, n_max: int, p_min: float, kappa: float, n_min: int, seed: int):
    """The engines' loops step by step (llama.cpp draft-simple / classic, fixed k): per-round means."""
    rng = np.random.default_rng(seed)
    q = rng.beta(kappa * alpha, kappa * (1 - alpha), size=(ROUNDS, n_max))
    acc = rng.random((ROUNDS, n_max)) < q
    drafted = np.zeros(ROUNDS)
    passes = np.zeros(ROUNDS)
    accepted = np.zeros(ROUNDS)
    for i in range(ROUNDS):
        d, p = 0, 1  # the seed pass gives the logits of position 1
        for j in range(n_max):
            if rule == "stop_before":
                if q[i, j] < p_min:
                    break  # not drafted; its logits were computed already
                d += 1
                if d == n_max:
                    break
                p += 1  # decode the kept token: the logits of the next position
            else:  # stop_after (fixed: p_min 0)
                d += 1
                if d == n_max or q[i, j] < p_min:
                    break
                p += 1
        if d < n_min:
            d = 0
        a = 0
        while a < d and acc[i, a]:
            a += 1
        drafted[i], passes[i], accepted[i] = d, p, a
    return drafted, passes, accepted


@pytest.mark.parametrize(("rule", "alpha", "n_max", "p_min", "kappa", "n_min"), [
    ("stop_before", 0.8, 5, 0.75, 6.0, 0),
    ("stop_before", 0.6, 8, 0.5, 2.0, 2),
    ("stop_after", 0.85, 6, 0.75, 6.0, 0),
    ("stop_after", 0.7, 4, 0.4, 3.0, 0),
    ("fixed", 0.7, 5, 0.0, 6.0, 0),
])
def test_closed_forms_match_a_simulation_of_the_loop(rule, alpha, n_max, p_min, kappa, n_min) -> None:
    drafted, passes, accepted = _simulate(rule, alpha, n_max, p_min, kappa, n_min, seed=7)
    m = round_means(round_distribution(rule, alpha, n_max, p_min, kappa, n_min))  # type: ignore[arg-type]
    for name, sim, model in (("drafted", drafted, m.drafted), ("passes", passes, m.draft_passes),
                             ("accepted", accepted, m.accepted)):
        se = sim.std() / np.sqrt(ROUNDS)
        assert abs(sim.mean() - float(model)) < 5 * se + 1e-9, (name, sim.mean(), float(model))
    pmf = round_distribution(rule, alpha, n_max, p_min, kappa, n_min).pmf  # type: ignore[arg-type]
    raw = drafted if n_min == 0 else None
    if raw is not None:
        hist = np.bincount(raw.astype(int), minlength=n_max + 1) / ROUNDS
        assert np.abs(hist - pmf).max() < 0.005


def test_heuristic_chain_matches_a_simulation_of_update_candidate_strategy() -> None:
    rng = np.random.default_rng(11)
    alpha, k, rounds = 0.8, 5, 400_000
    ks = np.empty(rounds)
    committed = np.empty(rounds)
    for t in range(rounds):
        ks[t] = k
        acc = 0
        while acc < k and rng.random() < alpha:
            acc += 1
        committed[t] = acc + 1
        k = k + 2 if acc == k else max(1, k - 1)
    up = up_probability(state_rounds("fixed", alpha, 0.0, 6.0, k_cap=64))
    pi = stationary_weights(up)
    assert abs(float(np.sum(pi * np.arange(1, 65))) - ks.mean()) < 0.03 * ks.mean()
    loop = LoopSpec("hf", "test", "fixed", "heuristic", 0.0, 0, 0.0, 6.0, "num_assistant_tokens")
    r = np.ones(65)
    lr = loop_round(loop, alpha, 5, 0.0, r, 1.0)
    assert abs(float(lr.committed) - committed.mean()) < 0.02 * committed.mean()
    assert abs(float(lr.drafted) - ks.mean()) < 0.03 * ks.mean()
    # heuristic_transient from k = 5 over one round stays at k = 5
    w = transient_weights(up, 5, 1)
    assert w[4] == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.0, 1.0), st.integers(1, 16), st.floats(0.0, 0.5), st.floats(0.5, 3.0), st.floats(0.5, 50.0))
def test_p_min_zero_is_the_fixed_k_formula(alpha: float, k: int, c: float, r: float, kappa: float) -> None:
    """p-min 0 and n-max k: k drafted, k passes, E[L] and the speedup of planner.speedup exactly."""
    for rule in ("stop_before", "stop_after", "fixed"):
        m = round_means(round_distribution(rule, alpha, k, 0.0, kappa))  # type: ignore[arg-type]
        assert float(m.drafted) == pytest.approx(k) and float(m.draft_passes) == pytest.approx(k)
        assert float(m.committed) == pytest.approx(float(sp.expected_accepted_length(alpha, k)), rel=1e-9)
    loop = LoopSpec("x", "t", "stop_before", "fixed", 0.0, 0, 0.0, kappa, "n_max")
    table = np.concatenate([[1.0], np.full(k, r)])
    lr = loop_round(loop, alpha, k, c, table, 1.0)
    assert float(lr.speedup) == pytest.approx(float(sp.speedup(alpha, k, c, r)), rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.01, 0.99), st.integers(1, 16), st.floats(0.05, 0.95), st.floats(0.3, 100.0), st.integers(0, 3))
# A tail of 2e-16 (kappa 88, p far above alpha): 1 - P(q < p) cancelled to noise and E[q | q >= p] fell to 0.5.
@example(0.6520262538357391, 1, 0.9415182754343213, 88.0, 0)
def test_loop_figures_stay_in_their_bounds(alpha: float, n: int, p: float, kappa: float, n_min: int) -> None:
    split = confidence_split(alpha, p, kappa)
    assert split.accept_if_fail - 1e-9 <= alpha <= split.accept_if_pass + 1e-9
    for rule in ("stop_before", "stop_after"):
        dist = round_distribution(rule, alpha, n, p, kappa, n_min)  # type: ignore[arg-type]
        assert float(dist.pmf.sum()) == pytest.approx(1.0)
        m = round_means(dist)
        assert -1e-9 <= float(m.drafted) <= n + 1e-9 and 1 - 1e-9 <= float(m.committed) <= float(m.verified) + 1e-9
        assert 1 - 1e-9 <= float(m.draft_passes) <= n + 1 + 1e-9
    # stop_before drafts only confident tokens: one drafted token is accepted at least p-min of the time
    one = round_means(round_distribution("stop_before", alpha, 1, p, kappa))
    if float(one.drafted) > 1e-6:
        assert float(one.acceptance_rate) >= p - 1e-6
        assert float(one.acceptance_rate) >= alpha - 1e-9  # the threshold raises the measured rate


def test_speedup_is_between_its_bounds() -> None:
    loop = engine_loop("llamacpp")
    alpha = np.linspace(0.05, 0.99, 12)[:, None]
    ks = np.arange(1, 17)
    table = 1 + 0.02 * np.arange(17)
    lr = loop_round(loop, alpha, ks, 0.05, table, 0.01)
    assert np.all(lr.speedup > 0) and np.all(lr.speedup <= (ks + 1) / 1.0)
    assert np.all(lr.speedup == pytest.approx(lr.committed / lr.round_cost))


def test_conversion_recovers_alpha_and_kappa() -> None:
    loop = engine_loop("llamacpp", p_min=0.6)
    from dataclasses import replace

    truth = replace(loop, kappa=3.0)
    m = round_means(round_distribution(truth.rule, 0.82, 8, 0.6, 3.0))
    fit = alpha_from_loop_counts(loop, float(m.acceptance_rate), 8, float(m.drafted))
    assert fit.kappa_fitted and fit.alpha == pytest.approx(0.82, abs=2e-3) and fit.kappa == pytest.approx(3.0, rel=0.02)
    only_rate = alpha_from_loop_counts(truth, float(m.acceptance_rate), 8)
    assert only_rate.alpha == pytest.approx(0.82, abs=1e-6)
    low = alpha_from_loop_counts(engine_loop("llamacpp"), 0.5, 5)  # below the default kappa's floor
    assert low.kappa_fitted and low.kappa > engine_loop("llamacpp").kappa
    loop = replace(engine_loop("llamacpp"), kappa=low.kappa)
    assert round_means(round_distribution(loop.rule, low.alpha, 5, loop.p_min, loop.kappa)).acceptance_rate == \
        pytest.approx(0.5, abs=1e-4)
    with pytest.raises(SpecplanError, match="below what"):
        alpha_from_loop_counts(engine_loop("llamacpp", p_min=0.95), 0.05, 2)


def test_release_lines_and_defaults() -> None:
    assert engine_loop("llamacpp", "b4500").rule == "stop_after"
    assert engine_loop("llamacpp", "version: 11312 (0c1e570)").rule == "stop_before"
    assert engine_loop("llamacpp").p_min == 0.75
    assert engine_loop("vllm", "0.6.7").line == "v0" and engine_loop("vllm").line == "v1"
    assert engine_loop("hf").p_min == 0.4 and engine_loop("hf", "4.40").rule == "fixed"
    with pytest.raises(SpecplanError):
        engine_loop("vllm", p_min=0.5)
    tool = engine_loop("llamacpp", "llama-speculative")  # by name, or any build before server speculation (b4180)
    assert tool.rule == "fixed" and tool.extra_draft_passes == 1
    assert engine_loop("llamacpp", "b2300").line == "llama-speculative"
    # llama-server's own --version line names its build, not the dotted 0.5.0 before it (one reader:
    # planner.versions, the same the exports use)
    assert engine_loop("llamacpp", "version: 0.5.0-dev (build 11312, commit 0c1e570)").line == "spec-draft"
    with pytest.raises(SpecplanError, match="no draft-loop line"):
        engine_loop("vllm", "0.4.0")
    lr = loop_round(tool, 0.8, 5, 0.2, np.ones(6), 1.0)
    assert float(lr.draft_passes) == 6.0 and float(lr.drafted) == 5.0


def test_heuristic_transient_matches_a_simulation_of_short_calls() -> None:
    """heuristic_transient restarts at num_assistant_tokens every generate() call."""
    rng = np.random.default_rng(5)
    alpha, start, rounds, calls = 0.85, 5, 8, 20_000
    ks = []
    for _ in range(calls):
        k = start
        for _ in range(rounds):
            ks.append(k)
            acc = 0
            while acc < k and rng.random() < alpha:
                acc += 1
            k = k + 2 if acc == k else max(1, k - 1)
    up = up_probability(state_rounds("fixed", alpha, 0.0, 6.0, k_cap=64))
    w = transient_weights(up, np.array([start, 3]), rounds)
    assert w.shape == (2, 64)
    assert float(np.sum(w[0] * np.arange(1, 65))) == pytest.approx(np.mean(ks), rel=0.01)

"""Speedup of an engine's loop by renewal-reward: mean tokens per round over mean cost per round.

Rounds are i.i.d. renewals (or, under transformers' heuristic, a Markov chain of rounds), so the
long-run tokens per unit time is E[committed] / E[round time]. In target decode steps t_T:

    S = E[accepted + 1] / (E[draft passes] c + E[r(D + 1)] + fixed_round / t_T)

with c = t_draft / t_T per draft pass, r(n) = t_verify(n tokens) / t_T and fixed_round the host
time a round adds (loops.yaml). With a fixed k, no threshold and no fixed cost this is
planner.speedup.speedup exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from planner import speedup as sp
from planner.draftloop.data import LoopSpec
from planner.draftloop.rounds import RoundDist, expected_verify_cost, round_distribution, round_means
from planner.draftloop.schedules import K_CAP, state_rounds, stationary_weights, transient_weights, up_probability

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

__all__ = ["LoopRound", "loop_round", "renewal_speedup", "TRANSIENT_ROUNDS"]

TRANSIENT_ROUNDS = 64  # rounds of one generate() call under heuristic_transient (~256 new tokens at ~4 per round)


@dataclass(frozen=True)
class LoopRound:
    """One configuration's mean round under its engine's loop (tokens, passes, target steps)."""

    drafted: NDArray[np.float64]  # E[drafted tokens] per round
    accepted: NDArray[np.float64]  # E[accepted drafts] per round
    committed: NDArray[np.float64]  # E[accepted + 1]: tokens per round
    draft_passes: NDArray[np.float64]  # E[draft forward passes] per round
    verify_cost: NDArray[np.float64]  # E[r(D + 1)], target decode steps
    fixed_steps: NDArray[np.float64]  # fixed round cost, target decode steps
    round_cost: NDArray[np.float64]  # E[passes] c + E[r] + fixed, target decode steps
    speedup: NDArray[np.float64]  # committed / round_cost, dimensionless

    @property
    def acceptance_rate(self) -> NDArray[np.float64]:
        """accepted / drafted as servers report it, dimensionless."""
        d = np.asarray(self.drafted)
        return np.where(d > 0, np.asarray(self.accepted) / np.where(d > 0, d, 1.0), 0.0)[()]


def renewal_speedup(committed: ArrayLike, draft_passes: ArrayLike, c: ArrayLike, verify_cost: ArrayLike,
                    fixed_steps: ArrayLike = 0.0) -> NDArray[np.float64]:
    """E[committed] / (E[passes] c + E[r] + fixed): tokens per target decode step, dimensionless."""
    cost = np.asarray(draft_passes) * np.asarray(c, dtype=float) + np.asarray(verify_cost) + np.asarray(fixed_steps)
    return (np.asarray(committed) / cost)[()]


def _from_dist(dist: RoundDist, c: ArrayLike, r_by_tokens: ArrayLike, fixed: ArrayLike,
               weights: NDArray[np.float64] | None, extra_passes: int = 0) -> LoopRound:
    """Means of a round law; with ``weights`` (last axis = chain state) the chain's weighted means."""
    m = round_means(dist)
    if extra_passes:
        m = replace(m, draft_passes=m.draft_passes + extra_passes)
    r_tab = np.asarray(r_by_tokens, dtype=float)
    if weights is not None:
        r_tab = r_tab[..., None, :]  # one table for every chain state
    vc = expected_verify_cost(dist, r_tab)
    cc = np.asarray(c, dtype=float) if weights is None else np.asarray(c, dtype=float)[..., None]
    cost = m.draft_passes * cc + vc
    parts = [m.drafted, m.accepted, m.committed, m.draft_passes, vc, cost]
    if weights is not None:
        parts = [np.sum(weights * np.asarray(x), axis=-1) for x in parts]
    drafted, accepted, committed, passes, verify, cost = (np.asarray(x) for x in parts)
    f = np.asarray(fixed, dtype=float)
    total = cost + f
    return LoopRound(drafted=drafted[()], accepted=accepted[()], committed=committed[()], draft_passes=passes[()],
                     verify_cost=verify[()], fixed_steps=np.broadcast_to(f, total.shape)[()], round_cost=total[()],
                     speedup=(committed / total)[()])


def _fixed_round(alpha: ArrayLike, k: ArrayLike, c: ArrayLike, r_by_tokens: NDArray[np.float64], fixed: ArrayLike,
                 extra_passes: int) -> LoopRound:
    """k drafted every round (no threshold): the closed forms, no draft-length axis (the sweep's fast path)."""
    kk = np.asarray(k, dtype=np.int64)
    committed = np.asarray(sp.expected_accepted_length(alpha, kk))
    shape = np.broadcast_shapes(committed.shape, r_by_tokens.shape[:-1], np.shape(c), np.shape(fixed))
    idx = np.broadcast_to(kk, shape)[..., None]
    verify = np.take_along_axis(np.broadcast_to(r_by_tokens, shape + r_by_tokens.shape[-1:]), idx, axis=-1)[..., 0]
    passes = np.broadcast_to(kk + extra_passes, shape) * 1.0
    total = passes * np.asarray(c, dtype=float) + verify + np.asarray(fixed, dtype=float)
    committed = np.broadcast_to(committed, shape)
    return LoopRound(drafted=np.broadcast_to(kk * 1.0, shape)[()], accepted=(committed - 1.0)[()],
                     committed=committed[()], draft_passes=passes[()], verify_cost=verify[()],
                     fixed_steps=np.broadcast_to(np.asarray(fixed, dtype=float), shape)[()], round_cost=total[()],
                     speedup=(committed / total)[()])


def loop_round(loop: LoopSpec, alpha: ArrayLike, k: ArrayLike, c: ArrayLike, r_by_tokens: ArrayLike,
               t_target_s: ArrayLike, transient_rounds: int = TRANSIENT_ROUNDS) -> LoopRound:
    """The mean round of ``loop`` at per-token alpha and plan k (n-max, num_assistant_tokens, ...).

    ``r_by_tokens[..., m]`` is the verify cost of m + 1 tokens in target steps, m = 0..W with W >= max k
    (the chain of a heuristic schedule is cut at W). ``t_target_s`` (s) turns the fixed round cost
    into target steps. Units: see LoopRound.
    """
    r = np.asarray(r_by_tokens, dtype=float)
    width = r.shape[-1] - 1
    fixed = loop.fixed_round_us * 1e-6 / np.asarray(t_target_s, dtype=float)
    if loop.schedule == "fixed" and (loop.rule == "fixed" or loop.p_min == 0) and loop.n_min <= 1:
        return _fixed_round(alpha, k, c, r, fixed, loop.extra_draft_passes)
    if loop.schedule == "fixed":
        dist = round_distribution(loop.rule, alpha, k, loop.p_min, loop.kappa, loop.n_min, width=width)
        return _from_dist(dist, c, r, fixed, None, loop.extra_draft_passes)
    cap = min(K_CAP, width)
    states = state_rounds(loop.rule, alpha, loop.p_min, loop.kappa, k_cap=cap)
    up = up_probability(states)
    ks = np.asarray(k)
    if loop.schedule == "heuristic":
        w = stationary_weights(up)  # k only starts the chain: the stationary law forgets it
    else:  # heuristic_transient: each k is where the chain starts in every generate() call
        w = transient_weights(up, ks, transient_rounds)
    out = _from_dist(states, c, r[..., : cap + 1], fixed, w, loop.extra_draft_passes)
    shape = np.broadcast_shapes(np.shape(out.speedup), ks.shape)
    return LoopRound(*(np.broadcast_to(np.asarray(getattr(out, f)), shape)[()] for f in LoopRound.__dataclass_fields__))

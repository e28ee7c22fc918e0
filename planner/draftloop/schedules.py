"""transformers' num_assistant_tokens schedules as a Markov chain over the draft length k.

AssistedCandidateGenerator.update_candidate_strategy (generation/candidate_generator.py): with
the "heuristic" and "heuristic_transient" schedules, after every round k += 2 when every drafted
token was accepted (num_matches == candidate length), else k = max(1, k - 1). "heuristic" keeps k
across generate() calls (it is written back into the assistant's generation config), so a
long-running service sits in the chain's stationary law; "heuristic_transient" starts again from
num_assistant_tokens each call, so a call of R rounds averages the chain's first R steps.

k has no upper bound in transformers except the remaining length; here the chain is cut at
k_cap (planner.speedup.K_MAX = 64), where alpha^64 makes a further climb negligible unless alpha
is within a few 1e-3 of 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from planner.draftloop.rounds import RoundDist, Rule, round_distribution, round_means

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

__all__ = ["K_CAP", "state_rounds", "up_probability", "transition_matrix", "stationary_weights", "transient_weights"]

K_CAP = 64  # planner.speedup.K_MAX


def state_rounds(rule: Rule, alpha: ArrayLike, p_min: ArrayLike, kappa: ArrayLike, k_cap: int = K_CAP) -> RoundDist:
    """The round law in every chain state k = 1..k_cap (new axis before the draft-length axis)."""
    a = np.asarray(alpha, dtype=float)[..., None]
    return round_distribution(rule, a, np.arange(1, k_cap + 1), np.asarray(p_min, float)[..., None],
                              np.asarray(kappa, float)[..., None], width=k_cap)


def up_probability(states: RoundDist) -> NDArray[np.float64]:
    """P(every drafted token accepted | k) for k = 1..k_cap on the last axis: the chance k grows by 2."""
    return np.asarray(round_means(states).all_accepted)


def transition_matrix(up: ArrayLike) -> NDArray[np.float64]:
    """P[k, k'] of the heuristic: k -> min(k + 2, cap) with prob up_k, else max(k - 1, 1). Last two axes."""
    u = np.asarray(up, dtype=float)
    cap = u.shape[-1]
    ks = np.arange(cap)
    up_to = np.minimum(ks + 2, cap - 1)
    down_to = np.maximum(ks - 1, 0)
    m = np.zeros(u.shape + (cap,))
    np.put_along_axis(m, np.broadcast_to(up_to[:, None], u.shape + (1,)), u[..., None], axis=-1)
    down = np.zeros(u.shape + (cap,))
    np.put_along_axis(down, np.broadcast_to(down_to[:, None], u.shape + (1,)), (1.0 - u)[..., None], axis=-1)
    return m + down


def stationary_weights(up: ArrayLike) -> NDArray[np.float64]:
    """The stationary law pi of the heuristic chain over k = 1..cap (last axis), probabilities.

    Solves pi P = pi, sum pi = 1 as one linear system per configuration (the last balance
    equation replaced by the normalisation).
    """
    p = transition_matrix(up)
    cap = p.shape[-1]
    a = np.swapaxes(p, -1, -2) - np.eye(cap)
    a[..., -1, :] = 1.0
    rhs = np.zeros(p.shape[:-1])
    rhs[..., -1] = 1.0
    pi = np.linalg.solve(a, rhs[..., None])[..., 0]
    pi = np.clip(pi, 0.0, None)
    return pi / pi.sum(axis=-1, keepdims=True)


def transient_weights(up: ArrayLike, start: ArrayLike, rounds: int) -> NDArray[np.float64]:
    """Mean occupancy of k = 1..cap over the first ``rounds`` rounds from k = start (last axis), probabilities.

    ``start`` broadcasts with the leading axes of ``up`` (one chain per starting num_assistant_tokens).
    """
    p = transition_matrix(up)
    cap = p.shape[-1]
    first = np.clip(np.asarray(start, dtype=np.int64), 1, cap)
    state = (np.arange(1, cap + 1) == first[..., None]).astype(float)
    state = np.broadcast_to(state, np.broadcast_shapes(state.shape, p.shape[:-1])).copy()
    total = np.zeros_like(state)
    for _ in range(max(int(rounds), 1)):
        total += state
        state = np.einsum("...i,...ij->...j", state, p)
    return total / total.sum(axis=-1, keepdims=True)

"""Published acceptance figures -> per-token chain alpha: one function per definition.

Sources print acceptance in three ways (DESIGN.md section 2):
  * mean accepted length tau: tokens committed per verify step, the target's own (bonus) token
    included, 1..k+1 for a chain of k drafts: Spec-Bench's "#Mean Accepted Tokens", the EAGLE papers'
    tau, SGLang's ``avg_spec_accept_length``, TensorRT-LLM's acceptance length;
  * draft acceptance rate: accepted / proposed drafts (vLLM's spec-decode metrics), for which
    ``planner.speedup.alpha_from_acceptance_rate`` is the inverse;
  * per-position acceptance alpha_i = P(draft i accepted | drafts 1..i-1 accepted) (DeepSeek-V3's
    "acceptance rate of the second token").
A tree's tau has no chain alpha without a tree model: ``tree_alpha_bound`` gives only the upper
bound that its deepest chain allows.
"""

from __future__ import annotations

import math
from typing import Sequence

from planner import speedup as sp

__all__ = ["alpha_from_mean_accepted_length", "alpha_from_per_position", "tree_alpha_bound"]

_PRINT_SLACK = 1e-9  # a figure printed at exactly k+1 may carry float noise above it


def alpha_from_mean_accepted_length(tau: float, k: int) -> float:
    """Per-token alpha with E[L](alpha, k) = ``tau`` for a chain of ``k`` drafts (probability).

    ``tau`` is tokens committed per verify step, the target's own token included (1..k+1): what
    SGLang and TensorRT-LLM print as acceptance length. tau = 1 gives 0 and tau = k+1 gives 1
    exactly; in between, (tau - 1) / k is the acceptance rate that ``speedup.alpha_from_acceptance_rate`` inverts.
    """
    kk = int(sp.check_k(k))
    try:
        tau = float(tau)
    except (TypeError, ValueError):
        tau = math.nan
    if math.isnan(tau) or not 1.0 <= tau <= kk + 1 + _PRINT_SLACK:
        raise sp.SpeedupInputError(f"mean accepted length must be between 1 and k + 1 = {kk + 1} tokens per verify "
                                   f"step for k = {kk} (got {tau!r})")
    # tau - 1 accepted of k proposed per round: the draft acceptance rate, whose inverse speedup.py has.
    return float(sp.alpha_from_acceptance_rate(min(max(tau - 1.0, 0.0) / kk, 1.0), kk))


def alpha_from_per_position(alphas: Sequence[float]) -> float:
    """The constant per-token alpha whose chain of len(alphas) commits as many tokens as the profile (probability).

    ``alphas`` are conditional acceptances by position; E[L] = 1 + sum_i prod_{j<=i} alpha_j is
    matched at k = len(alphas), so a one-position figure is its own alpha.
    """
    a = sp.check_alpha(list(alphas), name="per-position acceptance")
    if a.size == 0:
        raise sp.SpeedupInputError("per-position acceptance needs at least one position")
    if a.size == 1:
        return float(a[0])
    return alpha_from_mean_accepted_length(float(sp.expected_accepted_length_positional(a)), int(a.size))


def tree_alpha_bound(tau: float, depth: int) -> float:
    """Largest chain alpha a tree of ``depth`` levels that commits ``tau`` per verify step allows (probability).

    The tree holds a chain of ``depth`` drafts along its best path and commits at least what that
    chain would: E[L](alpha_chain, depth) <= tau, so alpha_chain <= the inversion of tau at k = depth.
    An UPPER bound only: siblings make the tree's tau larger than its chain's.
    """
    return alpha_from_mean_accepted_length(min(float(tau), float(depth) + 1.0), depth)

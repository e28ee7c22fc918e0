"""The top-1 acceptance alpha behind a measured mean accepted length of an SGLang EAGLE shape.

SGLang and TensorRT-LLM print "accept length": tokens committed per verify step, the target's own
token included, which is E[L] here. For a given (steps, topk, num_draft_tokens) and rank profile,
E[L] rises with alpha (checked over the whole search grid in tests/test_trees.py), so a bisection
on [0, 1] inverts it.
"""

from __future__ import annotations

from collections.abc import Callable

from planner.trees.acceptance import RankProfile, model_from_alpha
from planner.trees.eagle import check_eagle_shape, sglang_expected_lengths
from planner.trees.named import MeasuredShape, shape_expected_length, shape_longest_length
from planner.trees.shapes import TreeInputError

__all__ = ["longest_accepted_length", "alpha_from_mean_accepted_length", "alpha_for_shape_length"]

_BISECTION_STEPS = 60  # 2**-60: below float resolution on [0, 1]


def longest_accepted_length(steps: int, num_draft_tokens: int) -> int:
    """min(steps + 1, num_draft_tokens): E[L] at alpha = 1, when every top-1 matches.

    Unit: tokens per round. The tree is at most ``steps`` deep and holds num_draft_tokens - 1 drafts.
    """
    return min(steps + 1, num_draft_tokens)


def alpha_from_mean_accepted_length(
    mean_accepted_length: float,
    steps: int,
    topk: int,
    num_draft_tokens: int,
    num_ranks: int | None = None,
    profile: RankProfile | None = None,
) -> float:
    """The alpha whose SGLang tree (steps, topk, num_draft_tokens) commits ``mean_accepted_length``.

    ``num_ranks`` (default topk) is the width of the rank split, ``profile`` the rank profile
    (default: rank_profiles.yaml's). Unit: probability.
    """
    check_eagle_shape(steps, topk, num_draft_tokens)
    most = longest_accepted_length(steps, num_draft_tokens)
    if not 1.0 <= mean_accepted_length <= most:
        raise TreeInputError(
            f"a mean accepted length for steps {steps}, draft tokens {num_draft_tokens} must be between 1 and {most}"
            f" (got {mean_accepted_length!r})"
        )
    ranks = topk if num_ranks is None else num_ranks

    def length(alpha: float) -> float:
        return float(sglang_expected_lengths(steps, topk, model_from_alpha(alpha, ranks, profile))[num_draft_tokens - 1])

    return _invert(length, mean_accepted_length, most)


def _invert(length: Callable[[float], float], target: float, most: float) -> float:
    """The alpha in [0, 1] where the increasing ``length`` reaches ``target`` (bisection)."""
    if target == 1.0:
        return 0.0
    if target == most:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if length(mid) < target else (lo, mid)
    return 0.5 * (lo + hi)


def alpha_for_shape_length(shape: MeasuredShape, mean_accepted_length: float,
                           profile: RankProfile | None = None) -> float:
    """The top-1 alpha whose ``shape`` (chain, static or dynamic tree) commits ``mean_accepted_length``
    tokens per verify step (bonus included) under ``profile``. Unit: probability."""
    most = shape_longest_length(shape)
    if not 1.0 <= mean_accepted_length <= most:
        raise TreeInputError(f"a mean accepted length on this shape must be between 1 and {most} "
                             f"(got {mean_accepted_length!r})")
    return _invert(lambda a: shape_expected_length(shape, a, profile), mean_accepted_length, most)

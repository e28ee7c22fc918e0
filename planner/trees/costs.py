"""What one SGLang EAGLE round costs, as counts, and the best (steps, topk, draft tokens) for a batch.

The counts (priced later by the cost model): the target verifies num_draft_tokens tokens per
request with tree attention; the draft runs speculative_num_steps passes per round. The first is
SGLang's draft extend after verify: it drafts 1 position per request, and its input is the tokens
the round accepted (eagle_worker.py ``forward_draft_extend_after_decode``: ``verified_id`` holds
every accepted token; E[L] per request on average, padded to steps + 1 per request where a CUDA
graph runs it), which the cost model should price as an extend of that length. Each later pass drafts topk tokens per request (eagle_worker.py ``draft_forward``; see
planner.trees.eagle for the sources).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from planner.trees.acceptance import AcceptanceModel
from planner.trees.eagle import check_eagle_shape, eagle_candidate_count, sglang_expected_lengths
from planner.trees.shapes import TreeInputError

__all__ = [
    "RoundCounts", "round_counts", "ShapeGrid", "SGLANG_GRID", "TreeShapeChoice", "shape_grid", "tokens_per_second",
    "best_tree_shape",
]

RoundCost = Callable[[int, int, int], float]  # (steps, topk, num_draft_tokens) -> seconds per round


@dataclass(frozen=True)
class RoundCounts:
    """Per request and round: tokens verified, draft passes and tokens each draft pass runs on."""

    verify_tokens: int  # num_draft_tokens, the root included, tokens
    draft_passes: int  # speculative_num_steps, passes
    draft_tokens_per_pass: tuple[int, ...]  # (1, topk, topk, ...), positions drafted per pass

    @property
    def drafted_tokens(self) -> int:
        """Positions the draft proposes per request and round: 1 + (steps - 1) topk. Unit: tokens."""
        return sum(self.draft_tokens_per_pass)


def round_counts(steps: int, topk: int, num_draft_tokens: int) -> RoundCounts:
    """The counts of one SGLang EAGLE round (checked as SGLang would take them)."""
    check_eagle_shape(steps, topk, num_draft_tokens)
    return RoundCounts(num_draft_tokens, steps, (1,) + (topk,) * (steps - 1))


@dataclass(frozen=True)
class ShapeGrid:
    """The (steps, topk, num_draft_tokens) searched: a search range, not SGLang's hard limits.

    SGLang's hard constraints are checked by check_eagle_shape (topk 1 means a chain; at most
    topk + (steps - 1) topk^2 + 1 draft tokens). The bounds here keep the search to shapes SGLang
    serves in practice: its auto-chosen default is (5, 4, 8) (server_args.py
    ``auto_choose_speculative_params``; (3, 1, 4) for DeepSeek in some releases), and its
    bit-packed tree-mask mode holds at most 32 tokens per request (build_eagle_tree.py:
    uint8/uint16/uint32 masks).
    """

    steps: tuple[int, ...] = tuple(range(1, 9))
    topks: tuple[int, ...] = (1, 2, 4, 8)
    max_draft_tokens: int = 32

    def __post_init__(self) -> None:
        if not self.steps or not self.topks or min(self.steps) < 1 or min(self.topks) < 1:
            raise TreeInputError("a shape grid needs steps and topk values, all >= 1")
        if self.max_draft_tokens < 2:
            raise TreeInputError(f"a shape grid needs max_draft_tokens >= 2 (got {self.max_draft_tokens})")


SGLANG_GRID = ShapeGrid()


@dataclass(frozen=True)
class TreeShapeChoice:
    """One (steps, topk, num_draft_tokens) with its E[L], round time and throughput."""

    steps: int
    topk: int
    num_draft_tokens: int
    mean_accepted_length: float  # E[L], tokens committed per request and round
    round_time_s: float  # seconds per round, from the cost callable
    tokens_per_s: float  # batch * E[L] / round time, tokens per second over the batch


def shape_grid(grid: ShapeGrid = SGLANG_GRID) -> list[tuple[int, int, int]]:
    """Every (steps, topk, num_draft_tokens) of the grid that SGLang accepts as given."""
    shapes = []
    for steps in grid.steps:
        for topk in grid.topks:
            if topk == 1:
                if steps + 1 <= grid.max_draft_tokens:
                    shapes.append((steps, 1, steps + 1))
                continue
            top = min(eagle_candidate_count(steps, topk) + 1, grid.max_draft_tokens)
            shapes.extend((steps, topk, n) for n in range(2, top + 1))
    return shapes


def tokens_per_second(batch: int, mean_accepted_length: float, round_time_s: float) -> float:
    """batch * E[L] / t_round: tokens the whole batch commits per second. Unit: tokens/s."""
    return batch * mean_accepted_length / round_time_s


def _better(new: TreeShapeChoice, old: TreeShapeChoice | None) -> bool:
    """More tokens/s wins; within float noise, fewer verified tokens, then fewer drafted tokens."""
    if old is None or new.tokens_per_s > old.tokens_per_s * (1 + 1e-12):
        return True
    if new.tokens_per_s < old.tokens_per_s * (1 - 1e-12):
        return False
    return (new.num_draft_tokens, new.steps * new.topk) < (old.num_draft_tokens, old.steps * old.topk)


def best_tree_shape(
    batch: int, cost_of_round: RoundCost, model: AcceptanceModel, grid: ShapeGrid = SGLANG_GRID
) -> TreeShapeChoice:
    """The grid shape with the most tokens/s for ``batch`` requests.

    ``cost_of_round(steps, topk, num_draft_tokens)`` returns the seconds one round takes at this
    batch (draft passes plus verify); it must be > 0. Ties (within float noise) go to fewer
    verified tokens, then to less drafting.
    """
    if batch < 1:
        raise TreeInputError(f"batch must be at least 1 (got {batch})")
    best: TreeShapeChoice | None = None
    lengths: dict[tuple[int, int], np.ndarray] = {}
    for steps, topk, n in shape_grid(grid):
        t = float(cost_of_round(steps, topk, n))
        if not t > 0:
            raise TreeInputError(f"the round cost must be > 0 seconds (got {t!r} for {steps}, {topk}, {n})")
        if (steps, topk) not in lengths:
            lengths[steps, topk] = sglang_expected_lengths(steps, topk, model)
        e = float(lengths[steps, topk][n - 1])
        choice = TreeShapeChoice(steps, topk, n, e, t, tokens_per_second(batch, e, t))
        if _better(choice, best):
            best = choice
    if best is None:
        raise TreeInputError("the shape grid holds no shape SGLang accepts")
    return best

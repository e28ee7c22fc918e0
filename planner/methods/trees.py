"""One SGLang EAGLE tree round priced by the cost model, and the best (steps, topk, draft tokens) per batch.

A round of (speculative_num_steps, speculative_eagle_topk, speculative_num_draft_tokens), per
request (planner.trees.costs.round_counts, with eagle_worker.py cited in planner.trees.eagle):
* the first draft pass, SGLang's draft extend after verify: it drafts 1 position per request. Its
  input is the round's accepted tokens (E[L] per request); it is priced here as a 1-token pass,
  as planner.search.price_rounds prices a chain's draft steps, because the extra E[L] - 1 rows
  ride on a pass whose weight reads dominate at the batches where trees pay, and pricing them
  would make the round cost depend on E[L] and so on the acceptance model;
* steps - 1 draft passes of topk tokens per request (each frontier node's children at once);
* one target verify pass over num_draft_tokens tokens per request (tree attention), and
* ``fixed_round_s``: the engine's own host time per round.
A chain (topk 1, num_draft_tokens = steps + 1) is then price_rounds' textbook round: k draft
passes and verify(k + 1).

The EAGLE-3 head fuses the target's low/mid/high features once per round;
planner.costmodel.proposer_profile spreads that over ``k`` draft passes, so the head profile of a
round of ``steps`` passes is the one built with k = steps (best_tree takes a callable for that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from planner.costmodel.operators import baseline_step_s, decode_cost, pass_cost
from planner.costmodel.profiles import DeviceProfile, ModelProfile
from planner.trees import SGLANG_GRID, AcceptanceModel, ShapeGrid, TreeShapeChoice, best_tree_shape
from planner.trees.shapes import TreeInputError

__all__ = ["TreeRound", "tree_round", "tree_round_s", "PricedTree", "best_tree"]

Array = NDArray[np.float64]
HeadFor = Callable[[int], ModelProfile]  # steps -> the head's profile for a round of that many passes


@dataclass(frozen=True)
class TreeRound:
    """One round's parts, seconds (arrays broadcast over batch, context and the shape)."""

    first_draft_s: Array  # the draft extend after verify: 1 position per request
    later_drafts_s: Array  # steps - 1 passes of topk positions per request, together
    verify_s: Array  # the target over num_draft_tokens tokens per request
    fixed_round_s: float  # the engine's host time per round

    @property
    def total_s(self) -> Array:
        """Seconds per round: the sum of its parts."""
        return self.first_draft_s + self.later_drafts_s + self.verify_s + self.fixed_round_s


def _check(steps: ArrayLike, topk: ArrayLike, num_draft_tokens: ArrayLike, fixed_round_s: float) -> None:
    if np.any(np.asarray(steps) < 1) or np.any(np.asarray(topk) < 1) or np.any(np.asarray(num_draft_tokens) < 2):
        raise TreeInputError("a tree round needs steps >= 1, topk >= 1 and num_draft_tokens >= 2")
    if not fixed_round_s >= 0:
        raise TreeInputError(f"the fixed round time must be >= 0 seconds (got {fixed_round_s!r})")


def tree_round(target: ModelProfile, head: ModelProfile, device: DeviceProfile, head_device: DeviceProfile,
               batch: ArrayLike, context: ArrayLike, steps: ArrayLike, topk: ArrayLike,
               num_draft_tokens: ArrayLike, fixed_round_s: float = 0.0) -> TreeRound:
    """The parts of one SGLang EAGLE round (seconds), broadcast over every array argument.

    ``context`` is the cached length per request (tokens); the shape is taken as given (see
    planner.trees.check_eagle_shape for what SGLang accepts).
    """
    _check(steps, topk, num_draft_tokens, fixed_round_s)
    first = pass_cost(head, head_device, batch, context, 1).total_s
    later = (np.asarray(steps, dtype=np.float64) - 1.0) * pass_cost(head, head_device, batch, context, topk).total_s
    verify = pass_cost(target, device, batch, context, num_draft_tokens).total_s
    return TreeRound(first, later, verify, float(fixed_round_s))


def tree_round_s(target: ModelProfile, head: ModelProfile, device: DeviceProfile, head_device: DeviceProfile,
                 batch: ArrayLike, context: ArrayLike, steps: ArrayLike, topk: ArrayLike,
                 num_draft_tokens: ArrayLike, fixed_round_s: float = 0.0) -> Array:
    """Seconds per SGLang EAGLE round: first draft pass (1 token) + (steps - 1) draft passes of topk
    tokens + verify of num_draft_tokens tokens + fixed_round_s, per request at ``batch`` requests."""
    return tree_round(target, head, device, head_device, batch, context, steps, topk, num_draft_tokens,
                      fixed_round_s).total_s


@dataclass(frozen=True)
class PricedTree:
    """The best shape for a batch with its round time, and its speedup over plain decode."""

    shape: TreeShapeChoice  # steps, topk, num_draft_tokens, E[L], round_time_s, tokens_per_s
    target_decode_s: float  # one plain decode step of the target at this batch as the engine runs it, seconds
    speedup: float  # E[L] x target_decode_s / round_time_s, dimensionless


def _round_table(target: ModelProfile, head: ModelProfile, device: DeviceProfile, head_device: DeviceProfile,
                 batch: int, context: int, topks: tuple[int, ...], max_tokens: int) -> tuple[Array, dict[int, float], float]:
    """verify_s per num_draft_tokens (index n), later-pass seconds per topk, first-pass seconds: three
    vectorised cost calls cover the whole grid."""
    verify = np.full(max_tokens + 1, np.nan)
    verify[2:] = pass_cost(target, device, batch, context, np.arange(2, max_tokens + 1)).total_s
    widths = np.array(sorted(set(topks) | {1}))
    draft = dict(zip(widths.tolist(), np.broadcast_to(pass_cost(head, head_device, batch, context, widths).total_s,
                                                      widths.shape).tolist()))
    return verify, draft, draft[1]


def best_tree(target: ModelProfile, head: ModelProfile | HeadFor, device: DeviceProfile, head_device: DeviceProfile,
              batch: int, context: int, model: AcceptanceModel, fixed_round_s: float = 0.0,
              grid: ShapeGrid = SGLANG_GRID) -> PricedTree:
    """The (steps, topk, num_draft_tokens) of ``grid`` with the most tokens/s at ``batch`` requests.

    ``head`` is the head's profile, or a callable steps -> profile (proposer_profile with k = steps,
    which spreads EAGLE-3's per-round fusion over the round's passes). E[L] of each shape is
    SGLang's tree under ``model`` (planner.trees.sglang_expected_lengths); the round is tree_round_s.
    speedup = E[L] t_target / t_round, t_target = one plain decode step at this batch and context.
    """
    if batch < 1 or context < 0:
        raise TreeInputError(f"batch must be >= 1 and context >= 0 (got {batch}, {context})")
    _check(1, 1, 2, fixed_round_s)
    def table(profile: ModelProfile) -> tuple[Array, dict[int, float], float]:
        return _round_table(target, profile, device, head_device, batch, context, grid.topks, grid.max_draft_tokens)

    steps_values = sorted(set(grid.steps))
    # A fixed head prices every steps value alike: one table serves them all.
    tables = {s: table(head(s)) for s in steps_values} if callable(head) else dict.fromkeys(steps_values, table(head))

    def cost(steps: int, topk: int, n: int) -> float:
        verify, draft, first = tables[steps]
        return first + (steps - 1) * draft[topk] + float(verify[n]) + fixed_round_s

    choice = best_tree_shape(batch, cost, model, grid)
    t_target = float(baseline_step_s(decode_cost(target, device, batch, context).total_s, device))
    return PricedTree(choice, t_target, choice.mean_accepted_length * t_target / choice.round_time_s)

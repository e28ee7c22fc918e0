"""Price speculative configurations in bulk: one broadcast evaluation, no per-configuration loop.

Callers stack model and device profiles (costmodel.stack_profiles) with candidates on
one axis and k on another; every quantity below broadcasts over all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from planner import speedup as sp
from planner.costmodel import DeviceProfile, ModelProfile, PassCost, baseline_step_s, decode_cost, verify_cost
from planner.draftloop import LoopSpec, loop_round
from planner.draftloop.schedules import K_CAP

__all__ = ["RoundPrices", "price_rounds", "decode_context", "verify_table", "VerifyRatio"]

# A measured verify curve (planner.calibration.verify_curve.verify_ratio with its curve bound): token
# counts n of a verify pass -> t(n) / t(decode), given the cost model's own r(n) for the same shapes
# (what it extrapolates with beyond the measured n). The plan passes it when a calibration applies.
VerifyRatio = Callable[[NDArray[np.float64], Callable[[NDArray[np.float64]], NDArray[np.float64]]], NDArray[np.float64]]


@dataclass(frozen=True)
class RoundPrices:
    """Per-configuration times (s), ratios and the resulting speedup and tokens/s."""

    t_target_s: NDArray[np.float64]
    t_draft_s: NDArray[np.float64]
    t_verify_s: NDArray[np.float64]
    c: NDArray[np.float64]
    r: NDArray[np.float64]
    mean_accepted_length: NDArray[np.float64]
    speedup: NDArray[np.float64]
    target_compute_bound: NDArray[np.bool_]
    verify_compute_bound: NDArray[np.bool_]
    draft_compute_bound: NDArray[np.bool_]
    passes: dict[str, PassCost] | None = field(default=None, compare=False, repr=False)  # by operator
    # The engine's draft loop (planner.draftloop): per round, for the loop the plan runs. Without a
    # loop (loop=None) these are the textbook fixed-k figures: k drafted, k passes, no fixed cost.
    drafted_per_round: NDArray[np.float64] | float = np.nan  # E[drafted tokens], tokens per round
    draft_passes_per_round: NDArray[np.float64] | float = np.nan  # E[draft forward passes] per round
    fixed_round_steps: NDArray[np.float64] | float = 0.0  # host time per round, in target decode steps
    acceptance_rate: NDArray[np.float64] | float = np.nan  # accepted / drafted the loop yields

    @property
    def target_tokens_per_s(self) -> NDArray[np.float64]:
        """Tokens per second of one sequence without speculation."""
        return 1.0 / self.t_target_s

    @property
    def spec_tokens_per_s(self) -> NDArray[np.float64]:
        """Tokens per second of one sequence with speculation."""
        return self.speedup / self.t_target_s


def decode_context(context: ArrayLike) -> NDArray[np.float64]:
    """Mean cached tokens while a sequence grows to ``context`` tokens (what decode reads on average)."""
    return np.asarray(context, dtype=np.float64) / 2


def _model_ratio(target: ModelProfile, device: DeviceProfile, batch: ArrayLike, context: ArrayLike,
                 t: NDArray[np.float64]) -> Callable[[NDArray[np.float64]], NDArray[np.float64]]:
    """The cost model's r(n) = t_verify(n tokens) / t_target, as a function of the token count n."""
    return lambda n: verify_cost(target, device, np.asarray(n) - 1, batch, context).total_s / t


def _ratio(target: ModelProfile, device: DeviceProfile, batch: ArrayLike, context: ArrayLike, t: NDArray[np.float64],
           n: ArrayLike, measured: VerifyRatio | None) -> NDArray[np.float64]:
    """r(n): the cost model's, or the measured curve's (broadcast to the model's shape) when one is given."""
    model = _model_ratio(target, device, batch, context, t)
    r = model(np.asarray(n, dtype=np.float64))
    return r if measured is None else np.broadcast_to(measured(np.asarray(n, dtype=np.float64), model), np.shape(r)) * 1.0


def verify_table(target: ModelProfile, device: DeviceProfile, batch: ArrayLike, context: ArrayLike, k_max: int,
                 t_target_s: ArrayLike, verify_ratio: VerifyRatio | None = None) -> NDArray[np.float64]:
    """r(m + 1 tokens) = t_verify / t_target for m = 0..k_max on a new last axis (m = 0: one token, r = 1).

    The profiles must be scalars or have a last axis of size 1 (as stack_profiles gives them): the
    token axis takes that place, and a new axis before it restores their shape. ``verify_ratio``: a
    measured curve in place of the cost model's r.
    """
    t = np.asarray(t_target_s, dtype=np.float64)
    v = _ratio(target, device, batch, context, t, np.arange(2, k_max + 2), verify_ratio)
    ones = np.ones(np.shape(v)[:-1] + (1,))
    table = np.concatenate([ones, v], axis=-1)
    return table[..., None, :] if table.ndim > 1 else table


def price_rounds(
    target: ModelProfile, draft: ModelProfile, device: DeviceProfile, draft_device: DeviceProfile,
    batch: ArrayLike, context: ArrayLike, k: ArrayLike, alpha: ArrayLike, mean_length: ArrayLike | None = None,
    loop: LoopSpec | None = None, verify_ratio: VerifyRatio | None = None,
) -> RoundPrices:
    """Times of target decode, draft decode and verify(k+1), then c, r, E[L] and speedup.

    ``context`` is the cached length during decode. Without ``loop`` each round drafts k tokens
    one by one (k draft passes) and verifies them with one target pass over k + 1 tokens. With the
    engine's ``loop`` (planner.draftloop.engine_loop) k is the most drafts per round (llama.cpp
    n-max) and the round's drafted tokens, draft passes, verify length and fixed host time follow
    the engine's rule; speedup = E[committed] / E[round cost] (renewal-reward).
    ``mean_length`` replaces the geometric E[L] when acceptance was measured per position.
    ``verify_ratio`` (a calibration's measured curve) sets r(k + 1), and t_verify = t_target x r;
    the verify pass's operator breakdown and bound stay the cost model's.
    """
    t = decode_cost(target, device, batch, context)
    d = decode_cost(draft, draft_device, batch, context)
    v = verify_cost(target, device, k, batch, context)
    # The unit of c, r and the speedup is the plain decode step as the engine runs it without
    # speculation (an overlap scheduler hides its host time); the round's passes keep theirs.
    base = baseline_step_s(t.total_s, device)
    # A proposer's own per-step host work (loops.yaml draft_pass_us) is part of every draft pass.
    t_draft = d.total_s + (loop.draft_pass_us * 1e-6 if loop is not None else 0.0)
    c = t_draft / base
    if verify_ratio is None:
        r, t_verify = v.total_s / base, v.total_s
    else:
        r = _ratio(target, device, batch, context, base, np.asarray(k) + 1, verify_ratio)
        t_verify = base * r
    common = dict(t_target_s=base, t_draft_s=t_draft, t_verify_s=t_verify, c=c, r=r,
                  target_compute_bound=t.compute_bound, verify_compute_bound=v.compute_bound,
                  draft_compute_bound=d.compute_bound, passes={"target": t, "draft": d, "verify": v})
    kk = np.asarray(k)
    if loop is None:
        length = sp.expected_accepted_length(alpha, k) if mean_length is None else np.asarray(mean_length, dtype=np.float64)
        # The sweep's path: nothing beyond the textbook round is computed (acceptance_rate stays NaN).
        return RoundPrices(**common, mean_accepted_length=length, speedup=length / (kk * c + r),
                           drafted_per_round=kk, draft_passes_per_round=kk)
    # A schedule moves k along a chain up to K_CAP: its table must reach every state.
    width = int(kk.max()) if loop.schedule == "fixed" else K_CAP
    # In baseline steps; its one-token entry stays 1, which only variable-length rules read, and no
    # engine that hides host time in decode runs one.
    table = verify_table(target, device, batch, context, width, base, verify_ratio)
    lr = loop_round(loop, alpha, k, c, table, base)
    length, speedup = lr.committed, lr.speedup
    if mean_length is not None:  # measured per-position acceptance sets the tokens per round
        length = np.asarray(mean_length, dtype=np.float64)
        speedup = length / lr.round_cost
    return RoundPrices(**common, mean_accepted_length=length, speedup=speedup, drafted_per_round=lr.drafted,
                       draft_passes_per_round=lr.draft_passes, fixed_round_steps=lr.fixed_steps,
                       acceptance_rate=lr.acceptance_rate)

"""Price speculative configurations in bulk: one broadcast evaluation, no per-configuration loop.

Callers stack model and device profiles (costmodel.stack_profiles) with candidates on
one axis and k on another; every quantity below broadcasts over all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from planner import speedup as sp
from planner.costmodel import DeviceProfile, ModelProfile, PassCost, decode_cost, verify_cost

__all__ = ["RoundPrices", "price_rounds", "decode_context"]


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


def price_rounds(
    target: ModelProfile, draft: ModelProfile, device: DeviceProfile, draft_device: DeviceProfile,
    batch: ArrayLike, context: ArrayLike, k: ArrayLike, alpha: ArrayLike, mean_length: ArrayLike | None = None,
) -> RoundPrices:
    """Times of target decode, draft decode and verify(k+1), then c, r, E[L] and speedup.

    ``context`` is the cached length during decode; each round drafts k tokens one
    by one (k draft passes) and verifies them with one target pass over k + 1 tokens.
    ``mean_length`` replaces the geometric E[L] when acceptance was measured per position.
    """
    t = decode_cost(target, device, batch, context)
    d = decode_cost(draft, draft_device, batch, context)
    v = verify_cost(target, device, k, batch, context)
    c = d.total_s / t.total_s
    r = v.total_s / t.total_s
    length = sp.expected_accepted_length(alpha, k) if mean_length is None else np.asarray(mean_length, dtype=np.float64)
    return RoundPrices(
        t_target_s=t.total_s, t_draft_s=d.total_s, t_verify_s=v.total_s, c=c, r=r,
        mean_accepted_length=length,
        speedup=length / (np.asarray(k) * c + r),
        target_compute_bound=t.compute_bound, verify_compute_bound=v.compute_bound,
        draft_compute_bound=d.compute_bound, passes={"target": t, "draft": d, "verify": v},
    )

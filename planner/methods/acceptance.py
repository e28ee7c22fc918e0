"""Which per-token acceptance (alpha) a method's plan uses: the user's measurement, else the method prior."""

from __future__ import annotations

from planner.acceptance import AlphaChoice, MeasuredRate, measured_alpha
from planner.catalog.schemas import ModelSpec
from planner.draftloop import LoopSpec
from planner.priors.methods import MethodPrior, method_prior

__all__ = ["method_alpha", "prior_of"]


def prior_of(method: str, target: ModelSpec, task: str) -> MethodPrior:
    """The published-figure band for ``method`` serving ``target`` on ``task`` (planner/priors/methods.yaml)."""
    return method_prior(method, task, target.catalog_id or target.id, target.family)


def method_alpha(method: str, target: ModelSpec, task: str, alpha: float | None = None,
                 rate: MeasuredRate | None = None, k: int | None = None, loop: LoopSpec | None = None) -> AlphaChoice:
    """--alpha, a measured rate or mean accepted length at k (chain inversion), else the method prior band."""
    user = measured_alpha(alpha, rate, k, loop)
    if user is not None:
        return user
    prior = prior_of(method, target, task)
    return AlphaChoice(prior.mid, prior.low, prior.high, "prior", prior.explanation)

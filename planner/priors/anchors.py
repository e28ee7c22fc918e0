"""The public measurements the prior is set from, each turned into an alpha or a bound on it.

priors.yaml keeps every anchor as printed (a paper's alpha, Spec-Bench's mean accepted tokens,
llama.cpp's accepted/drafted, a measured speedup) with the draft length it was measured at;
the conversions below say how each becomes a per-token alpha, so the table in the report and
the tests that keep the prior inside the data use one definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from planner import speedup as sp
from planner.errors import CatalogError
from planner.priors.conversions import alpha_from_mean_accepted_length
from planner.priors.model import RELATIONSHIPS, PriorTerms, prior_terms, priors_document

__all__ = ["Anchor", "AnchorAlpha", "anchors", "anchor_alpha", "alpha_from_mean_accepted", "alpha_floor_from_speedup",
           "anchor_table"]

Kind = Literal["alpha", "mean_accepted_tokens", "accepted_per_drafted", "speedup"]
Bound = Literal["point", "lower", "upper"]
_BOUND_OF: dict[str, Bound] = {"alpha": "point", "mean_accepted_tokens": "point", "accepted_per_drafted": "upper",
                               "speedup": "lower"}


@dataclass(frozen=True)
class Anchor:
    """One published figure for a named pair (sizes in billions of parameters)."""

    id: str
    source: str
    target: str
    draft: str
    target_b: float
    draft_b: float
    relationship: str
    task: str | None
    bits: float
    k: int | None
    kind: Kind
    value: float


@dataclass(frozen=True)
class AnchorAlpha:
    """An anchor's alpha (point) or bound on alpha, and the prior for the same pair."""

    anchor: Anchor
    alpha: float
    bound: Bound
    how: str
    prior: PriorTerms | None  # None: the anchor's task is not one specplan plans for


# One chain inversion for anchors, method rows and user figures: E[L](alpha, k) = tokens per target pass.
alpha_from_mean_accepted = alpha_from_mean_accepted_length


def alpha_floor_from_speedup(speedup: float, k: int | None) -> float:
    """Smallest alpha that can give a measured ``speedup`` (probability).

    speedup = E[L] / (k c + r) with c >= 0 and r >= 1, so E[L] >= speedup. With k unknown or
    adaptive the k -> infinity limit E[L] = 1 / (1 - alpha) gives 1 - 1 / speedup.
    """
    if speedup <= 1.0:
        return 0.0
    if k is None:
        return 1.0 - 1.0 / speedup
    return alpha_from_mean_accepted(min(speedup, k + 1.0), k)


def anchor_alpha(a: Anchor) -> AnchorAlpha:
    """The anchor's printed figure as alpha (or a bound), with the prior for the same pair."""
    if a.kind == "alpha":
        alpha, how = a.value, "alpha as printed"
    elif a.kind == "mean_accepted_tokens":
        alpha, how = alpha_from_mean_accepted(a.value, _k(a)), f"E[L] {a.value:g} at k={a.k} inverted"
    elif a.kind == "accepted_per_drafted":
        alpha = float(sp.alpha_from_acceptance_rate(a.value, _k(a)))
        how = f"accepted/drafted {a.value:g} inverted at k={a.k}; p-min drafts fewer, surer tokens: at most this"
    else:
        alpha = alpha_floor_from_speedup(a.value, a.k)
        how = f"speedup {a.value:g}x needs E[L] >= {a.value:g}" + (f" at k={a.k}" if a.k else " (k adaptive: 1 - 1/S)")
    prior = prior_terms(a.relationship, a.draft_b, a.target_b, a.task, a.bits) if a.task else None
    return AnchorAlpha(a, float(alpha), _BOUND_OF[a.kind], how, prior)


def _k(a: Anchor) -> int:
    if a.k is None:
        raise CatalogError(f"priors.yaml anchor {a.id}: {a.kind} needs the draft length k")
    return a.k


@lru_cache(maxsize=1)
def anchors() -> tuple[Anchor, ...]:
    """Every anchor of priors.yaml, checked (known source, relationship, task, kind)."""
    doc = priors_document()
    out = []
    for raw in doc["anchors"]:
        try:
            a = Anchor(**raw)
        except TypeError as exc:
            raise CatalogError(f"priors.yaml anchor {raw.get('id', '?')}: {exc}") from None
        if a.source not in doc["sources"] or a.relationship not in RELATIONSHIPS or a.kind not in _BOUND_OF:
            raise CatalogError(f"priors.yaml anchor {a.id}: unknown source, relationship or kind")
        if a.task is not None and a.task not in doc["parameters"]["task_shift"]:
            raise CatalogError(f"priors.yaml anchor {a.id}: unknown task {a.task!r}")
        out.append(a)
    return tuple(out)


def anchor_table() -> list[AnchorAlpha]:
    """Every anchor with its alpha and the prior's band for the same pair."""
    return [anchor_alpha(a) for a in anchors()]


def _row(x: AnchorAlpha) -> str:
    sign = {"point": "=", "lower": ">=", "upper": "<="}[x.bound]
    prior = "-" if x.prior is None else (f"{x.prior.mid:.3f} ({x.prior.low:.2f}-{x.prior.high:.2f}), "
                                         f"mid - anchor {x.prior.mid - x.alpha:+.3f}")
    return f"{x.anchor.id:18} {x.anchor.relationship:16} alpha {sign} {x.alpha:.3f}   prior {prior}"


if __name__ == "__main__":  # python -m planner.priors.anchors: the table of the report
    print("\n".join(_row(x) for x in anchor_table()))

"""The prior's formula: per-token alpha from relationship, draft and target sizes, task and draft bits.

Pure functions of plain numbers, so the catalogue path (``alpha_prior``) and the anchor table
(``planner.priors.anchors``) evaluate the same line. The figures are data: planner/priors/priors.yaml
says where each came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any

from planner.catalog.loading import safe_load
from planner.errors import CatalogError

__all__ = ["PriorParameters", "PriorTerms", "parameters", "prior_terms", "quantization_penalty_bits", "priors_document",
           "RELATIONSHIPS"]

RELATIONSHIPS: tuple[str, ...] = ("same-generation", "other-generation", "distilled", "cross-tokenizer")
_LABEL = "planner/priors/priors.yaml"


@lru_cache(maxsize=1)
def priors_document() -> dict[str, Any]:
    """planner/priors/priors.yaml as plain data (parameters, sources, anchors)."""
    doc = safe_load((files("planner") / "priors" / "priors.yaml").read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not {"parameters", "sources", "anchors"} <= set(doc):
        raise CatalogError(f"{_LABEL}: expected parameters, sources and anchors")
    return doc


@dataclass(frozen=True)
class PriorParameters:
    """The prior's figures (dimensionless alpha units unless named otherwise)."""

    base_mid: dict[str, float]
    draft_per_doubling: float
    draft_log2_clamp: tuple[float, float]
    target_per_doubling_tiny: float
    target_pull_tiny_draft_b: float
    target_pull_fades_at_draft_b: float
    target_reference_b: float
    target_log2_clamp: tuple[float, float]
    task_shift: dict[str, float]
    quant_penalty_per_bit_below_8: float
    band: tuple[float, float]
    alpha_range: tuple[float, float]


@lru_cache(maxsize=1)
def parameters() -> PriorParameters:
    """The parameters block of priors.yaml, checked once."""
    raw = dict(priors_document()["parameters"])
    try:
        for name in ("draft_log2_clamp", "target_log2_clamp", "band", "alpha_range"):
            raw[name] = tuple(float(x) for x in raw[name])
        params = PriorParameters(**raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogError(f"{_LABEL}: parameters: {exc}") from None
    if set(params.base_mid) != set(RELATIONSHIPS):
        raise CatalogError(f"{_LABEL}: base_mid must name exactly {', '.join(RELATIONSHIPS)}")
    return params


@dataclass(frozen=True)
class PriorTerms:
    """The mid alpha and each term that built it (dimensionless)."""

    base: float
    draft_size: float
    target_size: float
    task: float
    quantization: float  # <= 0
    mid: float
    low: float
    high: float


def _clamp(x: float, bounds: tuple[float, float]) -> float:
    return min(max(x, bounds[0]), bounds[1])


def quantization_penalty_bits(bits_per_weight: float) -> float:
    """Per-token alpha lost by a draft stored at ``bits_per_weight`` rather than 8+ bits (dimensionless, >= 0)."""
    return parameters().quant_penalty_per_bit_below_8 * max(0.0, 8.0 - bits_per_weight)


def _target_pull(p: PriorParameters, draft_b: float) -> float:
    """alpha per doubling of the target for this draft size: full for the tiniest drafts, 0 from 1B up."""
    span = math.log2(p.target_pull_fades_at_draft_b / p.target_pull_tiny_draft_b)
    weight = _clamp(math.log2(p.target_pull_fades_at_draft_b / draft_b) / span, (0.0, 1.0))
    return p.target_per_doubling_tiny * weight


def prior_terms(relationship: str, draft_b: float, target_b: float, task: str, bits_per_weight: float) -> PriorTerms:
    """Prior band for one pair: sizes in billions of parameters, the draft's bits per weight.

    mid = base[relationship] + draft slope x log2(draft / 1B) + target pull x log2(target / 7B)
    + task shift - quantization penalty, clipped to the alpha range; low / high = mid + band.
    """
    p = parameters()
    draft = p.draft_per_doubling * _clamp(math.log2(draft_b), p.draft_log2_clamp)
    target = _target_pull(p, draft_b) * _clamp(math.log2(target_b / p.target_reference_b), p.target_log2_clamp)
    quant = -quantization_penalty_bits(bits_per_weight)
    mid = _clamp(p.base_mid[relationship] + draft + target + p.task_shift[task] + quant, p.alpha_range)
    low, high = (_clamp(mid + b, p.alpha_range) for b in p.band)
    return PriorTerms(p.base_mid[relationship], draft, target, p.task_shift[task], quant, mid, low, high)

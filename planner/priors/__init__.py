"""Per-token acceptance (alpha) when the user has measured nothing: a prior built from public data.

The band comes from what a user knows before measuring: how the draft relates to the target
(same release, another release of the family, a third-party distillation, another tokenizer),
the draft's size and the target's size, the draft's quantization and the task. Its figures and
the public measurements they were set from (Leviathan et al., Spec-Bench, llama.cpp, vLLM on
MI300X, TensorRT-LLM, transformers' assisted and universal assisted generation) live in
planner/priors/priors.yaml, each with its source and how alpha was read from the printed figure
(planner/priors/anchors.py). Methods that are not a separate draft model (EAGLE heads, MTP layers,
n-gram and suffix lookup) take their band from published rows instead: ``method_prior``
(planner/priors/methods.py, rows in methods.yaml).

A draft with another tokenizer runs only as transformers' universal assisted generation (UAG,
transformers >= 4.46): ``cross_tokenizer(target, draft)`` says when, and the prior marks it, so
the cost side can add UAG's per-round re-tokenisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from planner.catalog.precisions import WeightFormat, weight_format
from planner.catalog.schemas import ModelSpec
from planner.catalog.tokenizers import cross_tokenizer
from planner.errors import SpecplanError
from planner.footprint import parameter_counts
from planner.priors.anchors import anchors
from planner.priors.conversions import alpha_from_mean_accepted_length
from planner.priors.methods import METHOD_TASKS, METHODS, MethodPrior, TreeBand, method_prior
from planner.priors.model import RELATIONSHIPS, parameters, prior_terms, quantization_penalty_bits
from planner.units import BILLION

__all__ = ["Relationship", "Task", "TASKS", "RELATIONSHIPS", "AlphaPrior", "relationship", "alpha_prior",
           "quantization_penalty", "precision_shift", "cross_tokenizer", "alpha_from_mean_accepted_length",
           "METHODS", "METHOD_TASKS", "MethodPrior", "TreeBand", "method_prior"]

Relationship = Literal["same-generation", "other-generation", "distilled", "cross-tokenizer"]
Task = Literal["chat", "code", "math", "summarize", "structured", "mixed"]
TASKS: tuple[str, ...] = tuple(parameters().task_shift)


@dataclass(frozen=True)
class AlphaPrior:
    """A per-token acceptance band and how it was built."""

    low: float
    mid: float
    high: float
    relationship: Relationship
    task: str
    explanation: str

    @property
    def cross_tokenizer(self) -> bool:
        """True for a draft with another tokenizer (runs only as universal assisted generation)."""
        return self.relationship == "cross-tokenizer"


def relationship(target: ModelSpec, draft: ModelSpec) -> Relationship:
    """How the draft relates to the target, from catalogue fields and the tokenizers' maps."""
    if cross_tokenizer(target, draft):
        return "cross-tokenizer"
    if draft.family != target.family or draft.kind == "draft" or "draft" in draft.id.lower():
        return "distilled"  # trained to draft (vicuna-68m on ShareGPT for Vicuna), or another family's tokenizer twin
    return "same-generation" if draft.generation == target.generation else "other-generation"


def quantization_penalty(draft_format: WeightFormat) -> float:
    """Per-token alpha lost by a draft stored in this format rather than 8+ bits (dimensionless, >= 0)."""
    return quantization_penalty_bits(draft_format.bits_per_weight)


def precision_shift(measured_precision: str | None, draft_format: WeightFormat) -> float:
    """Alpha change when a draft measured in ``measured_precision`` runs in ``draft_format`` (dimensionless).

    The same per-bit penalty the prior uses, taken relative to the measured format; an
    unrecorded or non-catalogue measured format (fp32, a server's own) counts as 16-bit.
    """
    try:
        measured = quantization_penalty(weight_format(measured_precision)) if measured_precision else 0.0
    except SpecplanError:
        measured = 0.0
    return measured - quantization_penalty(draft_format)


def effective_draft_bits(draft: ModelSpec, draft_format: WeightFormat) -> float:
    """Bits per weight the quantization penalty sees for ``draft`` in ``draft_format`` (bits).

    The penalty measures what a draft loses against its released weights. A checkpoint
    released in a narrow format (gpt-oss's MXFP4 experts, trained that way) loses nothing
    run as released, and gains nothing widened to fp8; only bits below the release's count.
    """
    if not draft.weight_format:
        return draft_format.bits_per_weight
    try:
        native = weight_format(draft.weight_format).bits_per_weight
    except SpecplanError:
        return draft_format.bits_per_weight
    deficit = max(0.0, 8.0 - draft_format.bits_per_weight) - max(0.0, 8.0 - native)
    return 8.0 - max(0.0, deficit)


_WHY = {
    "same-generation": "same release of the family",
    "other-generation": "another release of the family",
    "distilled": "trained for the target by a third party",
    "cross-tokenizer": "another tokenizer: transformers universal assisted generation",
}


def _anchor_ids(rel: str, shown: int = 3) -> str:
    """The public runs behind a relationship's figure, by their priors.yaml ids."""
    ids = [a.id for a in anchors() if a.relationship == rel]
    return ", ".join(ids[:shown]) + (f" +{len(ids) - shown} more" if len(ids) > shown else "")


def alpha_prior(target: ModelSpec, draft: ModelSpec, draft_format: WeightFormat, task: str = "chat") -> AlphaPrior:
    """Prior band for per-token alpha of this pair on this task (dimensionless, 0..1)."""
    if task not in TASKS:
        raise SpecplanError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    rel = relationship(target, draft)
    draft_b, target_b = parameter_counts(draft).total / BILLION, parameter_counts(target).total / BILLION
    t = prior_terms(rel, draft_b, target_b, task, effective_draft_bits(draft, draft_format))
    explanation = (
        f"{rel} draft ({_WHY[rel]}: {t.base:.2f}), draft {draft_b:.2g}B params ({t.draft_size:+.2f}), "
        f"target {target_b:.3g}B ({t.target_size:+.2f}), task {task} ({t.task:+.2f}), "
        f"draft {draft_format.name} ({t.quantization:+.2f}); {rel} anchors {_anchor_ids(rel)} "
        "(planner/priors/priors.yaml)"
    )
    return AlphaPrior(t.low, t.mid, t.high, rel, task, explanation)

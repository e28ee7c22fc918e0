"""Per-token acceptance (alpha) when the user has measured nothing: a documented prior.

The prior is a low/mid/high band built from four things a user knows before any
measurement: how the draft relates to the target, the draft's size, the draft's
quantization, and the task. Anchors (per-token alpha, greedy decoding):

* Spec-Bench SpS (A100, vicuna-68m drafting Vicuna 7B/13B/33B, k=5): mean accepted
  tokens 2.28/2.18/2.01 -> alpha 0.58/0.56/0.51 for a 68M distilled draft.
* llama.cpp #10466-style run (RTX 3060, Llama-3.2-1B Q8_0 drafting Llama-3.1-8B Q8_0,
  k=5): accepted/drafted 0.72 -> alpha 0.89 (p-min filtering raises it).
* vLLM docs example (draft model, chat): per-position acceptance 0.844, 0.599, 0.385,
  0.271 -> conditional 0.84, 0.71, 0.64, 0.70, about 0.7.
* Leviathan et al. 2023 (T5-small/base/large drafting T5-XXL): alpha 0.53-0.82 by task.
* DeepSeek-V3 report: the MTP draft's second token is accepted 85-90% of the time.
Task shifts follow Spec-Bench's per-task SpS speedups (code/structured text is the most
predictable, translation and open QA the least) and llama.cpp users' reports for code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from planner.catalog.precisions import WeightFormat, weight_format
from planner.catalog.schemas import ModelSpec
from planner.errors import SpecplanError
from planner.footprint import parameter_counts
from planner.units import BILLION

__all__ = ["Relationship", "Task", "TASKS", "AlphaPrior", "relationship", "alpha_prior", "quantization_penalty",
           "precision_shift"]

Relationship = Literal["same-generation", "other-generation", "distilled", "unrelated"]
Task = Literal["chat", "code", "math", "summarize", "structured"]
TASKS: tuple[str, ...] = ("chat", "code", "math", "summarize", "structured")

# mid alpha for a 1B-parameter 16-bit draft on chat, by relationship to the target
_BASE_MID: dict[str, float] = {
    "same-generation": 0.74,  # same pretraining data and tokenizer (Qwen2.5-0.5B -> Qwen2.5-72B)
    "other-generation": 0.70,  # same tokenizer, later/earlier release (Llama-3.2-1B -> Llama-3.1-70B)
    "distilled": 0.70,  # trained on the target's outputs (vicuna-68m, community DRAFT models)
    "unrelated": 0.35,  # tokenizers forced together: most tokens disagree
}
# alpha gained per doubling of draft size around 1B (68M -> 0.54, matching Spec-Bench SpS)
_PER_DOUBLING = 0.04
_SIZE_CLAMP = (-0.20, 0.14)
_TASK_SHIFT: dict[str, float] = {"chat": 0.0, "code": 0.06, "math": 0.03, "summarize": 0.02, "structured": 0.08}
# quantizing the draft loses a little agreement with the 16-bit target
_QUANT_PENALTY_PER_BIT_BELOW_8 = 0.012
_BAND = (-0.12, 0.08)  # low/high around mid: spread of the anchors above for similar pairs
_ALPHA_RANGE = (0.05, 0.97)


@dataclass(frozen=True)
class AlphaPrior:
    """A per-token acceptance band and how it was built."""

    low: float
    mid: float
    high: float
    relationship: Relationship
    task: str
    explanation: str


def relationship(target: ModelSpec, draft: ModelSpec) -> Relationship:
    """How the draft relates to the target, from catalogue fields."""
    if draft.tokenizer != target.tokenizer:
        return "unrelated"
    if draft.family != target.family or "draft" in draft.id.lower():
        return "distilled"
    return "same-generation" if draft.generation == target.generation else "other-generation"


def _clip(x: float) -> float:
    return min(max(x, _ALPHA_RANGE[0]), _ALPHA_RANGE[1])


def quantization_penalty(draft_format: WeightFormat) -> float:
    """Per-token alpha lost by a draft stored in this format rather than 8+ bits (dimensionless, >= 0)."""
    return _QUANT_PENALTY_PER_BIT_BELOW_8 * max(0.0, 8 - draft_format.bits_per_weight)


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


def alpha_prior(target: ModelSpec, draft: ModelSpec, draft_format: WeightFormat, task: str = "chat") -> AlphaPrior:
    """Prior band for per-token alpha of this pair on this task (dimensionless, 0..1)."""
    rel = relationship(target, draft)
    size_b = parameter_counts(draft).total / BILLION
    size_shift = min(max(_PER_DOUBLING * math.log2(size_b), _SIZE_CLAMP[0]), _SIZE_CLAMP[1])
    quant = quantization_penalty(draft_format)
    mid = _clip(_BASE_MID[rel] + size_shift + _TASK_SHIFT[task] - quant)
    explanation = (
        f"{rel} draft ({_BASE_MID[rel]:.2f}), {size_b:.2g}B params ({size_shift:+.2f}), "
        f"task {task} ({_TASK_SHIFT[task]:+.2f}), draft {draft_format.name} ({-quant:+.2f})"
    )
    return AlphaPrior(_clip(mid + _BAND[0]), mid, _clip(mid + _BAND[1]), rel, task, explanation)

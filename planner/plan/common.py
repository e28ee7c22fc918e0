"""What estimate and recommend share: the search grid, pass profiles of a request, the draft field rules."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from planner.catalog.precisions import WeightFormat
from planner.catalog.schemas import ModelSpec
from planner.costmodel import device_profile, model_profile
from planner.errors import SpecplanError
from planner.footprint import parameter_counts
from planner.memory import FitRequest, draft_tp_degree
from planner.priors import TASKS
from planner.units import BILLION

__all__ = ["K_SEARCH", "UAG_K", "profiles", "bound", "check_task", "draft_rule_warnings"]

K_SEARCH = np.arange(1, 17)  # k from 1 to 16
_SMALL_DRAFT_PARAMS = 0.5 * BILLION
_WRONG_DRAFT_ALPHA = 0.65
UAG_K = 5  # k the re-tokenisation cost of a cross-tokenizer round is priced at when none is given


def profiles(req: FitRequest, draft: ModelSpec | None, draft_fmt: WeightFormat | None, gpus: int,  # type: ignore[no-untyped-def]
             server_version: str | None = None):
    """Target/draft profiles and devices for a g-GPU group under the request's engine.

    ``server_version`` picks the engine's kernel release line (engines.yaml ``below``); None: current.
    """
    kernels = req.engine.kernel_line_for_version(server_version, req.gpu.memory_class)
    tensor = req.engine.parallelism == "tensor"
    dtp = draft_tp_degree(replace(req, gpus=gpus))
    tp = model_profile(req.target, req.precision, req.kv, gpus if tensor else 1, req.gpu)
    device = device_profile(req.gpu, req.engine, gpus, kernels=kernels)
    if draft is None:
        return tp, None, device, device
    dp = model_profile(draft, draft_fmt or req.precision, req.kv, dtp if tensor else 1, req.gpu)
    return tp, dp, device, device_profile(req.gpu, req.engine, dtp if tensor else gpus, role="draft", kernels=kernels)


def bound(compute_bound: Any) -> str:
    """What sets a pass's pace, in words."""
    return "compute" if bool(np.asarray(compute_bound)) else "memory"


def check_task(task: str) -> None:
    if task not in TASKS:
        raise SpecplanError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")


def draft_rule_warnings(draft: ModelSpec, alpha: float, cross: bool = False) -> list[str]:
    """The seeds' field rules for a draft: tiny drafts, and alpha too low to be the right draft.

    A draft with another tokenizer (universal assisted generation) is expected to agree less
    often, so the low-alpha rule does not apply to it.
    """
    out = []
    if parameter_counts(draft).total < _SMALL_DRAFT_PARAMS:
        out.append(f"draft {draft.id} has under 0.5B parameters: fixed per-step overheads, not its size, set its cost c")
    if alpha < _WRONG_DRAFT_ALPHA and not cross:
        out.append(f"per-token alpha {alpha:.2f} for {draft.id} is below {_WRONG_DRAFT_ALPHA}: "
                   "probably the wrong draft for this target")
    return out



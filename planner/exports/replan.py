"""``export --from-plan FILE`` with planning flags: the plan's settings, changed by the flags, re-planned.

A saved plan is a finished calculation; a flag such as ``--k`` or ``--context`` given
with it would be silently wrong if ignored and wrong in another way if patched into the
numbers (speedup and memory depend on it). So the plan's settings (target, GPU, formats,
batch, context, draft, its precision and k) are taken as planning inputs, the flags given
replace theirs, and the pair is planned again, as ``export --target ... --draft ...``
would. The best k depends on all of these, so the planner chooses k again unless ``--k``
is given.
"""

from __future__ import annotations

from typing import Any

from planner.errors import SpecplanError
from planner.exports.plan_file import parse_plan
from planner.exports.text import check_text

__all__ = ["PLANNING_FLAGS", "replan_settings", "flag_names", "plan_for_export"]

# export's planning options (click parameter names) and how they are spelled on the command line
PLANNING_FLAGS = {
    "target": "--target", "gpu": "--gpu", "gpus": "--gpus", "precision": "--precision",
    "kv_precision": "--kv-precision", "batch": "--batch", "context": "--context", "engine": "--engine",
    "memory_gib": "--memory-gib", "draft": "--draft", "draft_precision": "--draft-precision",
    "allow_tokenizer_mismatch": "--allow-tokenizer-mismatch", "k": "--k", "task": "--task",
    "method": "--method", "head": "--head",
}


def flag_names(given: dict[str, Any]) -> str:
    """The given planning flags as typed, for messages: ``--k 4 --context 8192``."""
    parts = []
    for key, value in given.items():
        flag = PLANNING_FLAGS[key]
        parts.append(flag if value is True else f"{flag} {value}")
    return " ".join(parts)


def replan_settings(data: Any, given: dict[str, Any]) -> tuple[int | None, str, dict[str, Any]]:
    """(k, task, planning flags) for re-planning ``data`` (a plan's JSON) with the ``given`` flags.

    ``given`` holds only the flags the user typed (click parameter names -> values).
    """
    plan = parse_plan(data, need_fit=False)  # every field checked; a plan that did not fit may be re-planned
    flags: dict[str, Any] = {
        "target": plan.target, "gpu": plan.gpu, "gpus": plan.tensor_parallel, "precision": plan.precision,
        "kv_precision": plan.kv_precision, "batch": plan.batch, "context": plan.context, "engine": plan.engine,
        "draft": plan.draft, "draft_precision": plan.draft_precision if plan.draft else None,
        "memory_gib": None, "allow_tokenizer_mismatch": False,
        "method": plan.method if plan.settings is not None else None,
        "head": plan.settings.head if plan.settings is not None and plan.method != "mtp" else None,
    }
    if "draft" in given and "draft_precision" not in given:
        flags["draft_precision"] = None  # another draft: its own default format, not the old draft's
    if "draft" in given and "method" not in given:
        flags.update(method=None, head=None)  # a draft named: a draft-model plan
    if given.get("method") not in (None, "draft"):
        flags.update(draft=None, draft_precision=None)  # a head / MTP / lookup runs no draft model
    if "method" in given and "head" not in given and given["method"] != flags["method"]:
        flags["head"] = None  # the plan's head belongs to the plan's method
    task = check_text(data.get("task") or "chat", "plan: task") if isinstance(data, dict) else "chat"
    if plan.p_min is not None and "engine" not in given:
        flags["p_min"] = plan.p_min  # the plan's draft loop threshold (llama.cpp p-min) carries over
    for key, value in given.items():
        if key == "task":
            task = value
        elif key != "k":
            flags[key] = value
    return given.get("k"), task, flags  # k None: the planner picks the best k for the new settings


_SERVER_ENGINE = {"vllm": "vllm", "sglang": "sglang", "llamacpp": "llamacpp", "trtllm": "trtllm", "hf": "hf"}


def plan_for_export(server: str, k: int | None, task: str, flags: dict[str, Any]) -> dict[str, Any]:
    """Plan from flags: estimate when a draft is named, else the best fitting recommendation."""
    from planner.outputs.plan_view import estimate_to_dict, recommendation_to_dict
    from planner.plan import EstimateInputs, RecommendInputs
    from planner.plan import estimate as run_estimate
    from planner.plan import recommend as run_recommend
    from planner.requests import FitInputs

    if not flags.get("target") or not flags.get("gpu"):
        raise SpecplanError("give --from-plan FILE, or --target and --gpu to plan now")
    flags = {**flags, "engine": flags.get("engine") or _SERVER_ENGINE.get(server, "auto")}
    p_min = flags.pop("p_min", None)
    method = flags.get("method")
    if flags.get("draft") or method not in (None, "draft"):  # one proposer named: plan it
        fit = FitInputs(**flags, **({"k": k} if k is not None else {}))
        return estimate_to_dict(run_estimate(EstimateInputs(fit, k_given=k is not None, task=task, p_min=p_min)))
    plan_flags = {key: v for key, v in flags.items()
                  if key not in ("draft", "draft_precision", "allow_tokenizer_mismatch", "method", "head")}
    # no proposer named: the best that fits, among every method the target runs (recommend's default)
    return recommendation_to_dict(run_recommend(RecommendInputs(FitInputs(**plan_flags), task=task, method=method)),
                                  task, "latency")

"""recommend's rows for proposers that are not draft models: each available head, MTP module and lookup.

Which methods a target can run comes from the engine (engines.yaml ``methods``) and the head
catalogue (planner.proposers.available_methods); each is priced over k and the alpha band by
planner.methods, one row per method and GPU count, beside the draft-model rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from planner.acceptance import AlphaChoice
from planner.calibration.apply import calibrated_device
from planner.draftloop import engine_loop
from planner.errors import SpecplanError
from planner.memory import FitReport, FitRequest, fit_report
from planner.methods.acceptance import method_alpha
from planner.methods.rounds import method_loop, method_profiles, price_method_rounds
from planner.methods.tree_plan import best_tree_plan
from planner.plan.common import K_SEARCH, bound
from planner.proposers.proposer import PROPOSER_METHODS, available_methods, resolve_proposer
from planner.catalog.lookup import ResolvedModel
from planner.search import decode_context
from planner.verdicts import pass_verdict

__all__ = ["MethodRow", "methods_to_rank", "method_rows"]


@dataclass(frozen=True)
class MethodRow:
    """One priced proposer row: what recommend turns into a Candidate."""

    method: str
    head: str | None
    k: int
    gpus: int
    speedup: float
    speedup_low: float
    speedup_high: float
    c: float
    r: float
    alpha: float
    alpha_source: str
    report: FitReport
    t_target_s: float
    verdict: str
    verify_bound: str
    settings: dict[str, Any]


def methods_to_rank(asked: str | None, target: ResolvedModel, engine_methods: tuple[str, ...]) -> tuple[str, ...]:
    """The methods recommend ranks: one asked for, every available one ("all"), or by default all
    when the target has heads or MTP layers catalogued, else draft models alone (as before methods)."""
    found = tuple(available_methods(target, engine_methods))
    if asked is None:
        has_model_proposer = any(m in found for m in ("eagle", "eagle3", "mtp"))
        return (("draft",) if "draft" in engine_methods else ()) + (found if has_model_proposer else ())
    asked = asked.strip().lower()
    if asked == "all":
        return (("draft",) if "draft" in engine_methods else ()) + found
    return (asked,)


MeasuredFor = Callable[[str, "str | None"], "AlphaChoice | None"]  # (method, head) -> a calibration's acceptance


def method_rows(base: FitRequest, target: ResolvedModel, methods: tuple[str, ...], groups: list[int], *, task: str,
                alpha: float | None, server_version: str | None, timing: Any = None,
                measured_for: MeasuredFor | None = None) -> list[MethodRow]:
    """Price every proposer method of ``methods`` on every GPU count of ``groups`` (best k each).

    ``measured_for`` gives a calibration's acceptance for a method and head (None where the file
    measured another); it replaces the prior, as in estimate. A method asked for by name that the
    target cannot run raises its one-line refusal; under "all" only available methods are asked for.
    """
    out = []
    ctx = decode_context(base.context)
    for method in methods:
        if method not in PROPOSER_METHODS:
            continue
        proposer = resolve_proposer(method, target, None, base.engine.label, base.engine.methods)
        loop = method_loop(engine_loop(base.engine.name, server_version), method, float(ctx), 3)
        measured = measured_for(method, proposer.name) if measured_for is not None and alpha is None else None
        choice = measured or method_alpha(method, base.target, task, alpha)
        band = np.array([choice.low, choice.mid, choice.high])[:, None]
        for g in groups:
            req = replace(base, gpus=g, proposer=proposer, draft=None, draft_precision=None)
            profiles = method_profiles(req, g, server_version, K_SEARCH[None, :])
            if timing is not None:
                profiles = replace(profiles, device=calibrated_device(profiles.device, timing))
            p = price_method_rounds(profiles, req.batch, ctx, K_SEARCH[None, :], band, loop)
            j = int(np.argmax(p.speedup[1]))
            k = int(K_SEARCH[j])
            at = lambda x: np.broadcast_to(x, np.shape(p.speedup))[1, j]  # noqa: E731 - fields broadcast to (band, k)
            s, c, r = float(p.speedup[1, j]), float(at(p.c)), float(at(p.r))
            low, high, slots = float(p.speedup[0, j]), float(p.speedup[2, j]), k
            vb = bound(at(p.verify_compute_bound))
            settings: dict[str, Any] = {"method": method, "head": proposer.name, "k": k}
            tree = best_tree_plan(req, profiles, server_version, choice, loop, float(ctx))
            if tree is not None and tree.speedup > s:  # the engine's best tree beats every chain at this batch
                s, (low, high) = tree.speedup, tree.band
                c, r, vb = float(tree.prices.c), float(tree.prices.r), bound(tree.prices.verify_compute_bound)
                k, slots = tree.shape[0], tree.shape[2] - 1
                settings = {"method": method, "head": proposer.name, "k": k, "num_steps": tree.shape[0],
                            "topk": tree.shape[1], "num_draft_tokens": tree.shape[2]}
            report = fit_report(replace(req, k=slots))
            out.append(MethodRow(method, proposer.name, k, g, s, low, high, c, r, choice.mid, choice.source, report,
                                 float(at(p.t_target_s)),
                                 pass_verdict(report.fits, s, c, r, choice.mid, req.batch, verify_bound=vb), vb,
                                 settings))
    return out


def refuse_unknown(asked: str | None) -> None:
    """--method for recommend: all, or one method name."""
    if asked is not None and asked.strip().lower() not in ("all", "draft", *PROPOSER_METHODS):
        raise SpecplanError(f"unknown --method {asked!r}; choose all, draft, {', '.join(PROPOSER_METHODS)}")

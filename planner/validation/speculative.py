"""Price speculative rows exactly as `specplan estimate` does, with and without the run's acceptance.

Every row becomes a planner.plan.EstimateInputs (the flags of `specplan estimate`) and goes
through planner.plan.estimate, so whatever the cost model, the engines' draft loops and the
priors do is what validation measures. Two prices per row where the row allows:

* prior-only: no acceptance passed, the estimate's prior alpha;
* measured acceptance: the run's figure passed the way a user would pass it
  (``measured_acceptance_flags``, the one place that converts).

Beside each, a pure roofline: c = draft bytes / target bytes of one decode pass, r = 1, the
same alpha and k.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from planner import speedup as sp
from planner.costmodel import model_profile, roofline_decode_s
from planner.costmodel.proposer_profile import proposer_profile
from planner.errors import SpecplanError
from planner.methods.acceptance import prior_of
from planner.plan import Estimate, EstimateInputs, estimate
from planner.requests import FitInputs
from planner.search import decode_context
from planner.validation.cases import MeasuredAcceptance, SpecCase

__all__ = ["Priced", "SpecCheck", "check_case", "measured_acceptance_flags", "relative_error"]

_FIT_FIELDS = {f.name for f in fields(FitInputs)}
_ESTIMATE_FIELDS = {f.name for f in fields(EstimateInputs)} - {"fit", "k_given"}
# SWITCH POINT: the EstimateInputs fields a llama.cpp run's counts go to (issue 9 point 3,
# --drafted / --accepted / --rounds), keyed by MeasuredAcceptance field. While EstimateInputs
# lacks the first two, the counts become --acceptance-rate accepted / drafted, as before; rename
# the values here if the draft-loop inputs are spelled differently.
_COUNT_INPUTS = {"drafted": "drafted", "accepted": "accepted", "rounds": "rounds"}


def relative_error(predicted: float | None, measured: float | None) -> float | None:
    """(predicted - measured) / measured, or None when either is missing."""
    if predicted is None or measured is None:
        return None
    return (predicted - measured) / measured


@dataclass(frozen=True)
class Priced:
    """One estimate of a row: the alpha and k it used, c, r, speedup, and the pure roofline's."""

    k: int
    alpha: float
    alpha_source: str
    c: float
    r: float
    speedup: float
    roofline_c: float
    roofline_speedup: float  # c = bytes ratio, r = 1, same alpha and k
    fits: bool
    target_tokens_per_s: float  # the target alone, one sequence (1 / decode step)


@dataclass(frozen=True)
class SpecCheck:
    """A priced speculative row: prior-only, with the measured acceptance, and what was measured."""

    case: SpecCase
    engine: str
    what: str
    prior: Priced
    measured: Priced | None = None
    acceptance_passed: str = ""  # the flags the measured acceptance went in as
    note: str = ""
    prior_basis: str = "chain"  # a method prior's basis: chain / tree-model points, or "tree-bound" (upper bounds)

    @property
    def row(self) -> str:
        return self.case.row

    @property
    def method(self) -> str:
        """draft, or the head / MTP / lookup method the row priced."""
        return self.case.method

    @property
    def batched(self) -> bool:
        """More than one sequence decoded together: issue 13's regime (serving under load), not one stream."""
        return int(self.case.flags.get("batch") or 1) > 1

    @property
    def compared_speedup(self) -> bool:
        """A measured speedup that medians count (not an upper bound, not a qualitative outcome)."""
        return self.case.measured_speedup is not None and self.case.speedup_kind == "measured"

    @property
    def prior_error(self) -> float | None:
        """Relative error of the prior-only speedup."""
        return relative_error(self.prior.speedup, self.case.measured_speedup)

    @property
    def measured_error(self) -> float | None:
        """Relative error of the speedup with the measured acceptance passed in."""
        return relative_error(self.measured.speedup if self.measured else None, self.case.measured_speedup)

    @property
    def r_error(self) -> float | None:
        """Relative error of the verify-cost ratio r (rows that measured it)."""
        return relative_error(self.prior.r, self.case.measured_r)

    @property
    def roofline_prior_error(self) -> float | None:
        return relative_error(self.prior.roofline_speedup, self.case.measured_speedup)

    @property
    def roofline_measured_error(self) -> float | None:
        return relative_error(self.measured.roofline_speedup if self.measured else None, self.case.measured_speedup)

    @property
    def roofline_r_error(self) -> float | None:
        return relative_error(1.0 if self.case.measured_r is not None else None, self.case.measured_r)


def measured_acceptance_flags(acc: MeasuredAcceptance, k: int | None) -> tuple[dict[str, Any], str]:
    """The estimate inputs a run's measured acceptance goes in as, and how (for the table).

    SWITCH POINT for llama.cpp counts: when EstimateInputs has the fields _COUNT_INPUTS names
    for drafted and accepted (the draft-loop work adds them), the counts are passed as they are
    (rounds too when known); until then they are converted as before, accepted / drafted as
    --acceptance-rate at the run's k.
    """
    if acc.drafted is not None and acc.accepted is not None:
        if {_COUNT_INPUTS["drafted"], _COUNT_INPUTS["accepted"]} <= _ESTIMATE_FIELDS:
            given = {"drafted": acc.drafted, "accepted": acc.accepted, "rounds": acc.rounds}
            counts = {_COUNT_INPUTS[key]: value for key, value in given.items()
                      if value is not None and _COUNT_INPUTS[key] in _ESTIMATE_FIELDS}
            return counts, ", ".join(f"--{key.replace('_', '-')} {value}" for key, value in counts.items())
        if acc.drafted <= 0:
            raise SpecplanError("no drafted tokens counted")
        rate = acc.accepted / acc.drafted
        return {"acceptance_rate": rate}, f"--acceptance-rate {rate:.4f} (= {acc.accepted}/{acc.drafted})"
    if acc.alpha is not None:
        return {"alpha": acc.alpha}, f"--alpha {acc.alpha:g}"
    if acc.acceptance_rate is not None:
        return {"acceptance_rate": acc.acceptance_rate}, f"--acceptance-rate {acc.acceptance_rate:g}"
    if k is None:
        raise SpecplanError("a mean accepted length needs the k it was measured at")
    if "mean_accepted_length" in _ESTIMATE_FIELDS:  # converted through the engine's draft loop
        return ({"mean_accepted_length": acc.mean_accepted_length},
                f"--mean-accepted-length {acc.mean_accepted_length:g}")
    # E[L] = 1 + k * accepted/proposed: the same quantity servers print, converted by estimate.
    rate = (float(acc.mean_accepted_length or 0.0) - 1.0) / k
    return {"acceptance_rate": rate}, f"--acceptance-rate {rate:.4f} (= (E[L] {acc.mean_accepted_length:g} - 1) / k)"


def _inputs(flags: dict[str, Any], acceptance: dict[str, Any]) -> EstimateInputs:
    """EstimateInputs from a row's flags, as the estimate command builds them."""
    unknown = set(flags) - _FIT_FIELDS - _ESTIMATE_FIELDS
    if unknown:
        raise SpecplanError(f"args {', '.join(sorted(unknown))}: not an input of specplan estimate")
    fit = FitInputs(**{key: value for key, value in flags.items() if key in _FIT_FIELDS})
    rest = {key: value for key, value in flags.items() if key in _ESTIMATE_FIELDS and key not in _FIT_FIELDS}
    return EstimateInputs(fit, k_given="k" in flags, **{**rest, **acceptance})


def _roofline_draft_s(result: Estimate, ctx: float) -> float:
    """Pure-roofline time of one proposal step, s: the draft's or head's bytes over bandwidth (a lookup: 0)."""
    req = result.fit.request
    if req.proposer is None:
        assert req.draft is not None
        return roofline_decode_s(model_profile(req.draft, req.draft_precision or req.precision, req.kv), req.gpu, ctx)
    head = proposer_profile(req.proposer, req.target, req.precision, req.kv, 1, req.gpu, result.k or 1)
    return 0.0 if head is None else float(roofline_decode_s(head, req.gpu, ctx))


def _priced(result: Estimate) -> Priced:
    req = result.fit.request
    assert result.k is not None and result.alpha is not None
    ctx = float(decode_context(req.context))
    # Pure roofline: a decode pass of one sequence costs its bytes (weights + KV) over the same
    # bandwidth, nothing else; verification is free (r = 1).
    target_s = roofline_decode_s(model_profile(req.target, req.precision, req.kv), req.gpu, ctx)
    c_roof = float(_roofline_draft_s(result, ctx) / target_s)
    p = result.prices
    return Priced(k=result.k, alpha=result.alpha.mid, alpha_source=result.alpha.source, c=float(p.c), r=float(p.r),
                  speedup=float(p.speedup), roofline_c=c_roof,
                  roofline_speedup=float(sp.speedup(result.alpha.mid, result.k, c_roof, 1.0)), fits=result.fit.fits,
                  target_tokens_per_s=float(p.target_tokens_per_s))


def _describe(result: Estimate) -> str:
    req = result.fit.request
    fmt = req.precision.name + (f"/{req.draft_precision.name}" if req.draft_precision else "")
    if req.proposer is not None:
        proposer = f"{req.proposer.method} ({req.proposer.name or 'host lookup'})"
    else:
        assert req.draft is not None
        proposer = req.draft.id
    return (f"{req.target.id} + {proposer} {fmt} on {req.gpus}x{req.gpu.id} {req.engine.name}, "
            f"batch {req.batch}, context {req.context}")


def check_case(case: SpecCase) -> SpecCheck:
    """Price a row prior-only and, when it measured acceptance, with that acceptance passed in."""
    flags = case.flags
    if "draft" not in flags and case.method == "draft":
        raise SpecplanError("no draft model in the row's estimate flags")
    result = estimate(_inputs(flags, {}))
    req = result.fit.request
    if req.draft is None and req.proposer is None:
        raise SpecplanError("estimate priced no draft")
    prior = _priced(result)
    basis = prior_of(case.method, req.target, flags.get("task", "chat")).basis if req.proposer is not None else "chain"
    notes = [case.note] if case.note else []
    if not result.fit.fits:
        notes.append("does not fit in memory as mapped (priced anyway)")
    measured, passed = None, ""
    if case.acceptance is not None:
        try:
            # On a tree the accept length is inverted through the tree itself (planner.plan.given_tree),
            # so it needs no k; its depth stands in for the check that one was given.
            tree_depth = flags.get("num_steps") or (1 if "tree" in flags else None)
            extra, passed = measured_acceptance_flags(case.acceptance, flags.get("k") or tree_depth)
            measured = _priced(estimate(_inputs(flags, extra)))
        except SpecplanError as exc:
            notes.append(f"measured acceptance not priced: {exc}")
    return SpecCheck(case, req.engine.name, _describe(result), prior, measured, passed, "; ".join(notes), basis)

"""Present estimates and recommendations: JSON-ready dicts and tables."""

from __future__ import annotations

from typing import Any

import numpy as np

from planner.costmodel.operators import BOUNDED_OPERATORS
from planner.outputs.fit_view import fit_to_dict
from rich.text import Text

from planner.outputs.loads_view import print_load_comparison
from planner.outputs.cautions import TIGHT_HEADROOM_GIB, batch_caution, draft_checkpoint_hint, headroom_caution
from planner.outputs.render import Column, console, print_line, print_table, print_warnings, unique
from planner.plan import Estimate, Recommendation, candidate_to_dict
from planner.plan.common import bound
from planner.calibration.schema import now_iso
from planner.units import MILLI

__all__ = ["estimate_to_dict", "print_estimate", "recommendation_to_dict", "print_recommendation"]


def _ms(seconds: Any) -> float:
    return round(float(seconds) / MILLI, 4)


def _operator(prices: Any, role: str) -> dict[str, Any] | None:
    """The operator that takes most of one pass, its regime and every operator's time (ms)."""
    passes = getattr(prices, "passes", None)
    if not passes or role not in passes:
        return None
    cost = passes[role]
    name = str(np.asarray(cost.bound_by).reshape(-1)[0])
    fixed = name not in BOUNDED_OPERATORS
    regime = "fixed" if fixed else ("compute" if bool(np.asarray(cost.bound_by_compute).reshape(-1)[0]) else "memory")
    return {"operator": name, "regime": regime,
            "operators_ms": {k: _ms(np.asarray(v).reshape(-1)[0]) for k, v in cost.operators.items()}}


def estimate_to_dict(e: Estimate) -> dict[str, Any]:
    """The estimate as JSON-ready data (times in ms, rates in tokens/s per sequence)."""
    p, req = e.prices, e.fit.request
    has_draft = e.alpha is not None
    return {
        "target": req.target.id, "draft": req.draft.id if req.draft else None,
        "method": e.method, "head": req.proposer.name if req.proposer else None, "settings": e.settings,
        "target_catalog_id": req.target.catalog_id, "draft_catalog_id": req.draft.catalog_id if req.draft else None,
        "gpu": req.gpu.id, "gpus": req.gpus,
        "engine": req.engine.name, "precision": req.precision.name,
        "draft_precision": (req.draft_precision or req.precision).name if req.draft else None,
        "kv_precision": req.kv.name, "batch": req.batch, "context": req.context, "created_at": now_iso(),
        "t_target_ms": _ms(p.t_target_s),
        "decode_hidden_host_ms": _hidden_host_ms(p),
        "t_draft_ms": _ms(p.t_draft_s) if has_draft else None,
        "t_verify_ms": _ms(p.t_verify_s) if has_draft else None,
        "target_tokens_per_s": round(float(p.target_tokens_per_s), 3),
        "c": round(float(p.c), 5) if has_draft else None,
        "k_times_c": round(float(p.c) * e.k, 5) if has_draft and e.k else None,
        "r": round(float(p.r), 5) if has_draft else None,
        "k": e.k,
        "alpha": round(e.alpha.mid, 4) if e.alpha else None,
        "alpha_low": round(e.alpha.low, 4) if e.alpha else None,
        "alpha_high": round(e.alpha.high, 4) if e.alpha else None,
        "alpha_source": e.alpha.source if e.alpha else None,
        "alpha_detail": e.alpha.detail if e.alpha else None,
        "mean_accepted_length": round(float(p.mean_accepted_length), 4) if has_draft else None,
        **(_loop_fields(e) if has_draft else {}),
        "speedup": round(float(p.speedup), 4) if has_draft else 1.0,
        "speedup_low": round(e.speedup_low, 4),
        "speedup_high": round(e.speedup_high, 4),
        "spec_tokens_per_s": round(float(p.spec_tokens_per_s), 3) if has_draft else None,
        "throughput_tokens_per_s": round(float(p.spec_tokens_per_s) * req.batch, 3),
        "best_k": e.best_k,
        "bound": {"target": bound(p.target_compute_bound),
                  "draft": bound(p.draft_compute_bound) if has_draft else None,
                  "verify": bound(p.verify_compute_bound) if has_draft else None,
                  "operator": {"target": _operator(p, "target"),
                               "draft": _operator(p, "draft") if has_draft else None,
                               "verify": _operator(p, "verify") if has_draft else None}},
        "verdict": e.verdict,
        "warnings": unique(e.warnings),
        "cautions": _cautions(req.draft.id if req.draft else None,
                              (req.draft_precision or req.precision).name if req.draft else None,
                              e.fit.headroom_gib, e.fit.fits, req.batch, has_draft and e.calibration is None),
        "calibration": e.calibration,
        "fit": fit_to_dict(e.fit),
    }


def _hidden_host_ms(p: Any) -> float:
    """Host time per plain decode step that the engine's overlap scheduler hides (0: none), ms."""
    passes = getattr(p, "passes", None)
    if not passes or "target" not in passes:
        return 0.0
    return max(_ms(np.asarray(passes["target"].total_s).reshape(-1)[0] - np.asarray(p.t_target_s).reshape(-1)[0]), 0.0)


def _loop_fields(e: Estimate) -> dict[str, Any]:
    """The draft loop the plan was priced with: exports write the same p-min."""
    p, loop = e.prices, e.loop
    return {
        "p_min": None if loop is None or loop.rule == "fixed" else round(loop.p_min, 6),
        "draft_loop": None if loop is None else {"engine": loop.engine, "line": loop.line, "rule": loop.rule,
                                                 "schedule": loop.schedule, "n_min": loop.n_min,
                                                 "kappa": round(loop.kappa, 4), "fixed_round_us": loop.fixed_round_us},
        "drafted_per_round": round(float(p.drafted_per_round), 4),
        "draft_passes_per_round": round(float(p.draft_passes_per_round), 4),
        "fixed_round_steps": round(float(p.fixed_round_steps), 5),
        "loop_acceptance_rate": round(float(p.acceptance_rate), 4),
    }


def _by(d: dict[str, Any], role: str) -> str:
    """'<operator> (<regime>)' of the slowest operator of a pass, or '-' when it was not priced by operator."""
    op = d["bound"].get("operator", {}).get(role)
    if not op:
        return "-"
    return f"{op['operator']} ({'fixed cost' if op['regime'] == 'fixed' else op['regime'] + '-bound'})"


def _proposer_word(d: dict[str, Any]) -> str:
    """What proposes: the draft, the head, the MTP module or the lookup."""
    return {"draft": "draft", "eagle": "EAGLE head", "eagle3": "EAGLE-3 head", "mtp": "MTP module",
            "ngram": "n-gram lookup", "suffix": "suffix lookup"}.get(d.get("method") or "draft", "proposer")


def _proposer_label(d: dict[str, Any]) -> str:
    """' + draft X', ' + EAGLE-3 head X', ' + n-gram lookup' (empty without speculation)."""
    if d.get("method") in (None, "draft"):
        return f" + draft {d['draft']}" if d["draft"] else ""
    return f" + {_proposer_word(d)}" + (f" {d['head']}" if d.get("head") and d["method"] != "mtp" else "")


def print_estimate(d: dict[str, Any]) -> None:
    """Human-readable estimate (names and paths printed as they are, never read as markup)."""
    out = console()
    pair = d["target"] + _proposer_label(d)
    print_line(Text.assemble((pair, "bold"), f" on {d['gpus']} x {d['gpu']}, {d['engine']}, batch {d['batch']}, "
                             f"context {d['context']}"), out)
    print_line(f"target decode {d['t_target_ms']:.2f} ms/token ({d['target_tokens_per_s']:.1f} tokens/s per sequence, "
               f"{d['bound']['target']}-bound; slowest operator {_by(d, 'target')})", out)
    if d.get("decode_hidden_host_ms"):
        print_line(f"plain decode runs under {d['engine']}'s overlap scheduler, which hides "
                   f"{d['decode_hidden_host_ms']:.2f} ms of host time per step; speculation turns it off, so every "
                   "pass of a round carries it (in c and r)", out)
    settings = d.get("settings") or {}
    if d["alpha"] is not None:
        print_line(f"{_proposer_word(d)} {d['t_draft_ms']:.2f} ms/token: c = {d['c']:.3f} per token, k*c = {d['k_times_c']:.3f} per "
                   f"round; verify {settings.get('num_draft_tokens') or d['k'] + 1} tokens {d['t_verify_ms']:.2f} ms: r = {d['r']:.3f}", out)
        print_line(f"slowest operator: draft {_by(d, 'draft')}; verify {_by(d, 'verify')}", out)
        band = f" (band {d['alpha_low']:.2f}-{d['alpha_high']:.2f})" if d["alpha_source"] in ("prior", "derived") else ""
        print_line(f"alpha {d['alpha']:.3f} per token from {d['alpha_source']}{band}: {d['alpha_detail']}", out)
        if d.get("draft_loop"):
            pm = "" if d["p_min"] is None else f", p-min {d['p_min']:g}"
            print_line(f"draft loop {d['draft_loop']['engine']} {d['draft_loop']['line']} ({d['draft_loop']['rule']}{pm}): "
                       f"{d['drafted_per_round']:.2f} drafted and {d['draft_passes_per_round']:.2f} draft passes per "
                       f"round, accepted/drafted {d['loop_acceptance_rate']:.3f}, fixed {d['fixed_round_steps']:.3f} "
                       "target steps per round", out)
        shape = (f"tree {settings.get('tree') or ''} (steps {settings['num_steps']}, topk {settings['topk']}, "
                 f"{settings['num_draft_tokens']} draft tokens)".replace("tree  (", "tree (")
                 if settings.get("num_draft_tokens") else f"k = {d['k']} (best k {d['best_k']})")
        print_line(Text.assemble(f"{shape}: {d['mean_accepted_length']:.2f} tokens per round, ",
                                 (f"speedup {d['speedup']:.2f}x", "bold"),
                                 f" (low {d['speedup_low']:.2f}, high {d['speedup_high']:.2f}), "
                                 f"{d['spec_tokens_per_s']:.1f} tokens/s per sequence"
                                 + (f", {d['throughput_tokens_per_s']:.1f} over all {d['batch']} sequences"
                                    if d["batch"] > 1 else "")), out)
    fit = d["fit"]
    print_line(f"memory: {fit['per_gpu_gib']['total']:.1f} of {fit['capacity_gib']:.1f} GiB per GPU "
               f"({'fits' if fit['fits'] else 'DOES NOT FIT'}, headroom {fit['headroom_gib']:+.1f} GiB)", out)
    if d.get("calibration"):
        _print_calibration(d["calibration"])
    print_line(f"verdict: {d['verdict']}", out)
    for note in d.get("cautions", []):
        print_line(Text.assemble(("caution:", "yellow"), f" {note}"), out)
    print_warnings(d["warnings"], out)


def _print_calibration(cal: dict[str, Any]) -> None:
    """Catalogue prediction, re-planned figure and measurement side by side."""
    rows: list[list[str | Text]] = []
    for name, f in cal["figures"].items():
        if name == "alpha":
            rows.append(["alpha", f"{f['prior']:.3f} (prior)", f"{f['used']:.3f}", "", f["source"]])
        elif name == "speedup":
            rows.append(["speedup", f"{f['catalogue']:.2f}", f"{f['calibrated']:.2f}", "", ""])
        else:
            measured = "" if f["measured"] is None else f"{f['measured']:.3f}"
            rows.append([name, f"{f['catalogue']:.3f}", f"{f['calibrated']:.3f}", measured, f["source"]])
    columns = (Column("figure"), Column("catalogue", "right"), Column("calibrated", "right"), Column("measured", "right"),
               Column("from"))
    print_table(f"Calibration {cal['file']}", columns, rows)
    if cal.get("loads"):
        print_load_comparison(cal["loads"])


def _cautions(draft: str | None, precision: str | None, headroom_gib: float, fits: bool, batch: int = 1,
              speculating: bool = False) -> list[str]:
    """What to know before deploying a plan that fits: the checkpoint it needs, a tight memory margin, and
    how far to trust a speculative figure under load."""
    if not fits:
        return []
    return [n for n in (draft_checkpoint_hint(draft, precision), headroom_caution(headroom_gib, fits),
                        batch_caution(batch, speculating)) if n]


def recommendation_to_dict(rec: Recommendation, task: str, objective: str) -> dict[str, Any]:
    """Ranked candidates as JSON-ready data, with the question they answer."""
    req = rec.request
    candidates = [candidate_to_dict(c) for c in rec.candidates]
    for c in candidates:
        c["cautions"] = _cautions(c["draft"], c["draft_precision"], c["headroom_gib"], c["fits"], req.batch,
                                  c.get("method") is not None and rec.loads is None)
    return {
        "target": req.target.id, "target_catalog_id": req.target.catalog_id,
        "gpu": req.gpu.id, "gpus": req.gpus, "engine": req.engine.name,
        "precision": req.precision.name, "kv_precision": req.kv.name, "batch": req.batch, "context": req.context,
        "task": task, "created_at": now_iso(),
        "objective": objective, "verdict": rec.verdict, "candidates": candidates,
        "calibration_loads": rec.loads,
        "warnings": unique(rec.warnings),
    }


_ALPHA_MARK = {"prior": "", "user": "*", "calibration": "*", "derived": "~"}


def _recommend_columns(d: dict[str, Any]) -> tuple[list[Column], bool, bool]:
    """The table's columns: the ranking figure is always one of them (total tok/s, tok/USD)."""
    total = d["objective"] == "throughput" or d["batch"] > 1
    per_usd = any(c["tokens_per_usd"] is not None for c in d["candidates"])
    cols = [Column("#", "right"), Column("proposer", wrap=True), Column("prec"), Column("k", "right"), Column("gpus", "right"),
            Column("speedup", "right"), Column("band", "right"), Column("alpha", "right"), Column("tok/s", "right")]
    cols += [Column("tok/s all", "right")] if total else []
    cols += [Column("tok/USD", "right")] if per_usd else []
    return cols + [Column("fits")], total, per_usd


def _fits_cell(c: dict[str, Any]) -> Text:
    if not c["fits"]:
        return Text("no", style="red")
    return Text("tight", style="yellow") if headroom_caution(c["headroom_gib"], True) else Text("yes")


def _row_label(c: dict[str, Any]) -> str:
    """The proposer column: the draft's or head's short name, the method for MTP and lookups."""
    if c.get("method") is None:
        return "(no speculation)"
    name = c["draft"] if c["method"] == "draft" else c.get("head")
    short = name.rsplit("/", 1)[-1] if name else ""
    if c["method"] == "draft":
        return short
    return f"{c['method']}: {short}" if short and c["method"] != "mtp" else c["method"]


def print_recommendation(d: dict[str, Any]) -> None:
    """Ranked candidates for people: every column kept, the draft name whole, at any width."""
    from rich.markup import escape

    out = console()
    out.print(f"[bold]{escape(d['target'])}[/bold] on up to {d['gpus']} x {escape(d['gpu'])} ({d['engine']}, "
              f"{d['precision']}), batch {d['batch']}, context {d['context']}, task {d['task']}; ranked by {d['objective']}")
    print_line(Text.assemble(("verdict:", "bold"), f" {d['verdict']}"), out)
    columns, total, per_usd = _recommend_columns(d)
    rows: list[list[str | Text]] = []
    for i, c in enumerate(d["candidates"], start=1):
        alpha = "" if c["alpha"] is None else f"{c['alpha']:.2f}{_ALPHA_MARK.get(c['alpha_source'] or '', '*')}"
        row: list[str | Text] = [
            str(i), _row_label(c), c["draft_precision"] or "",
            str(c["k"] or ""), str(c["gpus"]), f"{c['speedup']:.2f}x", f"{c['speedup_low']:.2f}-{c['speedup_high']:.2f}",
            alpha, f"{c['tokens_per_s']:.1f}"]
        row += [f"{c['throughput_tokens_per_s']:.1f}"] if total else []
        row += ["" if c["tokens_per_usd"] is None else f"{c['tokens_per_usd']:.0f}"] if per_usd else []
        rows.append(row + [_fits_cell(c)])
    print_table(None, columns, rows, box="compact", out=out)
    best = d["candidates"][0] if d["candidates"] else None
    if best is not None and best["fits"]:
        for note in best.get("cautions", []):
            print_line(Text.assemble(("caution:", "yellow"), f" {note}"), out)
    print_line("speedup: against (no speculation) on the same number of GPUs, a row shown for each count; "
               "alpha: prior band unless marked * (user or calibration) or ~ (derived from a measurement at another "
               "draft precision); tok/s per sequence" + (f"; tok/s all: over all {d['batch']} sequences" if total else "")
               + ("; tok/USD: total tokens per US dollar of GPU time" if per_usd else "")
               + f"; tight: under {TIGHT_HEADROOM_GIB:g} GiB free per GPU; c and memory in --format json", out)
    if d.get("calibration_loads"):
        print_load_comparison(d["calibration_loads"])
    print_warnings(d["warnings"], out)

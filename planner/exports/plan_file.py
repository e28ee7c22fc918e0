"""Plans to export: the JSON of ``specplan estimate`` / ``recommend``, read and checked strictly.

A plan file is data someone else may have written, so it is read like any input: only a
regular file under ``PLAN_FILE_MAX_BYTES`` (a FIFO or device is refused without being
read), UTF-8, JSON without NaN/Infinity. Every field the exports use is then checked for
its type and range (numbers finite, k between 1 and ``MAX_K``, GPUs at least 1, ...) and
every string with ``check_text``; anything else is one line and exit 2.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from planner.errors import SpecplanError
from planner.catalog.lookup import UAG_ENGINE, UAG_MARK
from planner.exports.common import ExportPlan, tokenizer_match
from planner.exports.method_settings import METHODS, MethodSettings, method_settings
from planner.exports.names import catalogue_model
from planner.exports.text import check_text, check_word
from planner.inputs import parse_json, read_bytes

__all__ = ["PLAN_FILE_MAX_BYTES", "MAX_K", "read_plan_file", "plan_from_json", "parse_plan", "check_plan"]

PLAN_FILE_MAX_BYTES = 16 * 1024 * 1024  # a recommend JSON is a few kB; this is room, not a target
MAX_K = 64  # draft tokens per round the planner considers (servers take at most this many)
_MAX_GPUS = 4096
_MAX_BATCH = 1_000_000
_MAX_CONTEXT = 100_000_000  # tokens; far above any model's window
_MAX_GIB = 1e6
_MAX_SPEEDUP = 1000.0
_MAX_LIST = 10_000


def read_plan_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON object in ``path``; one-line SpecplanError for anything that is not one.

    Read through planner.inputs like every user file (regular files only, strict UTF-8, no
    NaN, deep nesting or huge integers), with the plan's own, smaller size cap.
    """
    label = f"--from-plan {path}"
    data = parse_json(read_bytes(path, "--from-plan", max_bytes=PLAN_FILE_MAX_BYTES), label)
    if not isinstance(data, dict):
        raise SpecplanError(f"{label}: not a specplan plan (expected a JSON object)")
    return data


# --- typed fields ------------------------------------------------------------------------------------------


def _get(d: Mapping[str, Any], key: str, where: str, required: bool) -> Any:
    if key not in d or d[key] is None:
        if required:
            raise SpecplanError(f"plan: {where}{key} is missing")
        return None
    return d[key]


def _int(d: Mapping[str, Any], key: str, where: str, low: int, high: int, required: bool = True) -> int | None:
    v = _get(d, key, where, required)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise SpecplanError(f"plan: {where}{key} must be a whole number (got {type(v).__name__})")
    if not low <= v <= high:
        raise SpecplanError(f"plan: {where}{key} must be between {low} and {high} (got {v})")
    return v


def _num(d: Mapping[str, Any], key: str, where: str, low: float, high: float, required: bool = True,
         open_low: bool = False) -> float | None:
    v = _get(d, key, where, required)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SpecplanError(f"plan: {where}{key} must be a number (got {type(v).__name__})")
    v = float(v)
    if not math.isfinite(v) or v < low or v > high or (open_low and v == low):
        bound = f"above {low}" if open_low else f"at least {low}"
        raise SpecplanError(f"plan: {where}{key} must be a finite number {bound} and at most {high} (got {v})")
    return v


def _bool(d: Mapping[str, Any], key: str, where: str) -> bool:
    v = _get(d, key, where, True)
    if not isinstance(v, bool):
        raise SpecplanError(f"plan: {where}{key} must be true or false (got {type(v).__name__})")
    return v


def _text(d: Mapping[str, Any], key: str, where: str, required: bool = True, word: bool = False) -> str | None:
    v = _get(d, key, where, required)
    if v is None:
        return None
    return (check_word if word else check_text)(v, f"plan: {where}{key}")


def _obj(d: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    v = d.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise SpecplanError(f"plan: {where}{key} must be an object (got {type(v).__name__})")
    return v


def _list(d: Mapping[str, Any], key: str, where: str) -> list[Any]:
    v = d.get(key)
    if v is None:
        return []
    if not isinstance(v, list):
        raise SpecplanError(f"plan: {where}{key} must be a list (got {type(v).__name__})")
    if len(v) > _MAX_LIST:
        raise SpecplanError(f"plan: {where}{key} has {len(v)} entries; at most {_MAX_LIST}")
    return v


def _memory(per_gpu: dict[str, Any], where: str) -> tuple[tuple[str, float], ...]:
    out = []
    for name in per_gpu:
        check_text(name, f"plan: {where}per_gpu_gib key")
        out.append((name, _num(per_gpu, name, f"{where}per_gpu_gib.", 0.0, _MAX_GIB)))
    return tuple((k, v) for k, v in out if v is not None)


# --- plans -----------------------------------------------------------------------------------------------


def _entry_method(entry: Mapping[str, Any], where: str) -> str | None:
    """The method a plan entry runs: its ``method``; a plan written before methods: draft when it names one."""
    value = entry.get("method")
    if value is None:
        return "draft" if entry.get("draft") else None
    method = check_text(value, f"plan: {where}method").strip().lower()
    if method not in METHODS:
        raise SpecplanError(f"plan: {where}method must be one of {', '.join(METHODS)} (got {value!r})")
    return method


def _first_runnable(candidates: list[Any], need_fit: bool = True,
                    serves: Callable[[str], bool] | None = None) -> tuple[int, dict[str, Any]]:
    """The best-ranked candidate that speculates (a draft or a method) and fits; refuse with the reason otherwise.

    Without ``need_fit`` (a plan about to be re-planned) the best one that speculates will do.
    ``serves`` (method -> bool) passes over candidates the chosen server release cannot run;
    when it runs none, the best one stays, to be refused with the server's own reason.
    """
    if not candidates:
        raise SpecplanError("the plan has no candidates to export")
    for i, c in enumerate(candidates):
        if not isinstance(c, dict):
            raise SpecplanError(f"plan: candidates[{i}] must be an object (got {type(c).__name__})")
    speculating = [(i, c, m) for i, c in enumerate(candidates) if (m := _entry_method(c, f"candidates[{i}]."))]
    if not speculating:
        raise SpecplanError("no candidate of the plan uses a draft model or a speculation method: there is no "
                            "speculative decoding to export")
    if serves is not None:
        speculating = [row for row in speculating if serves(row[2])] or speculating[:1]
    for i, cand, _ in speculating:
        if _bool(cand, "fits", f"candidates[{i}]."):
            return i, cand
    i, worst, method = speculating[0]
    if not need_fit:
        return i, worst
    mem = dict(_memory(_obj(worst, "per_gpu_gib", f"candidates[{i}]."), f"candidates[{i}]."))
    name = _text(worst, "draft", f"candidates[{i}].") if method == "draft" else method
    raise SpecplanError(
        f"no candidate with {'a draft' if method == 'draft' else 'speculation'} fits in memory (best: {name} needs "
        f"{mem.get('total', float('nan')):.1f} of {mem.get('capacity', float('nan')):.1f} GiB per GPU); re-plan "
        "with more GPUs or smaller formats"
    )


_INT_SETTINGS = ("k", "num_steps", "topk", "num_draft_tokens", "prompt_lookup_min", "prompt_lookup_max",
                 "ngram_min_bfs_breadth", "ngram_max_bfs_breadth", "ngram_branch_length", "suffix_max_tree_depth",
                 "suffix_max_cached_requests")
_FLOAT_SETTINGS = ("suffix_max_spec_factor", "suffix_min_token_prob")
_MAX_SETTING = 10_000_000  # any count a method takes; the settings' own ranges follow in MethodSettings


def _method_settings(src: Mapping[str, Any], where: str, method: str | None) -> MethodSettings | None:
    """The settings of a head / MTP / lookup method (None: a draft model or no speculation), checked."""
    if method in (None, "draft"):
        return None
    raw = _obj(src, "settings", where)
    at = f"{where}settings."
    if raw.get("method") is not None and _text(raw, "method", at).strip().lower() != method:
        raise SpecplanError(f"plan: {at}method {raw['method']!r} differs from {where}method {method!r}")
    head = _text(src, "head", where, required=False, word=True)
    named = _text(raw, "head", at, required=False, word=True)
    if head and named and head != named:
        raise SpecplanError(f"plan: {at}head {named!r} differs from {where}head {head!r}")
    fields: dict[str, Any] = {"method": method, "head": head or named}
    fields.update({key: _int(raw, key, at, 0, _MAX_SETTING, required=False) for key in _INT_SETTINGS})
    fields.update({key: _num(raw, key, at, 0.0, float(_MAX_SETTING), required=False) for key in _FLOAT_SETTINGS})
    fields["llamacpp_ngram_type"] = _text(raw, "llamacpp_ngram_type", at, required=False)
    if fields["k"] is None:
        fields["k"] = _int(src, "k", where, 1, MAX_K, required=False)
    try:
        return method_settings(**{key: v for key, v in fields.items() if v is not None})
    except SpecplanError as err:
        raise SpecplanError(f"plan: {where}{err}") from None


def _draft_tp_from_catalogue(draft: str, engine: str, gpu: str, gpus: int) -> int:
    """The planner's rule (memory.draft_tp_degree) for a plan that does not record the draft's split."""
    if gpus == 1:
        return 1
    from planner.catalog.lookup import find_gpu
    from planner.engines import engine_spec
    from planner.memory import valid_group_sizes

    spec = catalogue_model(draft)
    try:
        eng, hw = engine_spec(engine), find_gpu(gpu)
    except SpecplanError:
        return 1
    if spec is None or not eng.draft_shares_tp:
        return 1
    return gpus if gpus in valid_group_sizes(spec, eng, hw) else 1


def plan_from_json(data: Any, serves: Callable[[str], bool] | None = None) -> ExportPlan:
    """An ExportPlan from ``estimate --format json`` or ``recommend --format json`` output.

    From a recommendation the first candidate that speculates (a draft model or a method)
    and fits is taken (candidates are ranked best first), passing over the methods
    ``serves`` says the server release lacks; a plan without one is refused.
    """
    plan = parse_plan(data, serves=serves)
    check_plan(plan)
    return plan


def parse_plan(data: Any, need_fit: bool = True, serves: Callable[[str], bool] | None = None) -> ExportPlan:
    """The plan's configuration with every field checked, but not whether it can be exported."""
    if not isinstance(data, dict) or "target" not in data:
        raise SpecplanError("not a specplan plan: expected the JSON of `specplan estimate` or `specplan recommend`")
    warnings = tuple(check_text(w, "plan: warnings[]") for w in _list(data, "warnings", ""))
    common = {
        "target": _text(data, "target", "", word=True), "gpu": _text(data, "gpu", ""),
        "engine": _text(data, "engine", ""), "precision": _text(data, "precision", ""),
        "kv_precision": _text(data, "kv_precision", ""),
        "context": _int(data, "context", "", 1, _MAX_CONTEXT), "batch": _int(data, "batch", "", 1, _MAX_BATCH),
        "created_at": _text(data, "created_at", "", required=False) or "unknown",
    }
    if "candidates" in data:  # recommend: the first runnable candidate
        i, src = _first_runnable(_list(data, "candidates", ""), need_fit, serves)
        where = f"candidates[{i}]."
        mem = _obj(src, "per_gpu_gib", where)
        gpus = _int(src, "gpus", where, 1, _MAX_GPUS, required=False) or _int(data, "gpus", "", 1, _MAX_GPUS)
        fits = _bool(src, "fits", where)
        draft_precision = _text(src, "draft_precision", where, required=False) or common["precision"]
        draft = _text(src, "draft", where, word=True, required=_entry_method(src, where) == "draft")
        draft_catalog_id = _text(src, "draft_catalog_id", where, required=False)
        draft_tp = _draft_tp_from_catalogue(draft_catalog_id or draft, common["engine"], common["gpu"], gpus)  # type: ignore[arg-type]
    else:  # estimate: one configuration with its fit block
        src, where = data, ""
        fit = _obj(data, "fit", "")
        mem = dict(_obj(fit, "per_gpu_gib", "fit."))
        if "capacity_gib" in fit:
            mem.setdefault("capacity", fit["capacity_gib"])
        gpus = _int(data, "gpus", "", 1, _MAX_GPUS)
        fits = _bool(fit, "fits", "fit.") if "fits" in fit else False
        draft_precision = _text(data, "draft_precision", "", required=False)
        draft = _text(data, "draft", "", required=False, word=True)
        draft_tp = _int(fit, "draft_tp", "fit.", 1, _MAX_GPUS, required=False) or 1
        draft_catalog_id = _text(data, "draft_catalog_id", "", required=False)
    settings = _method_settings(src, where, _entry_method(src, where))
    if settings is not None:
        draft = draft_catalog_id = None  # a head / MTP / lookup plan names no draft model
    target_catalog_id = _text(data, "target_catalog_id", "", required=False)
    _check_release(common["target"], target_catalog_id, "target_catalog_id")  # type: ignore[arg-type]
    _check_release(draft, draft_catalog_id, f"{where}draft_catalog_id")
    memory = _memory(mem, f"{where}per_gpu_gib." if where else "fit.")
    by_name = dict(memory)
    plan = ExportPlan(
        **common, draft=draft, tensor_parallel=gpus,  # type: ignore[arg-type]
        k=settings.k if settings is not None else _int(src, "k", where, 1, MAX_K, required=False),
        draft_precision=draft_precision,
        speedup=_num(src, "speedup", where, 0.0, _MAX_SPEEDUP, required=False, open_low=True) or 1.0,
        speedup_low=_num(src, "speedup_low", where, 0.0, _MAX_SPEEDUP, required=False, open_low=True) or 1.0,
        speedup_high=_num(src, "speedup_high", where, 0.0, _MAX_SPEEDUP, required=False, open_low=True) or 1.0,
        alpha=_num(src, "alpha", where, 0.0, 1.0, required=False),
        alpha_source=_text(src, "alpha_source", where, required=False),
        vram_total_gib=by_name.get("total", 0.0), vram_capacity_gib=by_name.get("capacity", 0.0),
        fits=fits, draft_tensor_parallel=draft_tp, memory_gib=memory, warnings=warnings,
        target_catalog_id=target_catalog_id, draft_catalog_id=draft_catalog_id,
        p_min=_num(src, "p_min", where, 0.0, 1.0, required=False), settings=settings,
    )
    return plan


def _check_release(name: str | None, catalog_id: str | None, field: str) -> None:
    """Refuse a plan whose model name and recorded catalogue release disagree (a hand-edited plan).

    Exports take architecture facts (vocabulary, tokenizer) from the recorded release, so a name
    edited to another catalogue model would otherwise be checked against the wrong facts.
    """
    if not name or not catalog_id:
        return
    named, recorded = catalogue_model(name), catalogue_model(catalog_id)
    if named is not None and recorded is not None and named.id != recorded.id:
        raise SpecplanError(
            f"plan field {field} is {catalog_id!r} but the model is named {name!r} ({named.id} in the "
            "catalogue): the plan was edited by hand; re-plan with `specplan estimate`/`recommend`"
        )


def check_plan(plan: ExportPlan, server: str | None = None) -> None:
    """Refuse plans no server can run as speculative decoding: no draft, no fit, foreign tokens.

    A draft with another tokenizer passes only for transformers (``server``, or the plan's
    engine when no server is named yet), which runs it as universal assisted generation.
    """
    if plan.settings is None and (not plan.draft or not plan.k):
        raise SpecplanError("the plan has no draft model and no speculation method: there is no speculative "
                            "decoding to export")
    if plan.vram_capacity_gib <= 0:
        raise SpecplanError("the plan records no GPU memory capacity; re-run `specplan estimate`/`recommend` to make it")
    if not plan.fits:
        raise SpecplanError(
            f"the plan does not fit: {plan.vram_total_gib:.1f} of {plan.vram_capacity_gib:.1f} GiB per GPU on "
            f"{plan.tensor_parallel} x {plan.gpu}; re-plan (more GPUs, smaller formats, shorter context) first"
        )
    if plan.settings is not None:
        return  # a head, MTP or lookup: no draft tokenizer to compare
    if plan.draft_tensor_parallel not in (1, plan.tensor_parallel):
        raise SpecplanError(f"plan: fit.draft_tp must be 1 or the plan's gpus ({plan.tensor_parallel}), "
                            f"got {plan.draft_tensor_parallel}")
    if any("allow-tokenizer-mismatch" in w for w in plan.warnings):
        raise SpecplanError(
            f"draft {plan.draft} does not share target {plan.target}'s tokenizer (the plan was made with "
            "--allow-tokenizer-mismatch); servers verify draft token ids against the target's, so acceptance would be ~0"
        )
    match = tokenizer_match(plan)
    if match is not None and not match.compatible and (server or plan.engine) != UAG_ENGINE:
        raise SpecplanError(
            f"draft {plan.draft} and target {plan.target} use different tokenizers; token ids would not match "
            f"(only transformers runs such a pair, as {UAG_MARK}: export with --format hf)"
        )

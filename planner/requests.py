"""Turn what the user asked (names, flags) into a validated FitRequest plus warnings.

This is the one place where user input meets the catalogue; everything after it
works on resolved, consistent objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.catalog.lookup import ResolvedModel, check_tokenizers, find_gpu, find_model
from planner.catalog.precisions import WeightFormat, kv_format, weight_format
from planner.catalog.schemas import GpuSpec
from planner.catalog.tensor_paths import matmul_dtype, tensor_path
from planner.engines import EngineSpec, check_engine_runs, default_engine_for, engine_spec
from planner.drafts import draft_candidates
from planner.errors import SpecplanError
from planner.footprint import parameter_counts
from planner.memory import DEFAULT_K, FitRequest, valid_group_sizes
from planner.proposers.catalog import head_catalog
from planner.proposers.proposer import Proposer, available_methods, resolve_proposer
from planner.units import BILLION

__all__ = ["FitInputs", "build_fit_request", "resolve_engine", "method_of", "DEFAULT_CONTEXT"]

DEFAULT_CONTEXT = 4096  # tokens per sequence when the user gives none


@dataclass(frozen=True)
class FitInputs:
    """The planning flags as typed by the user."""

    target: str
    gpu: str
    draft: str | None = None
    gpus: int = 1
    precision: str | None = None
    draft_precision: str | None = None
    kv_precision: str | None = None
    batch: int = 1
    context: int | None = None  # None: DEFAULT_CONTEXT or the target's maximum, whichever is smaller
    engine: str | None = None
    k: int = DEFAULT_K
    memory_gib: float | None = None
    allow_tokenizer_mismatch: bool = False
    method: str | None = None  # draft, eagle, eagle3, mtp, ngram, suffix; None: draft with --draft, else none
    head: str | None = None  # EAGLE head / MTP release: catalogue Hub id or local folder (None: the catalogued one)


def _positive(name: str, value: object) -> None:
    """A whole number >= 1: callers other than the CLI (plan files, the API) may pass anything."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecplanError(f"{name} must be a whole number (got {value!r:.40})")
    if value < 1:
        raise SpecplanError(f"{name} must be at least 1 (got {value})")


def resolve_engine(name: str | None, gpu: GpuSpec) -> EngineSpec:
    """The named engine, or the usual one for the GPU's vendor; refuses unsupported hardware."""
    engine = engine_spec(name) if name and name != "auto" else default_engine_for(gpu.vendor)
    check_engine_runs(engine, gpu.vendor, gpu.name)
    return engine


def _gpu(name: str) -> GpuSpec:
    """A catalogue GPU, this machine's GPU 0 for ``local`` (NVML; exit 3 without a GPU), its CPU for ``cpu``."""
    from planner.calibration.host import host_device, is_host_device

    if is_host_device(name):
        return host_device().spec
    if name.strip().lower() == "local":
        from planner.calibration.nvml import local_group

        return local_group()[0]
    return find_gpu(name)


def _host_note(gpu: GpuSpec) -> str:
    """What a plan on the host CPU rests on: the figures were read and measured here, not catalogued."""
    return f"planning on this machine's CPU, {gpu.name}: {gpu.notes}"


def _precision(name: str | None, fallback: str, engine: EngineSpec, what: str):  # type: ignore[no-untyped-def]
    fmt = weight_format(name or fallback)
    if fmt.name not in engine.weight_formats:
        raise SpecplanError(
            f"{engine.label} cannot run {what} precision {fmt.name}; it runs: {', '.join(engine.weight_formats)}"
        )
    return fmt


def _fallback_note(fmt: WeightFormat, gpu: GpuSpec, what: str) -> list[str]:
    """Why a format priced off its own tensor path (FP8/FP4 weights on a GPU without those cores)."""
    path = tensor_path(fmt)
    if path is None or gpu.family in path.families:
        return []
    return [f"{what} {matmul_dtype(fmt, gpu).reason}"]


def _check_group(model: ResolvedModel, engine: EngineSpec, gpu: GpuSpec, gpus: int) -> None:
    valid = valid_group_sizes(model.spec, engine, gpu)
    if gpus not in valid:
        how = "tensor parallelism" if engine.parallelism == "tensor" else "a layer split"
        shown = ", ".join(str(g) for g in valid[:12])
        raise SpecplanError(
            f"{model.spec.id} cannot be split over {gpus} x {gpu.id} with {engine.label}'s {how}; valid: {shown}"
        )


def _capacity(gpu: GpuSpec, memory_gib: float | None) -> float | None:
    if memory_gib is None:
        return None
    finite = isinstance(memory_gib, int) or (isinstance(memory_gib, float) and math.isfinite(memory_gib))
    if isinstance(memory_gib, bool) or not finite or memory_gib <= 0 or memory_gib > 1e6:
        raise SpecplanError(f"--memory-gib must be a finite number of GiB above 0 and at most 1e6 (got {str(memory_gib)[:40]})")
    if gpu.memory_options_gib and memory_gib not in {*gpu.memory_options_gib, gpu.memory_gib}:
        sold = ", ".join(f"{m:g}" for m in sorted({*gpu.memory_options_gib, gpu.memory_gib}))
        raise SpecplanError(f"{gpu.name} is sold with {sold} GiB, not {memory_gib:g}")
    return memory_gib


def build_fit_request(inp: FitInputs) -> tuple[FitRequest, tuple[str, ...]]:
    """Validate the inputs and build the request; returns it with any warnings."""
    for name, value in (("--batch", inp.batch), ("--context", 1 if inp.context is None else inp.context), ("--gpus", inp.gpus), ("--k", inp.k)):
        _positive(name, value)
    gpu = _gpu(inp.gpu)
    engine = resolve_engine(inp.engine, gpu)
    target = find_model(inp.target)
    context = inp.context if inp.context is not None else min(DEFAULT_CONTEXT, target.spec.max_context_tokens)
    draft = find_model(inp.draft) if inp.draft else None
    warnings: list[str] = [_host_note(gpu)] if gpu.vendor == "cpu" else []
    if context > target.spec.max_context_tokens:
        raise SpecplanError(
            f"--context {context} exceeds {target.spec.id}'s maximum of {target.spec.max_context_tokens} tokens"
        )
    _check_group(target, engine, gpu, inp.gpus)
    # A checkpoint stored in its own format (gpt-oss's MXFP4 experts, an AWQ folder) runs in it by default.
    precision = _precision(inp.precision, target.checkpoint_precision or engine.default_weight_format, engine, "target")
    warnings.extend(_fallback_note(precision, gpu, "target"))
    draft_fmt = None
    if draft is not None:
        if mismatch := check_tokenizers(target.spec, draft.spec, inp.allow_tokenizer_mismatch, engine.name):
            warnings.append(mismatch)
        draft_fmt = _precision(inp.draft_precision, draft.checkpoint_precision or precision.name, engine, "draft")
        if draft_fmt.name != precision.name:
            warnings.extend(_fallback_note(draft_fmt, gpu, "draft"))
        warnings.extend(_draft_warnings(target, draft, context))
    proposer = _proposer(inp, target, engine)
    kv = kv_format(inp.kv_precision or "fp16")
    if kv.name not in engine.kv_formats:
        raise SpecplanError(f"{engine.label} cannot store the KV cache as {kv.name}; it offers: {', '.join(engine.kv_formats)}")
    request = FitRequest(
        target=target.spec, draft=draft.spec if draft else None, gpu=gpu, engine=engine, precision=precision,
        draft_precision=draft_fmt, kv=kv, batch=inp.batch, context=context, gpus=inp.gpus, k=inp.k,
        capacity_gib=_capacity(gpu, inp.memory_gib), proposer=proposer,
    )
    return request, tuple(warnings)


def method_of(inp: FitInputs) -> str | None:
    """The method the flags ask for: --method, else the --head's catalogued method, else draft with --draft."""
    if inp.method is not None:
        return inp.method.strip().lower()
    if inp.head is not None:
        entry = head_catalog().index.get(inp.head.strip().lower())
        return entry.method if entry is not None else "eagle3"  # a local folder: EAGLE-3 unless its config says not
    return "draft" if inp.draft else None


def _proposer(inp: FitInputs, target: ResolvedModel, engine: EngineSpec) -> Proposer | None:
    """The head / MTP / lookup proposer of a non-draft method, refused with the nearest alternative."""
    method = method_of(inp)
    if method is None:
        return None
    if method == "draft":
        if inp.draft is None:
            raise SpecplanError("--method draft needs --draft (a smaller model with the target's tokenizer)"
                                + _alternatives(target, engine))
        if inp.head is not None:
            raise SpecplanError("--head belongs to --method eagle / eagle3 / mtp; a draft model is --draft")
        return None
    if inp.draft is not None:
        raise SpecplanError(f"--method {method} runs no draft model: drop --draft (or use --method draft)")
    return resolve_proposer(method, target, inp.head, engine.label, engine.methods, _draft_alternative(target, engine))


def _draft_alternative(target: ResolvedModel, engine: EngineSpec) -> dict[str, str]:
    """The draft model recommend would try first, as a refusal's alternative (none when the target has none)."""
    if "draft" not in engine.methods or target.origin != "catalog":
        return {}
    drafts = draft_candidates(target.spec).drafts
    return {"draft": f"--draft {drafts[0].id}"} if drafts else {}


def _alternatives(target: ResolvedModel, engine: EngineSpec) -> str:
    found = available_methods(target, engine.methods)
    return ("; or, without a draft: " + ", ".join(f"--method {m} ({w})" for m, w in found.items())) if found else ""


def _draft_warnings(target: ResolvedModel, draft: ResolvedModel, context: int) -> list[str]:
    out = []
    t_params, d_params = parameter_counts(target.spec).total, parameter_counts(draft.spec).total
    if d_params >= t_params:
        out.append(
            f"draft {draft.spec.id} ({d_params / BILLION:.1f}B) is not smaller than target "
            f"{target.spec.id} ({t_params / BILLION:.1f}B): it cannot make decoding faster"
        )
    if context > draft.spec.max_context_tokens:
        out.append(
            f"--context {context} exceeds the draft's maximum of {draft.spec.max_context_tokens} tokens; "
            "engines stop speculating past it"
        )
    return out

"""Will it fit? Per-GPU memory of a target (and draft) on a GPU group (DESIGN.md section 4).

Per GPU: target weights / g + draft weights / draft_tp + KV cache of both models
for B sequences of the full context + activation/logits workspace + the runtime
reserve (engine's unused memory fraction, CUDA context, macOS's GPU wiring limit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from planner.catalog.precisions import KvFormat, WeightFormat, kv_format, weight_format
from planner.catalog.schemas import GpuSpec, ModelSpec
from planner.engines import EngineSpec
from planner.proposers.proposer import Proposer
from planner.footprint import kv_cache_bytes, parameter_counts, weight_bytes
from planner.units import GIB

__all__ = [
    "FitRequest",
    "MemoryBreakdown",
    "Suggestion",
    "FitReport",
    "valid_group_sizes",
    "draft_tp_degree",
    "memory_breakdown",
    "unified_memory_gpu_fraction",
    "activation_bytes",
    "runtime_reserve_bytes",
    "fit_report",
    "max_batch_at_context",
    "max_context_at_batch",
    "min_gpus_to_fit",
    "suggestions",
    "DEFAULT_K",
]

DEFAULT_K = 5  # draft tokens per round assumed for verify buffers when the user gives none
_ACT_BYTES = 2  # activations in bf16/fp16
_LOGIT_BYTES = 4  # engines upcast logits to fp32 before sampling
_ACT_HIDDEN_COPIES = 4  # residual, normed input, attention output, MLP output per token
_MAX_GPUS = 64
_MAX_BATCH_SEARCH = 1 << 20
# macOS lets the GPU wire about 2/3 of RAM on machines with up to 36 GB and 3/4 above
# (Metal recommendedMaxWorkingSetSize; llama.cpp discussion #2182, iogpu.wired_limit_mb).
_APPLE_SMALL_MACHINE_GIB = 36
_APPLE_FRACTION_SMALL = 2 / 3
_APPLE_FRACTION_LARGE = 3 / 4


@dataclass(frozen=True)
class FitRequest:
    """Everything that decides memory use: models, formats, hardware, engine and workload."""

    target: ModelSpec
    gpu: GpuSpec
    engine: EngineSpec
    precision: WeightFormat
    kv: KvFormat
    batch: int
    context: int
    gpus: int = 1
    draft: ModelSpec | None = None
    draft_precision: WeightFormat | None = None
    k: int = DEFAULT_K
    capacity_gib: float | None = None  # overrides the catalogue (Apple memory options, NVML)
    proposer: Proposer | None = None  # a head, MTP modules or a host lookup instead of a draft model

    @property
    def method(self) -> str | None:
        """The proposal method planned: draft, a proposer's method, or None (no speculation)."""
        if self.proposer is not None:
            return self.proposer.method
        return "draft" if self.draft is not None else None

    @property
    def speculates(self) -> bool:
        """True when something proposes tokens (a draft model or a proposer)."""
        return self.draft is not None or self.proposer is not None

    @property
    def capacity_bytes(self) -> float:
        """Memory of one GPU in bytes."""
        return (self.capacity_gib if self.capacity_gib is not None else self.gpu.capacity_gib) * GIB


@dataclass(frozen=True)
class MemoryBreakdown:
    """Per-GPU memory by component, in bytes (the busiest GPU of the group)."""

    target_weights: float
    draft_weights: float
    kv_cache: float
    activations: float
    runtime_reserve: float

    @property
    def total(self) -> float:
        """Sum of all components, bytes."""
        return self.target_weights + self.draft_weights + self.kv_cache + self.activations + self.runtime_reserve

    def as_gib(self) -> dict[str, float]:
        """Components and total in GiB, rounded for display."""
        parts = {
            "target_weights": self.target_weights, "draft_weights": self.draft_weights,
            "kv_cache": self.kv_cache, "activations": self.activations,
            "runtime_reserve": self.runtime_reserve, "total": self.total,
        }
        return {k: round(v / GIB, 3) for k, v in parts.items()}


@dataclass(frozen=True)
class Suggestion:
    """One change that alone makes the configuration fit."""

    kind: str  # kv_precision | precision | draft_precision | gpus | batch | context
    value: str | int
    flag: str
    headroom_gib: float
    note: str


@dataclass(frozen=True)
class FitReport:
    """The answer to "does it fit?", with limits and the cheapest fixes."""

    request: FitRequest
    breakdown: MemoryBreakdown
    capacity_gib: float
    draft_tp: int
    max_batch_at_context: int
    max_context_at_batch: int
    min_gpus_to_fit: int | None
    suggestions: tuple[Suggestion, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def headroom_gib(self) -> float:
        """Capacity minus total per GPU, GiB (negative when it does not fit)."""
        return self.capacity_gib - self.breakdown.total / GIB

    @property
    def fits(self) -> bool:
        """True when every GPU of the group holds its share."""
        return self.headroom_gib >= 0


def valid_group_sizes(model: ModelSpec, engine: EngineSpec, gpu: GpuSpec) -> list[int]:
    """GPU counts the engine can split ``model`` over on this hardware.

    Tensor parallelism needs the query heads, and the KV heads (or their
    replication), to divide evenly; a layer split only needs one layer per GPU.
    Parts without a GPU-to-GPU link (Apple) run alone.
    """
    if gpu.interconnect.kind == "none":
        return [1]
    if engine.parallelism == "layer":
        return list(range(1, min(model.num_layers, _MAX_GPUS) + 1))
    kv = model.num_kv_heads
    return [
        g for g in range(1, _MAX_GPUS + 1)
        if model.num_attention_heads % g == 0 and (kv % g == 0 or g % kv == 0 or model.mla is not None)
    ]


def draft_tp_degree(req: FitRequest) -> int:
    """GPUs the draft is split over: the target's group when the engine and its heads allow, else 1."""
    if req.draft is None or not req.engine.draft_shares_tp or req.gpus == 1:
        return 1
    return req.gpus if req.gpus in valid_group_sizes(req.draft, req.engine, req.gpu) else 1


def _share(model: ModelSpec, engine: EngineSpec, g: int) -> float:
    """Fraction of the model's per-layer state on the busiest GPU of a g-way split."""
    if engine.parallelism == "layer":
        return math.ceil(model.num_layers / g) / model.num_layers
    return 1 / g


def _weights_on_gpu(model: ModelSpec, fmt: WeightFormat, engine: EngineSpec, g: int) -> float:
    """Weight bytes on the busiest GPU."""
    counts = parameter_counts(model)
    wb = weight_bytes(model, fmt, counts)
    embeddings = wb.embeddings
    if engine.name == "llamacpp" and not model.tie_word_embeddings:
        # llama.cpp keeps the input embedding table in host memory; only the output matrix is offloaded.
        embeddings *= counts.lm_head / (counts.embedding + counts.lm_head)
    if engine.parallelism == "layer":
        # The vision encoder runs where the embeddings are, on the first GPU of the split.
        return (wb.linear + wb.norms) * _share(model, engine, g) + embeddings + wb.vision
    return wb.total / g


def _kv_on_gpu(model: ModelSpec, req: FitRequest, g: int) -> float:
    """KV-cache bytes of ``batch`` sequences of ``context + k`` tokens on the busiest GPU."""
    tokens = req.context + (req.k if req.speculates else 0)
    window, chunked = req.engine.sliding_window_kv, req.engine.chunked_attention_kv
    if req.engine.parallelism == "layer":
        per_seq = kv_cache_bytes(model, req.kv, tokens, 1, window, chunked) * _share(model, req.engine, g)
    else:
        per_seq = kv_cache_bytes(model, req.kv, tokens, g, window, chunked)
    return req.batch * per_seq


def activation_bytes(model: ModelSpec, tokens: int, logit_tokens: int, g: int) -> float:
    """Peak activation + logits workspace of one forward pass, bytes per GPU.

    ``tokens`` go through the layers at once (a prefill chunk); ``logit_tokens``
    get fp32 logits over the vocabulary.
    """
    if model.moe is not None:
        mlp_width = model.moe.experts_per_token * model.moe.expert_intermediate_size
        mlp_width += model.moe.shared_expert_intermediate_size
        mlp_width = max(mlp_width, model.intermediate_size if model.moe.first_dense_layers else 0)
    else:
        mlp_width = model.intermediate_size
    qkv = (model.num_attention_heads + 2 * model.num_kv_heads) * model.head_dim
    per_token = _ACT_BYTES * (_ACT_HIDDEN_COPIES * model.hidden_size + (2 * mlp_width + qkv) / g)
    return tokens * per_token + logit_tokens * model.vocab_size / g * _LOGIT_BYTES


def _workspace(req: FitRequest, draft_tp: int) -> float:
    """Activation workspace per GPU for a prefill chunk and its logits, target and draft."""
    eng = req.engine
    chunk = eng.prefill_chunk_tokens or req.batch * req.context
    if eng.name == "llamacpp":
        logit_tokens = chunk  # the compute buffer is sized for a full ubatch of logits
    elif eng.prefill_chunk_tokens is None:
        logit_tokens = req.batch  # transformers keeps only the last position's logits
    else:
        logit_tokens = req.batch * (req.k + 1 if req.speculates else 1)
    g = req.gpus if eng.parallelism == "tensor" else 1
    target = activation_bytes(req.target, chunk, logit_tokens, g)
    if req.draft is None:
        return target
    draft_g = draft_tp if eng.parallelism == "tensor" else 1
    draft = activation_bytes(req.draft, chunk, logit_tokens, draft_g)
    # One process reuses the same workspace for both models; separate contexts do not.
    return target + draft if eng.draft_own_workspace else max(target, draft)


def unified_memory_gpu_fraction(capacity_gib: float) -> float:
    """Share of a Mac's unified memory that Metal lets the GPU wire by default."""
    return _APPLE_FRACTION_SMALL if capacity_gib <= _APPLE_SMALL_MACHINE_GIB else _APPLE_FRACTION_LARGE


def runtime_reserve_bytes(req: FitRequest, used_bytes: float) -> float:
    """Memory the runtime keeps from weights and KV, bytes per GPU.

    vLLM/SGLang claim a fixed fraction of the GPU and leave the rest; TensorRT-LLM
    gives a fraction of what is free after weights to the KV cache; llama.cpp and
    transformers allocate on demand. All pay for a CUDA context, and a Mac's GPU
    may only wire part of unified memory.
    """
    eng, cap = req.engine, req.capacity_bytes
    reserve = eng.cuda_context_gib * GIB
    if eng.memory_fraction is not None:
        reserve += (1 - eng.memory_fraction) * cap
    elif eng.free_memory_fraction is not None:
        reserve += (1 - eng.free_memory_fraction) * max(cap - used_bytes - reserve, 0)
    if req.gpu.memory_class == "unified":
        reserve += (1 - unified_memory_gpu_fraction(cap / GIB)) * cap
    return reserve


def memory_breakdown(req: FitRequest) -> MemoryBreakdown:
    """Per-GPU memory of the request on its busiest GPU, by component."""
    dtp = draft_tp_degree(req)
    target_w = _weights_on_gpu(req.target, req.precision, req.engine, req.gpus)
    kv = _kv_on_gpu(req.target, req, req.gpus)
    draft_w = 0.0
    if req.draft is not None:
        draft_fmt = req.draft_precision or req.precision
        draft_w = _weights_on_gpu(req.draft, draft_fmt, req.engine, dtp)
        kv += _kv_on_gpu(req.draft, req, dtp)
    if req.proposer is not None:
        w, k = _proposer_on_gpu(req)
        draft_w, kv = draft_w + w, kv + k
    act = _workspace(req, dtp)
    reserve = runtime_reserve_bytes(req, target_w + draft_w + act)
    return MemoryBreakdown(target_w, draft_w, kv, act, reserve)


def _proposer_on_gpu(req: FitRequest) -> tuple[float, float]:
    """(weight bytes, KV bytes) a head or MTP module adds to the busiest GPU.

    vLLM, SGLang and TensorRT-LLM shard the head over the target's tensor-parallel group (the
    draft worker reuses the target's parallel config), so its weights split like the target's
    and its KV heads like planner.proposers.layers.kv_bytes_per_token says.
    """
    assert req.proposer is not None
    tp = req.gpus if req.engine.parallelism == "tensor" else 1
    mem = req.proposer.memory(req.target, req.precision, req.kv, tp, req.engine.name)
    tokens = req.context + req.k
    return mem.weight_bytes / tp, req.batch * tokens * mem.kv_bytes_per_token


def _fits(req: FitRequest) -> bool:
    return memory_breakdown(req).total <= req.capacity_bytes


def _largest(lo: int, hi: int, ok) -> int:  # type: ignore[no-untyped-def]
    """Largest n in [lo, hi] with ok(n), for monotone ok; lo - 1 when none."""
    if not ok(lo):
        return lo - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
    return lo


def max_batch_at_context(req: FitRequest) -> int:
    """Most concurrent sequences of ``context`` tokens that fit (0 when none)."""
    return _largest(1, _MAX_BATCH_SEARCH, lambda b: _fits(replace(req, batch=b)))


def max_context_at_batch(req: FitRequest) -> int:
    """Longest context (tokens) that fits at ``batch`` sequences, up to the model's limit (0 when none)."""
    return _largest(1, req.target.max_context_tokens, lambda n: _fits(replace(req, context=n)))


def min_gpus_to_fit(req: FitRequest) -> int | None:
    """Fewest GPUs of this kind that hold the request (None when no valid group does)."""
    for g in valid_group_sizes(req.target, req.engine, req.gpu):
        if _fits(replace(req, gpus=g)):
            return g
    return None


def _headroom_gib(req: FitRequest) -> float:
    return (req.capacity_bytes - memory_breakdown(req).total) / GIB


_SAME_BITS_DIGITS = 1  # formats within ~0.05 bit (fp8 / fp8-block, AWQ / MXFP4) count as one width


def _smaller_formats(current: float, names: tuple[str, ...], bits) -> list[str]:  # type: ignore[no-untyped-def]
    """Engine formats with fewer bits than ``current``, largest first (least quality lost).

    Equal widths keep the engine's order, so a format its scales make a hair wider (block FP8's
    0.002 bit) is not offered before the common one (fp8, which servers also make at load).
    """
    return sorted((n for n in names if bits(n) < current), key=lambda n: -round(bits(n), _SAME_BITS_DIGITS))


def _first_fitting(req: FitRequest, options: list[str], make) -> FitRequest | None:  # type: ignore[no-untyped-def]
    for name in options:
        candidate = make(name)
        if _fits(candidate):
            return candidate
    return None


def suggestions(req: FitRequest, min_gpus: int | None, max_batch: int, max_context: int) -> list[Suggestion]:
    """Single changes that make a non-fitting request fit, cheapest first.

    Order: a smaller KV format (least quality cost), a lower target precision,
    a lower draft precision, more GPUs (costs money), then less work (batch, context).
    """
    eng, out = req.engine, []
    kv_bits = lambda n: kv_format(n).bits_per_element  # noqa: E731
    w_bits = lambda n: weight_format(n).bits_per_weight  # noqa: E731
    kv_req = _first_fitting(req, _smaller_formats(req.kv.bits_per_element, eng.kv_formats, kv_bits),
                            lambda n: replace(req, kv=kv_format(n)))
    if kv_req:
        out.append(Suggestion("kv_precision", kv_req.kv.name, f"--kv-precision {kv_req.kv.name}",
                              _headroom_gib(kv_req), "KV cache in fewer bits"))
    w_req = _first_fitting(req, _smaller_formats(req.precision.bits_per_weight, eng.weight_formats, w_bits),
                           lambda n: replace(req, precision=weight_format(n),
                                             draft_precision=req.draft_precision or req.precision))
    if w_req:
        out.append(Suggestion("precision", w_req.precision.name, f"--precision {w_req.precision.name}",
                              _headroom_gib(w_req), "target weights in fewer bits"))
    if req.draft is not None:
        current = (req.draft_precision or req.precision).bits_per_weight
        d_req = _first_fitting(req, _smaller_formats(current, eng.weight_formats, w_bits),
                               lambda n: replace(req, draft_precision=weight_format(n)))
        if d_req and d_req.draft_precision:
            out.append(Suggestion("draft_precision", d_req.draft_precision.name,
                                  f"--draft-precision {d_req.draft_precision.name}",
                                  _headroom_gib(d_req), "draft weights in fewer bits"))
    if min_gpus is not None and min_gpus > req.gpus:
        out.append(Suggestion("gpus", min_gpus, f"--gpus {min_gpus}", _headroom_gib(replace(req, gpus=min_gpus)),
                              f"{'tensor-parallel' if eng.parallelism == 'tensor' else 'layer-split'} group"))
    if 0 < max_batch < req.batch:
        out.append(Suggestion("batch", max_batch, f"--batch {max_batch}",
                              _headroom_gib(replace(req, batch=max_batch)), "fewer concurrent sequences"))
    if 0 < max_context < req.context:
        out.append(Suggestion("context", max_context, f"--context {max_context}",
                              _headroom_gib(replace(req, context=max_context)), "shorter context per sequence"))
    return out


def fit_report(req: FitRequest, warnings: tuple[str, ...] = ()) -> FitReport:
    """Answer "does it fit?" for one request, with limits and fixes."""
    breakdown = memory_breakdown(req)
    max_b = max_batch_at_context(req)
    max_l = max_context_at_batch(req)
    min_g = min_gpus_to_fit(req)
    fits = breakdown.total <= req.capacity_bytes
    return FitReport(
        request=req,
        breakdown=breakdown,
        capacity_gib=req.capacity_bytes / GIB,
        draft_tp=draft_tp_degree(req),
        max_batch_at_context=max_b,
        max_context_at_batch=max_l,
        min_gpus_to_fit=min_g,
        suggestions=() if fits else tuple(suggestions(req, min_g, max_b, max_l)),
        warnings=warnings,
    )

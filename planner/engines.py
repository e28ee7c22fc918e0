"""Serving engines as data (planner/engines.yaml): formats, memory reserves, cost figures."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from planner.catalog.loading import format_validation_error, safe_load
from planner.catalog.names import did_you_mean
from planner.catalog.schemas import Frozen, MemoryClass
from planner.errors import CatalogError, SpecplanError, UnknownNameError
from planner.versions import release_key

__all__ = [
    "CostDefaults",
    "KernelSpec",
    "SamplingSpec",
    "EngineSpec",
    "engines",
    "engine_names",
    "engine_spec",
    "default_engine_for",
    "check_engine_runs",
]

Vendor = Literal["nvidia", "amd", "apple", "intel", "cpu"]
_ALIASES = {"tensorrtllm": "trtllm", "llama": "llamacpp", "transformers": "hf", "gpt-fast": "gptfast"}


class CostDefaults(Frozen):
    """Decode-path efficiencies and fixed overheads of one engine on one memory class."""

    eta_mem: float = Field(gt=0, le=1, description="achieved / peak bandwidth, 8- and 16-bit weights")
    eta_mem_quant: float = Field(gt=0, le=1, description="achieved / peak bandwidth, sub-8-bit weights")
    eta_kv: float = Field(gt=0, le=1, description="achieved / peak bandwidth reading the KV cache in attention")
    eta_compute: float = Field(gt=0, le=1, description="achieved / peak dense tensor FLOPS")
    tau_layer_us: float = Field(ge=0, description="fixed time per layer per forward pass, us")
    tau_step_us: float = Field(ge=0, description="fixed time per forward pass, us")
    sampling_ns_per_vocab: float = Field(ge=0, description="host sampling cost per vocab entry per token, ns")
    link_latency_us: float = Field(ge=0, description="fixed latency of one all-reduce or hand-off, us")
    gemm_matvec_rows: int = Field(
        1, ge=1, description="up to this many rows a GEMM runs as a mat-vec kernel (no tile padding)"
    )
    gemm_tile_rows: tuple[int, ...] = Field(
        (), description="M tiles of the engine's GEMMs, smallest first: M pads to the smallest tile that holds it, "
        "else to a multiple of the largest (empty: no padding)"
    )


class KernelSpec(Frozen):
    """How an engine multiplies block-quantised (GGUF) weights, by rows (tokens) per pass.

    A row past the first in the mat-vec costs ``params x ops_per_weight / (unit peak x
    eta_dot)``: 2 ops (one multiply-add) on CUDA's dp4a, the dequantise + dot work on
    the FP32 ALUs of GPUs without integer dot units (Apple Metal).
    """

    memory_classes: tuple[MemoryClass, ...] = Field(
        ("hbm", "gddr"), description="memory classes (GPU families) this release line's kernels run on"
    )
    quant_matvec_max_rows: int = Field(ge=0, description="rows served by the quantised mat-vec kernel (MMVQ)")
    quant_matvec_dot: Literal["dp4a", "fp32"] = Field("dp4a", description="unit the mat-vec's per-row work runs on")
    quant_matvec_ops_per_weight: float = Field(
        2.0, gt=0, description="ops per weight per extra row on that unit (2: one multiply-add)"
    )
    quant_matvec_eta_dot: float = Field(gt=0, le=1, description="mat-vec achieved / peak of that unit, per extra row")
    kquant_matvec_min_rows: int = Field(
        1, ge=1, description="K-quant blocks below this many rows run the plain mat-vec: weights re-read per row"
    )
    quant_matmul_tile_rows: int = Field(ge=1, description="rows per tile of the quantised GEMM: weights re-read per tile")
    quant_matmul_tile_step: int = Field(ge=1, description="rows pad to a multiple of this inside a tile")
    quant_matmul_dot: Literal["dp4a", "int8_tensor", "fp32"] = Field(
        description="unit the quantised GEMM's dot products run on"
    )
    quant_matmul_eta_dot: float = Field(gt=0, le=1, description="achieved / peak of that unit")
    gemm_matvec_rows: int | None = Field(
        None, ge=1, description="16-bit weights' mat-vec row limit on this line (None: the cost block's)"
    )
    below: str | None = Field(
        None, description="first release (build) after this line: --server-version below it selects the line"
    )
    source: str


class SamplingSpec(Frozen):
    """Where and how an engine turns logits into tokens, per role of the pass."""

    where: Literal["gpu", "host"] = Field(description="host: logits copied to the CPU and sampled there")
    draft_ns_per_vocab: float = Field(0.0, ge=0, description="host cost per vocab entry of the draft's sampler, ns")
    host_link_gb_s: float = Field(25.0, gt=0, description="device-to-host copy rate of the logits, GB/s")
    source: str


class EngineSpec(Frozen):
    """One serving engine's defaults for memory planning and the cost model."""

    name: str
    label: str
    vendors: tuple[Vendor, ...]
    weight_formats: tuple[str, ...]
    kv_formats: tuple[str, ...]
    default_weight_format: str
    draft_precisions: tuple[str, ...] = Field(description="draft formats the recommendation search tries")
    parallelism: Literal["tensor", "layer"] = Field(
        description="multi-GPU mode: tensor parallel (weights and bandwidth split) or layer split"
    )
    memory_fraction: float | None = Field(
        None, gt=0, le=1, description="share of GPU memory the engine claims (None: allocates on demand)"
    )
    memory_fraction_flag: str | None = None
    free_memory_fraction: float | None = Field(
        None, gt=0, le=1, description="share of memory left after weights that goes to KV (TensorRT-LLM)"
    )
    cuda_context_gib: float = Field(ge=0, description="CUDA/HIP/Metal context, NCCL and graph buffers")
    prefill_chunk_tokens: int | None = Field(
        None, gt=0, description="tokens per forward pass when prefilling (None: the whole prompt)"
    )
    sliding_window_kv: bool = Field(description="stores only the window for sliding-window layers")
    chunked_attention_kv: bool | None = Field(
        None, description="stores only the current chunk for chunked-local layers (Llama-4); None: as sliding_window_kv"
    )
    draft_shares_tp: bool = Field(description="draft is sharded over the target's GPUs by default")
    draft_own_workspace: bool = Field(
        False, description="the draft has its own compute buffers (added to the target's, not shared)"
    )
    methods: tuple[str, ...] = Field(("draft",), description="proposal methods the engine serves (planner.proposers)")
    tree_methods: tuple[str, ...] = Field((), description="methods it serves with a token tree (topk > 1)")
    decode_overlaps_host: bool = Field(
        False, description="plain decode overlaps each step's host work with the GPU's (an overlap scheduler) "
                           "and speculative decoding turns the overlap off"
    )
    source: str
    cost: dict[MemoryClass, CostDefaults]
    kernels: dict[str, KernelSpec] = Field(
        default_factory=dict, description="quantised-weight kernel regimes by release line ('current' first)"
    )
    sampling: SamplingSpec | None = None
    refuses: dict[Vendor, str] = Field(
        default_factory=dict, description="why the engine is not planned on a device kind it could in principle run on"
    )

    def cost_for(self, memory_class: MemoryClass) -> CostDefaults:
        """Cost defaults for a memory class (HBM, GDDR, unified or the host CPU)."""
        if memory_class not in self.cost:
            raise SpecplanError(f"{self.label} has no cost figures for {memory_class} memory")
        return self.cost[memory_class]

    @model_validator(mode="after")
    def _cpu_has_costs(self) -> EngineSpec:
        if "cpu" in self.vendors and "cpu" not in self.cost:
            raise ValueError("an engine that runs on the host CPU (vendors: cpu) needs a cost.cpu block")
        return self

    def kernel_line_for_version(self, version: str | None, memory_class: MemoryClass) -> str | None:
        """The kernel release line a server version runs on ``memory_class`` (None: the current one).

        Lines with ``below`` are checked oldest first: the first whose ``below`` the version is
        under wins; a version past all of them (or none given) runs the current line.
        """
        if version is None or not self.kernels:
            return None
        try:
            key = release_key(self.name, version)
        except SpecplanError:
            return None  # a line named by word (llama-speculative, heuristic): the current kernels
        dated = [(release_key(self.name, spec.below), name) for name, spec in self.kernels.items()
                 if spec.below is not None and memory_class in spec.memory_classes]
        return next((name for below, name in sorted(dated) if key < below), None)

    def kernels_for(self, release: str | None = None, memory_class: MemoryClass | None = None) -> KernelSpec | None:
        """The quantised-kernel regime of a release line.

        Default: the first line listed for ``memory_class`` (the current one there; any
        class when None). A named line must run on that memory class.
        """
        if not self.kernels:
            return None
        runs = {k: v for k, v in self.kernels.items() if memory_class is None or memory_class in v.memory_classes}
        if release is None:
            return next(iter(runs.values()), None)
        if release not in runs:
            where = f" on {memory_class} memory" if memory_class else ""
            raise UnknownNameError(
                f"{self.label} has no kernel release line {release!r}{where}; known: {', '.join(runs) or 'none'}"
            )
        return runs[release]


@lru_cache(maxsize=1)
def engines() -> dict[str, EngineSpec]:
    """All engines of planner/engines.yaml, by name."""
    label = "planner/engines.yaml"
    doc = safe_load((files("planner") / "engines.yaml").read_text(encoding="utf-8"))
    out: dict[str, EngineSpec] = {}
    for position, raw in enumerate(doc["engines"], start=1):
        try:
            spec = EngineSpec.model_validate(raw)
        except ValidationError as err:
            raise CatalogError(format_validation_error(label, repr(raw.get("name", f"#{position}")), err)) from None
        out[spec.name] = spec
    return out


def engine_names() -> tuple[str, ...]:
    """Names accepted by --engine."""
    return tuple(engines())


def engine_spec(name: str) -> EngineSpec:
    """Look up an engine by name (a few spellings accepted)."""
    key = name.strip().lower().replace(".", "").replace("_", "")
    key = _ALIASES.get(key, key.replace("-", ""))
    table = engines()
    if key not in table:
        raise UnknownNameError(f"unknown engine {name!r}; {did_you_mean(name, table)}")
    return table[key]


def default_engine_for(vendor: str) -> EngineSpec:
    """The engine a user of this vendor's hardware most likely runs."""
    return engines()["llamacpp" if vendor in ("apple", "cpu") else "vllm"]


def check_engine_runs(engine: EngineSpec, vendor: str, gpu_name: str) -> None:
    """Refuse engine/hardware pairs the engine does not support."""
    if vendor not in engine.vendors:
        why = f": {engine.refuses[vendor]}" if vendor in engine.refuses else ""  # type: ignore[index]
        raise SpecplanError(
            f"{engine.label} does not run on {gpu_name} ({vendor}){why}; engines for it: "
            + ", ".join(e.name for e in engines().values() if vendor in e.vendors)
        )

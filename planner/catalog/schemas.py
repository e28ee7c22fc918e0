"""Pydantic schemas of the catalogue entries: accelerators and model architectures.

Every figure carries its unit in its name. Entries are frozen and forbid unknown
keys, so a typo in a YAML file fails validation instead of silently defaulting.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "Frozen",
    "Interconnect",
    "GPU_FIGURES",
    "GpuSpec",
    "MoESpec",
    "MLASpec",
    "ModelSpec",
    "ModelVariant",
    "ReleaseKind",
    "MemoryClass",
    "memory_class_of",
]

# "cpu": the host CPU planned as a device (--gpu cpu; planner/calibration/host.py builds its spec).
MemoryClass = Literal["hbm", "gddr", "unified", "cpu"]
# What a released checkpoint was trained to do: "base" (pre-trained), "instruct" (chat/instruct/-it
# post-training), "reasoning" (R1-style long chain-of-thought post-training), "draft" (trained to
# draft for speculative decoding: it pairs with every release of its targets).
ReleaseKind = Literal["base", "instruct", "reasoning", "draft"]


# No catalogue figure comes near this (the largest is a parameter count, ~1e13); a number past it is
# a typo or a hostile file (10**400 layers), and would overflow float arithmetic downstream.
MAX_CATALOG_NUMBER = 1e15


def _sane_number(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):  # compared as integers: a 400-digit int does not fit a float
        if abs(value) > int(MAX_CATALOG_NUMBER):
            raise ValueError(f"number out of range (at most {MAX_CATALOG_NUMBER:.0e})")
    elif isinstance(value, float):
        if not math.isfinite(value) or abs(value) > MAX_CATALOG_NUMBER:
            raise ValueError(f"number out of range (|x| must be finite and at most {MAX_CATALOG_NUMBER:.0e})")
    elif isinstance(value, (list, tuple)):
        for item in value:
            _sane_number(item)
    return value


class Frozen(BaseModel):
    """Base for immutable, strict data records; every number in them is finite and bounded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _numbers_in_range(cls, value: Any) -> Any:
        return _sane_number(value)


def _source_present(value: str | list[str]) -> str | list[str]:
    items = [value] if isinstance(value, str) else value
    if not items or not all(s.strip() for s in items):
        raise ValueError("every entry needs a non-empty source")
    return value


class Interconnect(Frozen):
    """GPU-to-GPU link as the vendor quotes it."""

    # ethernet: RDMA over the accelerator's own Ethernet ports (Intel Gaudi's RoCE v2)
    kind: Literal["nvlink", "nvlink-c2c", "infinity-fabric", "ethernet", "pcie", "none"]
    generation: str | None = Field(None, description="e.g. 'NVLink 4', 'PCIe 5.0 x16'")
    bandwidth_gb_s: float = Field(
        ge=0, description="aggregate bidirectional GB/s per GPU as quoted (NVLink 4: 900)"
    )

    @property
    def unidirectional_gb_s(self) -> float:
        """Bandwidth in one direction, GB/s: what an all-reduce step can push."""
        return self.bandwidth_gb_s / 2


def memory_class_of(memory_type: str) -> MemoryClass:
    """Map a memory technology name (HBM3e, GDDR6X, LPDDR5X, host DRAM...) to its class."""
    kind = memory_type.lower()
    if kind.startswith("host"):  # a CPU's own DRAM, reached by its cores (not a GPU's memory)
        return "cpu"
    if kind.startswith("hbm"):
        return "hbm"
    if kind.startswith("gddr"):
        return "gddr"
    if kind.startswith("lpddr") or kind.startswith("ddr") or "unified" in kind:
        return "unified"
    raise ValueError(f"unknown memory type {memory_type!r} (expected HBM*, GDDR*, LPDDR*, host*)")


# The figures of a GpuSpec that come from a datasheet, each of which needs a source.
GPU_FIGURES = (
    "memory_gib", "memory_bandwidth_gb_s", "fp32_tflops", "fp16_tensor_tflops", "fp8_tensor_tflops",
    "int8_tensor_tops", "fp4_tensor_tflops", "tdp_w", "interconnect", "usable_memory_gib",
)


def _figure_value(gpu: GpuSpec, figure: str) -> Any:
    return getattr(gpu, figure)


class GpuSpec(Frozen):
    """One accelerator model as sold, with dense (never sparse) peak figures."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    name: str
    aliases: list[str] = Field(default_factory=list, description="other names, incl. NVML's")
    vendor: Literal["nvidia", "amd", "apple", "intel", "cpu"]  # cpu: a host CPU, whoever made it
    family: str = Field(description="architecture, e.g. hopper, ada, rdna3, apple-m4")
    segment: Literal["datacenter", "workstation", "consumer"]
    memory_gib: float = Field(gt=0, description="installed memory as sold (vendor 'GB' of DRAM is GiB)")
    memory_options_gib: list[float] = Field(
        default_factory=list, description="other capacities the same chip is sold with (Apple)"
    )
    usable_memory_gib: float | None = Field(
        None, gt=0, description="what the driver reports as total (ECC/firmware carve-out removed)"
    )
    memory_type: str
    memory_bandwidth_gb_s: float = Field(gt=0, description="peak DRAM bandwidth, decimal GB/s")
    fp32_tflops: float | None = Field(None, gt=0, description="dense FP32 (non-tensor) peak")
    fp16_tensor_tflops: float | None = Field(None, gt=0, description="dense FP16/BF16 tensor peak")
    fp8_tensor_tflops: float | None = Field(None, gt=0, description="dense FP8 tensor peak")
    int8_tensor_tops: float | None = Field(None, gt=0, description="dense INT8 tensor peak, TOPS")
    fp4_tensor_tflops: float | None = Field(None, gt=0, description="dense FP4 tensor peak")
    tdp_w: float = Field(gt=0)
    interconnect: Interconnect
    source: str | list[str]
    figure_sources: dict[str, list[int]] = Field(
        default_factory=dict,
        description="figure field name -> 1-based positions in `source` of the items that give it "
        "(the catalogue test requires every figure the entry sets to be listed)",
    )
    weak_figures: list[str] = Field(
        default_factory=list,
        description="figures whose only sources are not vendor material (resellers, blogs, generated pages)",
    )
    notes: str | None = None

    _check_source = field_validator("source")(_source_present)

    @model_validator(mode="after")
    def _figure_sources_known(self) -> GpuSpec:
        items = 1 if isinstance(self.source, str) else len(self.source)
        for figure in (*self.figure_sources, *self.weak_figures):
            if figure not in GPU_FIGURES:
                raise ValueError(f"unknown figure {figure!r} (figures: {', '.join(GPU_FIGURES)})")
        for figure, positions in self.figure_sources.items():
            if not positions or not all(1 <= p <= items for p in positions):
                raise ValueError(f"figure_sources.{figure}: positions must be 1..{items} (items of source)")
        return self

    @property
    def unsourced_figures(self) -> list[str]:
        """Figures this entry sets that no item of ``source`` is listed for."""
        return [f for f in GPU_FIGURES if _figure_value(self, f) is not None and f not in self.figure_sources]

    @property
    def memory_class(self) -> MemoryClass:
        """HBM, GDDR or unified: selects default efficiencies and reserves."""
        return memory_class_of(self.memory_type)

    @property
    def capacity_gib(self) -> float:
        """Memory the driver exposes, GiB (usable figure when known, else as sold)."""
        return self.usable_memory_gib if self.usable_memory_gib is not None else self.memory_gib

    @property
    def names(self) -> list[str]:
        """Every string that should resolve to this entry."""
        return [self.id, self.name, *self.aliases]


class MoESpec(Frozen):
    """Mixture-of-experts layout of the MLP layers."""

    num_experts: int = Field(gt=1, description="routed experts per MoE layer")
    experts_per_token: int = Field(gt=0)
    expert_intermediate_size: int = Field(gt=0)
    num_shared_experts: int = Field(0, ge=0)
    shared_expert_intermediate_size: int = Field(
        0, ge=0, description="total width of the shared expert(s); 0 when none"
    )
    shared_expert_gate: bool = Field(False, description="Qwen2-MoE style sigmoid gate (d x 1)")
    first_dense_layers: int = Field(0, ge=0, description="leading dense layers (DeepSeek first_k_dense_replace)")
    router_bias: bool = Field(False, description="per-expert score-correction bias (DeepSeek-V3)")
    router_linear_bias: bool = Field(False, description="bias vector on the router projection (gpt-oss)")
    expert_bias: bool = Field(False, description="bias vectors on every expert projection (gpt-oss)")
    layer_step: int = Field(
        1, ge=1, description="every layer_step-th layer after the leading dense ones is MoE, the rest dense "
        "(Llama-4 interleave_moe_layer_step: Maverick 2, Scout 1)"
    )

    @model_validator(mode="after")
    def _topk_le_experts(self) -> MoESpec:
        if self.experts_per_token > self.num_experts:
            raise ValueError("experts_per_token exceeds num_experts")
        return self


class MLASpec(Frozen):
    """Multi-head latent attention (DeepSeek V2/V3): the KV cache holds a compressed latent."""

    q_lora_rank: int | None = Field(None, gt=0)
    kv_lora_rank: int = Field(gt=0)
    qk_nope_head_dim: int = Field(gt=0)
    qk_rope_head_dim: int = Field(gt=0)
    v_head_dim: int = Field(gt=0)


class ModelVariant(Frozen):
    """Another released repo of one catalogue architecture (an Instruct, -it, chat or R1 release).

    It shares every architecture figure of the entry it is listed under; only what is a
    property of the release itself may differ.
    """

    id: str = Field(description="Hugging Face repo id of the release")
    kind: ReleaseKind
    aliases: list[str] = Field(default_factory=list)
    max_context_tokens: int | None = Field(None, gt=0, description="when the release's config.json differs")
    tokenizer: str | None = Field(
        None, description="when the release changed its tokenizer (R1 distills renamed the special tokens)"
    )
    source: str | list[str]
    notes: str | None = None

    _check_source = field_validator("source")(_source_present)


class ModelSpec(Frozen):
    """Architecture footprint of one decoder-only model: what costs memory and bandwidth.

    ``id`` is the name every output prints: the Hugging Face repo id of a catalogue
    release, the Hub id exactly as the user typed it, or a local folder's absolute path
    (planner/catalog/lookup.py sets the last two). ``catalog_id`` is the catalogue release
    the figures came from (None for a checkpoint read from its own config.json).
    """

    id: str = Field(description="the model's name: Hugging Face repo id as given, or absolute path")
    aliases: list[str] = Field(default_factory=list)
    kind: ReleaseKind = Field("base", description="what the release was trained for")
    variant_of: str | None = Field(
        None, description="id of the catalogue entry whose architecture this release shares (set by the loader)"
    )
    catalog_id: str | None = Field(None, description="catalogue release these figures are (set by the loader)")
    family: str = Field(description="e.g. llama, qwen, gemma")
    generation: str = Field(description="e.g. '3.1', '2.5'")
    architecture: str = Field(description="HF model_type: llama, qwen2, qwen3_moe, deepseek_v3...")
    tokenizer: str = Field(description="identity of the tokenizer; equal strings = compatible pair")
    tokenizer_vocab_size: int = Field(gt=0, description="tokens the tokenizer can emit")
    tokenizer_base: str | None = Field(
        None, description="identity of the tokenizer whose token -> id map this one keeps, only appending after it"
    )
    tokenizer_base_vocab_size: int | None = Field(None, gt=0, description="ids shared with tokenizer_base (its size)")
    tokenizer_file: str | None = Field(None, description="tokenizer.json the identity was read from (local imports)")
    vocab_size: int = Field(gt=0, description="rows of the (padded) embedding matrix")
    num_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    intermediate_size: int = Field(gt=0, description="dense MLP width (Mixtral: the expert width)")
    mlp_gated: bool = Field(True, description="SwiGLU/GeGLU: three matrices instead of two")
    attention_bias: bool = Field(False, description="bias on q, k, v projections (Qwen2)")
    qk_norm: bool = Field(False, description="RMSNorm on q and k per head (Qwen3)")
    norms_per_layer: int = Field(2, ge=1, description="RMSNorm weight vectors per block (Gemma 2: 4)")
    sliding_window_tokens: int | None = Field(None, gt=0)
    sliding_window_layers: int = Field(
        0, ge=0, description="how many layers use the sliding window (the rest attend fully)"
    )
    chunked_attention_tokens: int | None = Field(
        None, gt=0, description="chunk of chunked local attention (Llama-4 attention_chunk_size), tokens"
    )
    chunked_attention_layers: int = Field(
        0, ge=0, description="how many layers attend only within their chunk (the rest attend fully)"
    )
    attention_sinks: bool = Field(False, description="one learned sink logit per head per layer (gpt-oss)")
    attention_out_bias: bool = Field(False, description="bias on the attention output projection")
    mlp_bias: bool = Field(False, description="bias on the dense MLP projections (OPT, GPT-BigCode, CodeGen)")
    lm_head_bias: bool = Field(False, description="bias vector on the output head (CodeGen)")
    norm_type: Literal["rms", "layer"] = Field("rms", description="LayerNorm also stores a bias vector")
    position_embedding_rows: int = Field(
        0, ge=0, description="rows of a learned absolute position table (OPT: max positions + 2; 0 = RoPE)"
    )
    word_embed_proj_dim: int | None = Field(
        None, gt=0, description="width of the token embedding when it differs from hidden_size (OPT-350m: 512), "
        "with a project_in and a project_out matrix between it and the blocks; None = hidden_size"
    )
    vision_params: int = Field(
        0, ge=0, description="parameters of a vision encoder and projector the engine loads beside the LM"
    )
    weight_format: str | None = Field(
        None, description="format the published checkpoint stores its weights in (planner/catalog/precisions.py "
        "name, e.g. mxfp4-moe, fp8-block); None = torch_dtype"
    )
    tie_word_embeddings: bool
    max_context_tokens: int = Field(gt=0)
    torch_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    moe: MoESpec | None = None
    mla: MLASpec | None = None
    total_params: int | None = Field(None, gt=0, description="published total parameter count")
    active_params: int | None = Field(None, gt=0, description="published active parameters per token (MoE)")
    source: str | list[str]
    notes: str | None = None

    _check_source = field_validator("source")(_source_present)

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.num_attention_heads % self.num_kv_heads:
            raise ValueError("num_attention_heads must be a multiple of num_kv_heads")
        if self.vocab_size < self.tokenizer_vocab_size:
            raise ValueError("vocab_size (embedding rows) is smaller than tokenizer_vocab_size")
        if (self.tokenizer_base is None) != (self.tokenizer_base_vocab_size is None):
            raise ValueError("tokenizer_base and tokenizer_base_vocab_size go together")
        if self.tokenizer_base_vocab_size is not None and self.tokenizer_base_vocab_size >= self.tokenizer_vocab_size:
            raise ValueError("tokenizer_base_vocab_size must be below tokenizer_vocab_size (tokens are appended)")
        if self.sliding_window_layers > self.num_layers:
            raise ValueError("sliding_window_layers exceeds num_layers")
        if self.sliding_window_layers and self.sliding_window_tokens is None:
            raise ValueError("sliding_window_layers set without sliding_window_tokens")
        if self.chunked_attention_layers + self.sliding_window_layers > self.num_layers:
            raise ValueError("chunked_attention_layers + sliding_window_layers exceeds num_layers")
        if self.chunked_attention_layers and self.chunked_attention_tokens is None:
            raise ValueError("chunked_attention_layers set without chunked_attention_tokens")
        return self

    @property
    def names(self) -> list[str]:
        """Every string that should resolve to this entry."""
        return [self.id, *self.aliases]

    @property
    def architecture_id(self) -> str:
        """The catalogue entry that holds this release's architecture (itself when it is that entry)."""
        return self.variant_of or self.catalog_id or self.id

    @property
    def is_moe(self) -> bool:
        """True for mixture-of-experts models."""
        return self.moe is not None

"""Serving engines as data: what they run, and how much memory they keep for themselves.

Each figure is the engine's documented default; the comment next to it says where
it comes from. The cost-model efficiencies of later issues belong here too.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from planner.catalog.names import did_you_mean
from planner.catalog.schemas import Frozen
from planner.errors import SpecplanError, UnknownNameError

__all__ = ["EngineSpec", "ENGINES", "ENGINE_NAMES", "engine_spec", "default_engine_for", "check_engine_runs"]

Vendor = Literal["nvidia", "amd", "apple", "intel"]
_FLOAT_AND_INT = ("bf16", "fp16", "fp8", "int8", "int4-awq", "int4-gptq")
_GGUF = ("bf16", "fp16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "q3_k_m", "q2_k")


class EngineSpec(Frozen):
    """One serving engine's defaults that matter for memory planning."""

    name: str
    label: str
    vendors: tuple[Vendor, ...]
    weight_formats: tuple[str, ...]
    kv_formats: tuple[str, ...]
    default_weight_format: str
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
    draft_shares_tp: bool = Field(description="draft is sharded over the target's GPUs by default")
    draft_own_workspace: bool = Field(
        False, description="the draft has its own compute buffers (added to the target's, not shared)"
    )
    source: str


ENGINES: dict[str, EngineSpec] = {
    e.name: e
    for e in (
        EngineSpec(
            name="vllm", label="vLLM", vendors=("nvidia", "amd"),
            weight_formats=_FLOAT_AND_INT, kv_formats=("fp16", "fp8"), default_weight_format="bf16",
            parallelism="tensor", memory_fraction=0.9, memory_fraction_flag="--gpu-memory-utilization",
            cuda_context_gib=1.0, prefill_chunk_tokens=8192, sliding_window_kv=True, draft_shares_tp=True,
            source="vLLM EngineArgs: gpu_memory_utilization=0.9, max_num_batched_tokens 8192 (V1 API "
                   "server); draft_tensor_parallel_size defaults to the target's tp; ~1 GiB for CUDA "
                   "context + CUDA graphs as logged at start-up",
        ),
        EngineSpec(
            name="sglang", label="SGLang", vendors=("nvidia", "amd"),
            weight_formats=_FLOAT_AND_INT, kv_formats=("fp16", "fp8"), default_weight_format="bf16",
            parallelism="tensor", memory_fraction=0.88, memory_fraction_flag="--mem-fraction-static",
            cuda_context_gib=1.0, prefill_chunk_tokens=8192, sliding_window_kv=True, draft_shares_tp=True,
            source="SGLang server_args: mem_fraction_static ~0.88 on 80 GB GPUs (set from GPU memory), "
                   "chunked_prefill_size 8192; STANDALONE draft runs on the target's tp group",
        ),
        EngineSpec(
            name="trtllm", label="TensorRT-LLM", vendors=("nvidia",),
            weight_formats=_FLOAT_AND_INT, kv_formats=("fp16", "fp8"), default_weight_format="bf16",
            parallelism="tensor", free_memory_fraction=0.9, cuda_context_gib=1.0,
            prefill_chunk_tokens=8192, sliding_window_kv=True, draft_shares_tp=True,
            source="TensorRT-LLM KvCacheConfig.free_gpu_memory_fraction=0.9 (of memory free after "
                   "weights and activations); max_num_tokens 8192",
        ),
        EngineSpec(
            name="llamacpp", label="llama.cpp", vendors=("nvidia", "amd", "apple", "intel"),
            weight_formats=_GGUF, kv_formats=("fp16", "q8_0", "q4_0"), default_weight_format="q4_k_m",
            parallelism="layer", cuda_context_gib=0.3, prefill_chunk_tokens=512,
            sliding_window_kv=True, draft_shares_tp=True, draft_own_workspace=True,
            source="llama.cpp common args: n_ubatch 512, --split-mode layer default; compute buffer "
                   "holds the ubatch logits in f32 (n_ubatch x n_vocab x 4 B); SWA cache for Gemma 2; the draft runs in its own llama_context with its own compute buffer",
        ),
        EngineSpec(
            name="hf", label="HF transformers", vendors=("nvidia", "amd", "apple"),
            weight_formats=("bf16", "fp16", "fp8", "int8", "int4-awq", "int4-gptq"), kv_formats=("fp16",),
            default_weight_format="bf16", parallelism="layer", cuda_context_gib=0.5,
            prefill_chunk_tokens=None, sliding_window_kv=False, draft_shares_tp=False,
            source="transformers generate(): DynamicCache grows on demand, whole prompt in one "
                   "forward, device_map='auto' splits layers; assistant model on one device",
        ),
    )
}

ENGINE_NAMES: tuple[str, ...] = tuple(ENGINES)


def engine_spec(name: str) -> EngineSpec:
    """Look up an engine by name."""
    key = name.strip().lower().replace(".", "").replace("-", "")
    aliases = {"tensorrtllm": "trtllm", "llama": "llamacpp", "transformers": "hf"}
    key = aliases.get(key, key)
    if key not in ENGINES:
        raise UnknownNameError(f"unknown engine {name!r}; {did_you_mean(name, ENGINE_NAMES)}")
    return ENGINES[key]


def default_engine_for(vendor: str) -> EngineSpec:
    """The engine a user of this vendor's hardware most likely runs."""
    return ENGINES["llamacpp"] if vendor == "apple" else ENGINES["vllm"]


def check_engine_runs(engine: EngineSpec, vendor: str, gpu_name: str) -> None:
    """Refuse engine/hardware pairs the engine does not support."""
    if vendor not in engine.vendors:
        raise SpecplanError(
            f"{engine.label} does not run on {gpu_name} ({vendor}); engines for it: "
            + ", ".join(e.name for e in ENGINES.values() if vendor in e.vendors)
        )

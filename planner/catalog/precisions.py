"""Number formats for weights and for the KV cache, with bits per element as published.

Bits per weight include the format's own scales and zero points, because that is
what occupies memory and crosses the memory bus. GGUF "mixes" (``_K_M``) store
different tensors in different block types; their figure is the whole-file
average llama.cpp publishes for Llama 2 7B (tools/quantize/README.md), which is
within ~2% for other dense models of that shape.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from planner.catalog.schemas import Frozen
from planner.errors import UnknownNameError
from planner.catalog.names import did_you_mean

__all__ = [
    "WeightFormat",
    "KvFormat",
    "WEIGHT_FORMATS",
    "KV_FORMATS",
    "weight_format",
    "kv_format",
]

ComputeDtype = Literal["fp16", "fp8", "int8", "fp4"]

_LLAMA_CPP_QUANT_README = ("ggml-org/llama.cpp tools/quantize/README.md at b11312 (commit 0c1e57098, the tree "
                           "llama-cpp-python 0.3.36 vendors), bits/weight table for meta-llama/Llama-3.1-8B")
_KQUANTS_PR = "ggml-org/llama.cpp PR #1684 'k-quants' (block layouts and bpw)"
_GGML_Q = "ggml-org/llama.cpp ggml/src/ggml-common.h (block_q8_0: 32 int8 + fp16 scale; block_q4_0: 32 nibbles + fp16 scale)"


class WeightFormat(Frozen):
    """How weights are stored: bits per weight and the tensor-core dtype they run on."""

    name: str
    aliases: tuple[str, ...] = ()
    bits_per_weight: float = Field(gt=0, description="average stored bits per weight incl. scales")
    compute_dtype: ComputeDtype = Field(description="which peak TFLOPS figure the matmuls use")
    kind: Literal["float", "int-quant", "gguf"]
    experts_only: bool = Field(
        False, description="only the routed experts are in this format; attention, router, shared expert, "
        "embeddings and norms stay 16-bit (openai/gpt-oss's MXFP4 checkpoints)"
    )
    source: str

    @property
    def bytes_per_weight(self) -> float:
        """Average stored bytes per weight."""
        return self.bits_per_weight / 8


class KvFormat(Frozen):
    """How K and V are stored in the cache: bits per element."""

    name: str
    aliases: tuple[str, ...] = ()
    bits_per_element: float = Field(gt=0)
    source: str

    @property
    def bytes_per_element(self) -> float:
        """Stored bytes per cached K or V element."""
        return self.bits_per_element / 8


def _int4_group_bits(group_size: int) -> float:
    """int4 weights with one fp16 scale and one packed 4-bit zero point per group, bits/weight."""
    return 4 + (16 + 4) / group_size


WEIGHT_FORMATS: tuple[WeightFormat, ...] = (
    WeightFormat(name="bf16", aliases=("bfloat16",), bits_per_weight=16, compute_dtype="fp16",
                 kind="float", source="IEEE/Google bfloat16: 16 bits"),
    WeightFormat(name="fp16", aliases=("float16", "f16", "half"), bits_per_weight=16, compute_dtype="fp16",
                 kind="float", source="IEEE 754 binary16: 16 bits"),
    WeightFormat(name="fp8", aliases=("float8", "fp8-e4m3", "f8"), bits_per_weight=8, compute_dtype="fp8",
                 kind="float", source="OCP FP8 E4M3; per-tensor or 128x128 block scales add <0.01 bit"),
    WeightFormat(name="int8", aliases=("w8a8", "w8a16"), bits_per_weight=8, compute_dtype="int8",
                 kind="int-quant", source="per-channel int8 (SmoothQuant / LLM.int8): 8 bits + negligible scales"),
    WeightFormat(name="int4-awq", aliases=("awq",), bits_per_weight=_int4_group_bits(128), compute_dtype="fp16",
                 kind="int-quant",
                 source="AWQ (Lin et al. 2023) group size 128: 4 bits + fp16 scale + 4-bit zero per 128 weights"),
    WeightFormat(name="int4-gptq", aliases=("gptq",), bits_per_weight=_int4_group_bits(128), compute_dtype="fp16",
                 kind="int-quant",
                 source="GPTQ (Frantar et al. 2022) group size 128: 4 bits + fp16 scale + packed 4-bit zero per group"),
    WeightFormat(name="q8_0", bits_per_weight=8.5, compute_dtype="int8", kind="gguf",
                 source=_GGML_Q + ": 34 bytes per 32 weights"),
    WeightFormat(name="q6_k", bits_per_weight=6.5633, compute_dtype="int8", kind="gguf",
                 source=_LLAMA_CPP_QUANT_README + ": Q6_K 6.5633; " + _KQUANTS_PR + " 6.5625"),
    WeightFormat(name="q5_k_m", bits_per_weight=5.7036, compute_dtype="int8", kind="gguf",
                 source=_LLAMA_CPP_QUANT_README + ": Q5_K_M 5.7036"),
    WeightFormat(name="q4_k_m", bits_per_weight=4.8944, compute_dtype="int8", kind="gguf",
                 source=_LLAMA_CPP_QUANT_README + ": Q4_K_M 4.8944"),
    WeightFormat(name="q4_0", bits_per_weight=4.5, compute_dtype="int8", kind="gguf",
                 source=_GGML_Q + ": 18 bytes per 32 weights"),
    WeightFormat(name="q3_k_m", bits_per_weight=3.9960, compute_dtype="int8", kind="gguf",
                 source=_LLAMA_CPP_QUANT_README + ": Q3_K_M 3.9960"),
    WeightFormat(name="q2_k", bits_per_weight=3.1593, compute_dtype="int8", kind="gguf",
                 source=_LLAMA_CPP_QUANT_README + ": Q2_K 3.1593 (a mix; the bare Q2_K block is 2.625)"),
)

KV_FORMATS: tuple[KvFormat, ...] = (
    KvFormat(name="fp16", aliases=("bf16", "f16", "float16", "bfloat16", "auto"), bits_per_element=16,
             source="16-bit K/V (engines' default)"),
    KvFormat(name="fp8", aliases=("fp8_e4m3", "fp8_e5m2", "fp8-e4m3"), bits_per_element=8,
             source="vLLM/SGLang/TensorRT-LLM fp8 KV cache: 8 bits, per-tensor scale"),
    KvFormat(name="q8_0", bits_per_element=8.5, source=_GGML_Q + " (llama.cpp --cache-type-k/v q8_0)"),
    KvFormat(name="q4_0", bits_per_element=4.5, source=_GGML_Q + " (llama.cpp --cache-type-k/v q4_0)"),
)


def _lookup(name: str, table: tuple[WeightFormat, ...] | tuple[KvFormat, ...], what: str) -> WeightFormat | KvFormat:
    key = name.strip().lower()
    for fmt in table:
        if key == fmt.name or key in fmt.aliases:
            return fmt
    choices = [fmt.name for fmt in table]
    raise UnknownNameError(f"unknown {what} {name!r}; {did_you_mean(name, choices)}")


def weight_format(name: str) -> WeightFormat:
    """Look up a weight format by name or alias (case-insensitive)."""
    fmt = _lookup(name, WEIGHT_FORMATS, "weight precision")
    assert isinstance(fmt, WeightFormat)
    return fmt


def kv_format(name: str) -> KvFormat:
    """Look up a KV-cache format by name or alias (case-insensitive)."""
    fmt = _lookup(name, KV_FORMATS, "KV-cache precision")
    assert isinstance(fmt, KvFormat)
    return fmt

"""Number formats for weights and for the KV cache, with bits per element as published.

Bits per weight include the format's own scales and zero points, because that is
what occupies memory and crosses the memory bus. GGUF "mixes" (``_K_M``) store
different tensors in different block types; their figure is the whole-file
average llama.cpp publishes for Llama 2 7B (tools/quantize/README.md), which is
within ~2% for other dense models of that shape.

Microscaled formats (MXFP4, NVFP4, block FP8) store a shared scale per block of
elements; their figure is the element width plus the scale spread over its block
(``_microscaled_bits``), exact from the block layout.
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
_OCP_MX = ("OCP Microscaling Formats (MX) Specification v1.0 (Open Compute Project, 2023-09), "
           "https://www.opencompute.org/documents/ocp-microscaling-formats-mx-v1-0-spec-final-pdf: MXFP4 = "
           "blocks of k=32 FP4 E2M1 elements sharing one E8M0 (8-bit power-of-two) scale")
_NVFP4 = ("NVIDIA technical blog 'Introducing NVFP4 for Efficient and Accurate Low-Precision Inference' (2025-06) "
          "and TensorRT Model Optimizer docs (NVFP4_DEFAULT_CFG: num_bits (2,1) E2M1, block_sizes 16, "
          "scale_bits (4,3)): FP4 E2M1 elements, one FP8 E4M3 scale per 16 elements, plus one FP32 scale per tensor")
_FP8_BLOCK = ("DeepSeek-V3 Technical Report (arXiv:2412.19437) section 3.3.2: FP8 E4M3 weights scaled per 128x128 "
              "block (activations 1x128 tiles); DeepSeek-V3 and Qwen3-*-FP8 config.json quantization_config "
              "{quant_method: fp8, fmt: e4m3, weight_block_size: [128, 128]}, one FP32 scale "
              "(weight_scale_inv) per block")
_GGML_MXFP4 = ("ggml-org/llama.cpp ggml/src/ggml-common.h block_mxfp4 (uint8 e (E8M0) + 16 bytes of nibbles = 17 "
               "bytes per QK_MXFP4=32 weights) and src/llama-quant.cpp LLAMA_FTYPE_MOSTLY_MXFP4_MOE (llama-quantize "
               "MXFP4_MOE: 3-D expert tensors -> MXFP4, every other tensor incl. output -> Q8_0)")


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
    non_expert_bits_per_weight: float = Field(
        16, gt=0, description="with experts_only: bits per weight of every tensor outside the routed experts "
        "(16 for gpt-oss's checkpoints; 8.5 for llama-quantize's MXFP4_MOE, which writes them as Q8_0)"
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


def _microscaled_bits(element_bits: int, scale_bits: int, block_elements: int) -> float:
    """Elements of ``element_bits`` sharing one ``scale_bits`` scale per ``block_elements``, bits/weight.

    Per-tensor scales (NVFP4's second FP32 level) add 32 bits per matrix, under 1e-5 bit per
    weight on any matrix of an LLM, and are left out.
    """
    return element_bits + scale_bits / block_elements


_FP4_E2M1_BITS = 4
_FP8_E4M3_BITS = 8
_E8M0_SCALE_BITS = 8
_FP32_SCALE_BITS = 32
_MX_BLOCK = 32  # OCP MX: k = 32 elements per shared scale
_NVFP4_BLOCK = 16
_FP8_BLOCK_ELEMENTS = 128 * 128
_Q8_0_BITS = 8.5  # block_q8_0: 34 bytes per 32 weights


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
    WeightFormat(name="fp8-block", aliases=("fp8-block128", "fp8-128x128"),
                 bits_per_weight=_microscaled_bits(_FP8_E4M3_BITS, _FP32_SCALE_BITS, _FP8_BLOCK_ELEMENTS),
                 compute_dtype="fp8", kind="float", source=_FP8_BLOCK),
    WeightFormat(name="mxfp4", bits_per_weight=_microscaled_bits(_FP4_E2M1_BITS, _E8M0_SCALE_BITS, _MX_BLOCK),
                 compute_dtype="fp4", kind="float",
                 source=_OCP_MX + "; every linear layer (compressed-tensors mxfp4-pack-quantized, AMD Quark "
                 "w_mxfp4_a_mxfp4), embeddings/lm_head/norms 16-bit"),
    # gpt-oss's experts run with BF16 activations by default (vLLM SM100_FI_MXFP4_BF16 / Marlin /
    # triton w4a16, SGLang likewise): the matmuls run at the 16-bit rate on every GPU.
    WeightFormat(name="mxfp4-moe", aliases=("mxfp4-experts",),
                 bits_per_weight=_microscaled_bits(_FP4_E2M1_BITS, _E8M0_SCALE_BITS, _MX_BLOCK),
                 compute_dtype="fp16", kind="float", experts_only=True,
                 source=_OCP_MX + "; openai/gpt-oss-20b/-120b config.json quantization_config {quant_method: "
                 "mxfp4, modules_to_not_convert: [model.layers.*.self_attn, model.layers.*.mlp.router, model.embed_tokens, "
                 "lm_head]}: routed experts "
                 "MXFP4, the rest BF16; vllm-project/vllm vllm/model_executor/layers/quantization/mxfp4.py "
                 "Mxfp4Config quantizes FusedMoE only (linear layers UnquantizedLinearMethod)"),
    WeightFormat(name="nvfp4", aliases=("modelopt-fp4",),
                 bits_per_weight=_microscaled_bits(_FP4_E2M1_BITS, _FP8_E4M3_BITS, _NVFP4_BLOCK),
                 compute_dtype="fp4", kind="float", source=_NVFP4 + "; every linear layer, embeddings/lm_head 16-bit"),
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
    WeightFormat(name="mxfp4_moe", aliases=("gguf-mxfp4", "mxfp4-gguf"),
                 bits_per_weight=_microscaled_bits(_FP4_E2M1_BITS, _E8M0_SCALE_BITS, _MX_BLOCK),
                 compute_dtype="int8", kind="gguf", experts_only=True, non_expert_bits_per_weight=_Q8_0_BITS,
                 source=_GGML_MXFP4 + "; ggml-org/gpt-oss-20b-GGUF / -120b-GGUF are this type"),
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

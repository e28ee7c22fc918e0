"""Read model, hardware, format and engine names as published sources write them.

The public rows name things the way their authors did ("Meta-Llama-3-8B", "NVIDIA GeForce
RTX 3060 12GB", "llama.cpp (llama-bench)"); these helpers find the catalogue entry with the
same architecture, or raise UnknownNameError so the row is skipped with that reason.
"""

from __future__ import annotations

import re
from functools import lru_cache

from planner.catalog.loading import model_catalog
from planner.catalog.lookup import find_gpu, find_model
from planner.catalog.precisions import WeightFormat, weight_format
from planner.catalog.schemas import GpuSpec, ModelSpec
from planner.engines import EngineSpec, engine_spec
from planner.errors import UnknownNameError

__all__ = ["source_model", "source_gpu", "source_format", "source_engine", "engine_name_in", "loop_version_in", "GPTFAST_INT4_G32",
           "GPTFAST_INT8_WO"]

# Model names in the sources that are catalogued under another id with the same architecture.
_SAME_ARCHITECTURE = {
    "meta-llama-3-8b": "llama-3.1-8b",  # Llama 3 and 3.1: identical shapes; 3.1 adds long-context RoPE
    "meta-llama-3-70b": "llama-3.1-70b",
    "llama3-70b": "llama-3.1-70b",
    "llama-2-7b": "meta-llama/Llama-2-7b-hf",
    "llama-2-13b": "meta-llama/Llama-2-13b-hf",
    "llama-2-70b": "meta-llama/Llama-2-70b-hf",
    "llama2-chat-13b": "meta-llama/Llama-2-13b-hf",
}
# gpt-fast's int4 weight-only quantisation: 4 bits + bf16 scale and zero per group of 32.
GPTFAST_INT4_G32 = WeightFormat(
    name="int4-g32", bits_per_weight=4 + 32 / 32, compute_dtype="fp16", kind="int-quant",
    source="pytorch-labs/gpt-fast quantize.py: groupwise int4, bf16 scales_and_zeros per 32 weights",
)
# gpt-fast's int8 weight-only quantisation: per-channel scales, matmuls in bf16.
GPTFAST_INT8_WO = WeightFormat(
    name="int8-weight-only", bits_per_weight=8, compute_dtype="fp16", kind="int-quant",
    source="pytorch-labs/gpt-fast quantize.py: WeightOnlyInt8QuantHandler, per-channel bf16 scales",
)
# Engine names in sources -> the engine entry whose kernels and overheads are closest.
_ENGINE_WORDS = (("llama.cpp", "llamacpp"), ("llama-speculative", "llamacpp"), ("llama-bench", "llamacpp"),
                 ("ollama", "llamacpp"), ("lm studio", "llamacpp"), ("mlx", "llamacpp"), ("exllama", "llamacpp"),
                 ("gpt-fast", "gptfast"), ("torch.compile", "gptfast"), ("lmdeploy", "trtllm"),
                 ("turbomind", "trtllm"), ("tensorrt", "trtllm"), ("trt-llm", "trtllm"), ("mlc", "trtllm"),
                 ("vllm", "vllm"), ("sglang", "sglang"), ("tgi", "vllm"), ("text-generation-inference", "vllm"),
                 ("spec-bench", "hf"), ("transformers", "hf"), ("huggingface", "hf"), ("pytorch", "hf"))


def _clean(name: str) -> str:
    name = re.sub(r"\(.*?\)", "", name)
    return re.sub(r"\s+", " ", name).strip()


def _model_candidates(name: str) -> list[str]:
    """Spellings of a source's model name that the catalogue may know."""
    base = _clean(name)
    dashed = base.replace(" ", "-")
    # Chat/instruct fine-tunes share the base model's architecture and tokenizer.
    bare = re.sub(r"-(instruct|chat|hf|it)$", "", dashed, flags=re.I)
    no_org = bare.rsplit("/", 1)[-1]
    no_meta = re.sub(r"^meta-", "", no_org, flags=re.I)
    return [base, dashed, bare, no_org, no_meta, _SAME_ARCHITECTURE.get(no_org.lower(), ""),
            _SAME_ARCHITECTURE.get(no_meta.lower(), "")]


@lru_cache(maxsize=None)
def source_model(name: str) -> ModelSpec:
    """The catalogue model with the architecture of a source's model name."""
    candidates = _model_candidates(name)
    for cand in filter(None, candidates):
        try:
            return find_model(cand).spec
        except UnknownNameError:
            continue
    tails = {m.id.rsplit("/", 1)[-1].lower(): m for m in model_catalog()}
    for cand in filter(None, candidates):
        if cand.lower() in tails:
            return tails[cand.lower()]
    raise UnknownNameError(f"model {name!r} is not in the catalogue")


@lru_cache(maxsize=None)
def source_gpu(name: str) -> GpuSpec:
    """The catalogue GPU a source's hardware name means ("one GCD" of an MI250X: half of it)."""
    base = _clean(name)
    without_memory = re.sub(r"\s*\d+\s*GB$", "", base)
    without_cores = re.sub(r"\s*\d+[- ]Core GPU.*$", "", without_memory, flags=re.I)
    variants = []
    for v in (base, without_memory, without_cores):
        for w in (v, re.sub(r"^(NVIDIA|AMD|Apple)\s+", "", v), re.sub(r"^(NVIDIA\s+)?GeForce\s+", "", v)):
            variants += [w, w.replace(" ", "-")]
    for cand in dict.fromkeys(variants):
        try:
            gpu = find_gpu(cand)
        except UnknownNameError:
            continue
        return _one_gcd(gpu) if "one GCD" in name else gpu
    raise UnknownNameError(f"hardware {name!r} is not in the catalogue")


def _one_gcd(gpu: GpuSpec) -> GpuSpec:
    """Half of a two-die MI250X: one GCD is what a single process sees."""
    halve = ("memory_gib", "memory_bandwidth_gb_s", "fp32_tflops", "fp16_tensor_tflops", "int8_tensor_tops", "tdp_w")
    return gpu.model_copy(update={f: getattr(gpu, f) / 2 for f in halve if getattr(gpu, f) is not None})


def source_format(quant: str | None) -> WeightFormat:
    """The weight format a source's quantization label names."""
    q = (quant or "fp16").lower()
    if "int4" in q and "32" in q:
        return GPTFAST_INT4_G32
    if q.startswith("int8"):
        return GPTFAST_INT8_WO if "weight-only" in q else weight_format("int8")
    if q in {"f16", "fp16", "base", "bf16", "float16", "bfloat16"} or "unquantized" in q:
        return weight_format("fp16")
    for word, fmt in (("awq", "int4-awq"), ("gptq", "int4-gptq"), ("fp8", "fp8"), ("4bit", "int4-awq"),
                      ("4-bit", "int4-awq"), ("int4", "int4-awq"), ("8bit", "int8"), ("8-bit", "int8")):
        if word in q:
            return weight_format(fmt)
    return weight_format(q.split()[0])


def engine_name_in(label: str | None) -> str:
    """The engine entry a source's engine words name (transformers when none is recognised)."""
    text = (label or "spec-bench").lower()
    return next((name for word, name in _ENGINE_WORDS if word in text), "hf")


_VERSION_WORDS = re.compile(r"\bv?(\d+\.\d+(?:\.\d+)?)\b")


def loop_version_in(label: str | None, engine: str) -> str | None:
    """The draft-loop release line (planner.draftloop) a source's engine words name; None: the newest.

    transformers "(heuristic)" / "(dynamic)" and Spec-Bench (whose SpS baseline runs assisted
    generation with the pre-4.45 defaults), llama.cpp's speculative example, vLLM releases.
    """
    text = (label or "spec-bench").lower()
    if engine == "hf":
        if "dynamic" in text:
            return "4.45"
        return "heuristic" if "heuristic" in text or "spec-bench" in text or "sps" in text else None
    if engine == "llamacpp":
        return "llama-speculative" if "speculative example" in text or "llama-speculative" in text else None
    if engine == "vllm":
        if "v0 era" in text:
            return "0.6.0"
        found = _VERSION_WORDS.search(text)
        return found.group(1) if found else None
    return None


def source_engine(label: str | None) -> EngineSpec:
    """The engine entry a source's engine words name."""
    return engine_spec(engine_name_in(label))

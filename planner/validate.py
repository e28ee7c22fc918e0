"""Compare the cost model with published measurements (planner/data/measurements.yaml).

Two kinds of rows are checked:
* decode throughput (section A): single-stream tokens/s of a model on a GPU group;
* speculative speedup (section B): rows that name a catalogued draft model and give
  k and an acceptance figure (per-token alpha, accepted/proposed rate, or mean
  accepted tokens per round).
Rows the model cannot express (EAGLE/Medusa heads, n-gram lookup, unknown hardware)
are listed as skipped with the reason, never silently dropped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from collections.abc import Callable
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from planner.catalog.loading import model_catalog, safe_load
from planner.catalog.lookup import find_gpu, find_model
from planner.catalog.precisions import WeightFormat, weight_format
from planner.catalog.schemas import GpuSpec, ModelSpec
from planner.costmodel import decode_cost, device_profile, model_profile, roofline_decode_s, verify_cost
from planner.catalog.precisions import kv_format
from planner.engines import EngineSpec, engine_spec
from planner.errors import SpecplanError, UnknownNameError
from planner.inputs import read_yaml, shown
from planner import speedup as sp

__all__ = ["Check", "ValidationReport", "load_measurements", "validate", "median_abs_error"]

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
_GPTFAST_INT4_G32 = WeightFormat(
    name="int4-g32", bits_per_weight=4 + 32 / 32, compute_dtype="fp16", kind="int-quant",
    source="pytorch-labs/gpt-fast quantize.py: groupwise int4, bf16 scales_and_zeros per 32 weights",
)
# gpt-fast's int8 weight-only quantisation: per-channel scales, matmuls in bf16.
_GPTFAST_INT8_WO = WeightFormat(
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
_SPECBENCH_SPS_K = 5  # transformers assisted generation starts at num_assistant_tokens=5 (heuristic schedule)
_DEFAULT_CONTEXT = 256  # tokens cached on average when a source gives no prompt/output lengths


@dataclass(frozen=True)
class Check:
    """One compared figure."""

    row: str
    kind: str  # "decode" (tokens/s) or "speedup"
    what: str
    measured: float
    predicted: float
    roofline: float | None = None
    note: str = ""

    @property
    def error(self) -> float:
        """Signed relative error of the prediction, (predicted - measured) / measured."""
        return (self.predicted - self.measured) / self.measured

    @property
    def roofline_error(self) -> float | None:
        """Signed relative error of the pure roofline prediction."""
        return None if self.roofline is None else (self.roofline - self.measured) / self.measured


@dataclass(frozen=True)
class ValidationReport:
    """All checks plus the rows that could not be modelled."""

    checks: tuple[Check, ...]
    skipped: tuple[tuple[str, str], ...]

    def of_kind(self, kind: str) -> list[Check]:
        """Checks of one kind."""
        return [c for c in self.checks if c.kind == kind]


def median_abs_error(values: list[float]) -> float:
    """Median of |relative error| (NaN for an empty list)."""
    return float(np.median(np.abs(values))) if values else float("nan")


_SECTIONS = ("A_decode_throughput", "B_speculative_decoding")
_TEXT_FIELDS = ("id", "model", "hardware", "engine", "quant", "target", "draft", "method", "precision")
_RATE_FIELDS = ("alpha", "acceptance_rate")
_POSITIVE_FIELDS = ("decode_tok_s", "output_throughput_tok_s", "tok_s_spec", "tok_s_baseline", "speedup_overall",
                    "mean_accepted_tokens", "mean_accepted_length", "mean_accepted_per_round")
_REQUIRED = {"A_decode_throughput": ("id", "model", "hardware"), "B_speculative_decoding": ("id", "target")}
_COUNT_FIELDS = {"n_gpus": (1, 4096), "k": (1, sp.K_MAX), "prompt_tokens": (0, 10**9), "output_tokens": (0, 10**9)}


def load_measurements(path: str | Path | None = None) -> dict[str, Any]:
    """The published measurements (the packaged copy unless a path is given); every row's fields checked."""
    if path:
        label, doc = str(path), read_yaml(path, "--measurements")
    else:
        label, doc = "measurements.yaml", safe_load((files("planner") / "data" / "measurements.yaml").read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise SpecplanError(f"{label}: expected a mapping with sections {' and '.join(_SECTIONS)}")
    for section in _SECTIONS:
        rows = doc.get(section, [])
        if not isinstance(rows, list):
            raise SpecplanError(f"{label}: {section}: expected a list of rows")
        for n, row in enumerate(rows, start=1):
            _check_row(row, f"{label}: {section} row {n}", _REQUIRED[section])
    return doc


def _check_row(row: Any, where: str, required: tuple[str, ...]) -> None:
    """Refuse a row whose fields have the wrong type or an impossible value (NaN, negative, alpha > 1)."""
    if not isinstance(row, dict):
        raise SpecplanError(f"{where}: expected a mapping of fields")
    for field in required:
        if not isinstance(row.get(field), str) or not row[field].strip():
            raise SpecplanError(f"{where}: field {field}: missing (expected text)")

    def bad(field: str, expected: str) -> SpecplanError:
        return SpecplanError(f"{where}: field {field}: expected {expected}, got {shown(row[field], 40)}")

    def number(value: Any) -> bool:
        # Ints beyond float range count as not a number (math.isfinite(10**400) raises OverflowError).
        if isinstance(value, int) and not isinstance(value, bool):
            return abs(value) < 2**1000
        return isinstance(value, float) and math.isfinite(value)

    for field in _TEXT_FIELDS:
        if row.get(field) is not None and not isinstance(row[field], str):
            raise bad(field, "text")
    for field in _RATE_FIELDS:
        if row.get(field) is not None and not (number(row[field]) and 0 <= row[field] <= 1):
            raise bad(field, "a number from 0 to 1")
    for field in _POSITIVE_FIELDS:
        if row.get(field) is not None and not (number(row[field]) and row[field] > 0):
            raise bad(field, "a positive number")
    for field, (low, high) in _COUNT_FIELDS.items():
        value = row.get(field)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
            raise bad(field, f"a whole number from {low} to {high}")
    tg = row.get("tg_tok_s")
    if tg is not None and not (isinstance(tg, dict) and all(
            isinstance(key, str) and re.fullmatch(r"n[0-9]{1,7}", key) and (v is None or (number(v) and v > 0))
            for key, v in tg.items())):
        raise bad("tg_tok_s", "a mapping nN -> positive tokens/s")


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
def _model(name: str) -> ModelSpec:
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
def _gpu(name: str) -> GpuSpec:
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


def _format(quant: str | None) -> WeightFormat:
    """The weight format a source's quantization label names."""
    q = (quant or "fp16").lower()
    if "int4" in q and "32" in q:
        return _GPTFAST_INT4_G32
    if q.startswith("int8"):
        return _GPTFAST_INT8_WO if "weight-only" in q else weight_format("int8")
    if q in {"f16", "fp16", "base", "bf16", "float16", "bfloat16"} or "unquantized" in q:
        return weight_format("fp16")
    for word, fmt in (("awq", "int4-awq"), ("gptq", "int4-gptq"), ("fp8", "fp8"), ("4bit", "int4-awq"),
                      ("4-bit", "int4-awq"), ("int4", "int4-awq"), ("8bit", "int8"), ("8-bit", "int8")):
        if word in q:
            return weight_format(fmt)
    return weight_format(q.split()[0])


def _engine(label: str | None) -> EngineSpec:
    text = (label or "spec-bench").lower()
    for word, name in _ENGINE_WORDS:
        if word in text:
            return engine_spec(name)
    return engine_spec("hf")


def _decode_tok_s(model: ModelSpec, fmt: WeightFormat, gpu: GpuSpec, engine: EngineSpec, gpus: int,
                  context: float, sampling: bool) -> float:
    shard = gpus if engine.parallelism == "tensor" else 1
    profile = model_profile(model, fmt, kv_format("fp16"), shard)
    device = device_profile(gpu, engine, gpus, role="target" if sampling else "bench")
    return 1.0 / float(decode_cost(profile, device, 1, context).total_s)


def _roofline_tok_s(model: ModelSpec, fmt: WeightFormat, gpu: GpuSpec, gpus: int, tensor: bool, context: float) -> float:
    profile = model_profile(model, fmt, kv_format("fp16"), gpus if tensor else 1)
    return 1.0 / roofline_decode_s(profile, gpu, context)


def _decode_points(row: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(label, measured tokens/s, mean context) for each figure a section-A row gives."""
    if isinstance(row.get("tg_tok_s"), dict):
        # llama-bench "tg N" averages N generated tokens from an empty cache.
        return [(f"tg{k[1:]}", float(v), int(k[1:]) / 2) for k, v in row["tg_tok_s"].items() if v is not None]
    if row.get("decode_tok_s") is not None:
        return [("decode", float(row["decode_tok_s"]), _DEFAULT_CONTEXT)]
    if row.get("output_throughput_tok_s") is not None:
        ctx = (row.get("prompt_tokens") or 0) + (row.get("output_tokens") or 0) / 2
        return [("decode", float(row["output_throughput_tok_s"]), ctx)]
    return []


def _check_decode(row: dict[str, Any]) -> list[Check]:
    model, gpu, engine = _model(row["model"]), _gpu(row["hardware"]), _engine(row.get("engine"))
    fmt, gpus = _format(row.get("quant")), int(row.get("n_gpus") or 1)
    tensor = engine.parallelism == "tensor"
    sampling = "llama-bench" not in str(row.get("engine"))  # llama-bench times the forward pass only
    out = []
    for label, measured, ctx in _decode_points(row):
        out.append(Check(
            row=row["id"], kind="decode", what=f"{model.id} {fmt.name} {gpus}x{gpu.id} {engine.name} {label}",
            measured=measured, predicted=_decode_tok_s(model, fmt, gpu, engine, gpus, ctx, sampling),
            roofline=_roofline_tok_s(model, fmt, gpu, gpus, tensor, ctx),
        ))
    return out


def _acceptance(row: dict[str, Any], k: int) -> float:
    """Per-token alpha from whichever acceptance figure the row gives."""
    if row.get("alpha") is not None:
        return float(row["alpha"])
    if row.get("acceptance_rate") is not None:
        return float(sp.alpha_from_acceptance_rate(float(row["acceptance_rate"]), k))
    mean = row.get("mean_accepted_tokens") or row.get("mean_accepted_length") or row.get("mean_accepted_per_round")
    if mean is None:
        raise SpecplanError("no acceptance figure")
    return _alpha_from_mean_length(float(mean), k)


def _alpha_from_mean_length(mean: float, k: int) -> float:
    """Per-token alpha from mean tokens per round: E[L] = 1 + k * (accepted/proposed)."""
    return float(sp.alpha_from_acceptance_rate((mean - 1.0) / k, k))


def _measured_speedup(row: dict[str, Any]) -> float:
    if row.get("tok_s_spec") and row.get("tok_s_baseline"):
        return float(row["tok_s_spec"]) / float(row["tok_s_baseline"])
    value = row.get("speedup_overall", row.get("speedup_reported"))
    if isinstance(value, (int, float)):
        return float(value)
    raise SpecplanError("no numeric speedup")


def _draft_name(row: dict[str, Any]) -> str:
    draft = str(row.get("draft") or "")
    if "SpS" in str(row.get("method")) or "vicuna-68m" in draft.lower() or "MCSD" in draft:
        return "double7/vicuna-68m"  # Spec-Bench's SpS draft
    return re.split(r"\s+(?:Q\d|\(|-ngl)", draft)[0]


def _check_speedup(row: dict[str, Any]) -> Check:
    target = _model(re.sub(r"\s+(Q\d\S*|int4.*|fp16)$", "", str(row["target"]), flags=re.I))
    draft = _model(_draft_name(row))
    gpu, engine = _gpu(str(row.get("hardware"))), _engine(row.get("engine") or row.get("method"))
    k = int(row["k"]) if row.get("k") else _SPECBENCH_SPS_K
    note = "" if row.get("k") else f"k={k}: Spec-Bench SpS runs transformers' default num_assistant_tokens"
    fmt = _format(row.get("precision") or _quant_in(str(row["target"])))
    dfmt = _format(_quant_in(str(row.get("draft"))) or row.get("precision"))
    alpha = _acceptance(row, k)
    dev = device_profile(gpu, engine, 1)
    tp, dp = model_profile(target, fmt, kv_format("fp16")), model_profile(draft, dfmt, kv_format("fp16"))
    t_t = float(decode_cost(tp, dev, 1, _DEFAULT_CONTEXT).total_s)
    t_d = float(decode_cost(dp, device_profile(gpu, engine, 1, role="draft"), 1, _DEFAULT_CONTEXT).total_s)
    t_v = float(verify_cost(tp, dev, k, 1, _DEFAULT_CONTEXT).total_s)
    predicted = float(sp.speedup(alpha, k, t_d / t_t, t_v / t_t))
    # A pure roofline prices the draft by its bytes alone (c = bytes ratio) and verification as free.
    c_roof = roofline_decode_s(dp, gpu, _DEFAULT_CONTEXT) / roofline_decode_s(tp, gpu, _DEFAULT_CONTEXT)
    return Check(row=row["id"], kind="speedup", what=f"{target.id} + {draft.id} k={k} alpha={alpha:.3f} on {gpu.id} {engine.name}",
                 measured=_measured_speedup(row), predicted=predicted, roofline=float(sp.speedup(alpha, k, c_roof, 1.0)),
                 note=note)


def _quant_in(text: str) -> str | None:
    m = re.search(r"\b(Q\d_K_[SML]|Q\d_K|Q\d_0|F16|BF16|int4|int8)\b", text, flags=re.I)
    return m.group(1) if m else None


def validate(doc: dict[str, Any] | None = None, progress: Callable[[int, int], None] | None = None) -> ValidationReport:
    """Predict every usable published row and compare; ``progress(done, total)`` is called after each row."""
    doc = doc if doc is not None else load_measurements()
    checks: list[Check] = []
    skipped: list[tuple[str, str]] = []
    decode_rows, spec_rows = doc.get("A_decode_throughput", []), doc.get("B_speculative_decoding", [])
    total = len(decode_rows) + len(spec_rows)
    for done, row in enumerate(decode_rows, start=1):
        try:
            checks.extend(_check_decode(row))
        except SpecplanError as exc:
            skipped.append((row.get("id", "?"), str(exc)))
        if progress:
            progress(done, total)
    for done, row in enumerate(spec_rows, start=len(decode_rows) + 1):
        if progress:
            progress(done, total)
        reason = _unmodelled(row)
        if reason:
            skipped.append((row.get("id", "?"), reason))
            continue
        try:
            checks.append(_check_speedup(row))
        except SpecplanError as exc:
            skipped.append((row.get("id", "?"), str(exc)))
    return ValidationReport(tuple(checks), tuple(skipped))


def _unmodelled(row: dict[str, Any]) -> str | None:
    method = str(row.get("method", "")).lower()
    if not ("draft" in method or "sps" in method or "speculative sampling" in method):
        return f"method {row.get('method')!r} is not a separate draft model"
    if row.get("draft") is None or "not stated" in str(row.get("draft")) or "not named" in str(row.get("draft")):
        return "draft model not named"
    if not any(row.get(f) is not None for f in ("alpha", "acceptance_rate", "mean_accepted_tokens",
                                                   "mean_accepted_length", "mean_accepted_per_round")):
        return "no acceptance figure (alpha, accepted/proposed or mean accepted length)"
    return None

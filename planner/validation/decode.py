"""Single-stream decode tokens/s (measurements.yaml section A) against the cost model.

Each figure is priced with the cost model's public functions (model_profile, device_profile,
decode_cost) exactly as in earlier releases, so the decode numbers stay comparable over time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from planner.catalog.precisions import WeightFormat, kv_format
from planner.catalog.schemas import GpuSpec, ModelSpec
from planner.costmodel import baseline_step_s, decode_cost, device_profile, model_profile, roofline_decode_s
from planner.engines import EngineSpec
from planner.validation.names import source_engine, source_format, source_gpu, source_model

__all__ = ["Check", "check_decode", "DEFAULT_CONTEXT"]

DEFAULT_CONTEXT = 256  # tokens cached on average when a source gives no prompt/output lengths


@dataclass(frozen=True)
class Check:
    """One compared figure."""

    row: str
    kind: str  # "decode" (tokens/s)
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


def _decode_tok_s(model: ModelSpec, fmt: WeightFormat, gpu: GpuSpec, engine: EngineSpec, gpus: int,
                  context: float, sampling: bool) -> float:
    """Predicted tokens/s of one sequence (1 / decode step time)."""
    shard = gpus if engine.parallelism == "tensor" else 1
    profile = model_profile(model, fmt, kv_format("fp16"), shard)
    device = device_profile(gpu, engine, gpus, role="target" if sampling else "bench")
    return 1.0 / float(baseline_step_s(decode_cost(profile, device, 1, context).total_s, device))


def _roofline_tok_s(model: ModelSpec, fmt: WeightFormat, gpu: GpuSpec, gpus: int, tensor: bool, context: float) -> float:
    """Pure roofline tokens/s: bytes / peak bandwidth, nothing else."""
    profile = model_profile(model, fmt, kv_format("fp16"), gpus if tensor else 1)
    return 1.0 / roofline_decode_s(profile, gpu, context)


def _decode_points(row: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(label, measured tokens/s, mean context) for each figure a section-A row gives."""
    if isinstance(row.get("tg_tok_s"), dict):
        # llama-bench "tg N" averages N generated tokens from an empty cache.
        return [(f"tg{k[1:]}", float(v), int(k[1:]) / 2) for k, v in row["tg_tok_s"].items() if v is not None]
    if row.get("decode_tok_s") is not None:
        return [("decode", float(row["decode_tok_s"]), DEFAULT_CONTEXT)]
    if row.get("output_throughput_tok_s") is not None:
        ctx = (row.get("prompt_tokens") or 0) + (row.get("output_tokens") or 0) / 2
        return [("decode", float(row["output_throughput_tok_s"]), ctx)]
    return []


def check_decode(row: dict[str, Any]) -> list[Check]:
    """Every decode figure of a section-A row, predicted and by pure roofline."""
    model, gpu, engine = source_model(row["model"]), source_gpu(row["hardware"]), source_engine(row.get("engine"))
    fmt, gpus = source_format(row.get("quant")), int(row.get("n_gpus") or 1)
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

"""Exact parameter counts and dtypes from safetensors headers, without reading weights.

Format (huggingface safetensors, "Metadata Parsing"): 8-byte little-endian header
length N, then N bytes of JSON mapping tensor names to dtype, shape and offsets.
"""

from __future__ import annotations

import json
import math
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from planner.errors import ConfigImportError

__all__ = ["CheckpointSummary", "read_safetensors_header", "summarize_checkpoint"]

_MAX_HEADER_BYTES = 100_000_000  # the reference implementation refuses larger headers
_HEADER_LEN_BYTES = 8

_DTYPE_BYTES = {
    "F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2,
    "F8_E4M3": 1, "F8_E5M2": 1, "E8M0": 1, "I8": 1, "U8": 1, "BOOL": 1,
}
_DTYPE_NAMES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32", "F8_E4M3": "fp8", "F8_E5M2": "fp8"}


@dataclass(frozen=True)
class CheckpointSummary:
    """What the safetensors headers say about a checkpoint."""

    total_params: int | None
    total_bytes: int
    dtype: str | None
    has_lm_head: bool | None
    source: str


def read_safetensors_header(path: Path) -> dict[str, dict]:
    """The JSON header of one .safetensors file (tensor name -> dtype/shape/offsets)."""
    try:
        with path.open("rb") as f:
            raw = f.read(_HEADER_LEN_BYTES)
            if len(raw) != _HEADER_LEN_BYTES:
                raise ConfigImportError(f"{path}: not a safetensors file (shorter than 8 bytes)")
            (n,) = struct.unpack("<Q", raw)
            if n > _MAX_HEADER_BYTES:
                raise ConfigImportError(f"{path}: safetensors header of {n} bytes is implausible")
            header = json.loads(f.read(n))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigImportError(f"{path}: unreadable safetensors header: {exc}") from None
    if not isinstance(header, dict):
        raise ConfigImportError(f"{path}: safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    return header


def _summarize_headers(headers: list[dict[str, dict]], label: str) -> CheckpointSummary:
    params = 0
    total_bytes = 0
    by_dtype: Counter[str] = Counter()
    names: set[str] = set()
    for header in headers:
        for name, info in header.items():
            count = math.prod(info["shape"])
            begin, end = info["data_offsets"]
            params += count
            total_bytes += end - begin
            by_dtype[info["dtype"]] += end - begin
            names.add(name)
    quantized = any(n.endswith(("qweight", "_blocks", "weight_packed")) for n in names)
    dtype = by_dtype.most_common(1)[0][0] if by_dtype else None
    return CheckpointSummary(
        total_params=None if quantized else params,
        total_bytes=total_bytes,
        dtype=_DTYPE_NAMES.get(dtype, dtype.lower()) if dtype else None,
        has_lm_head=any(n.endswith("lm_head.weight") for n in names),
        source=label,
    )


def summarize_checkpoint(folder: Path) -> CheckpointSummary | None:
    """Summarize the safetensors checkpoint in ``folder``; None when there is none.

    Quantized checkpoints pack several weights per stored element, so their element
    count is not a parameter count: total_params is None there and bytes are exact.
    """
    index = folder / "model.safetensors.index.json"
    shards = sorted(folder.glob("*.safetensors"))
    if shards:
        return _summarize_headers([read_safetensors_header(p) for p in shards], f"safetensors headers in {folder}")
    if index.is_file():
        try:
            doc = json.loads(index.read_text(encoding="utf-8"))
            total = int(doc["metadata"]["total_size"])
            weight_map = doc["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigImportError(f"{index}: field metadata.total_size/weight_map: {exc}") from None
        has_lm_head = any(n.endswith("lm_head.weight") for n in weight_map)
        return CheckpointSummary(None, total, None, has_lm_head, f"{index.name} (shards absent)")
    return None

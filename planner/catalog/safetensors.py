"""Exact parameter counts and dtypes from safetensors headers, without reading weights.

Format (huggingface safetensors, "Metadata Parsing"): 8-byte little-endian header
length N, then N bytes of JSON mapping tensor names to dtype, shape and offsets.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planner.errors import ConfigImportError, SpecplanError
from planner.inputs import parse_json, read_head, read_json, shown

__all__ = ["CheckpointSummary", "read_safetensors_header", "summarize_checkpoint"]

_MAX_HEADER_BYTES = 100_000_000  # the reference implementation refuses larger headers
_HEADER_LEN_BYTES = 8
_MAX_PARAMS = 10**14  # 100 trillion: 50x the largest published checkpoint; more is a corrupt header

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
    """The JSON header of one .safetensors file (tensor name -> dtype/shape/offsets), checked.

    Only the header is read (a regular file of any size); every tensor entry must have a
    string dtype, a shape of non-negative integers and data offsets inside the file.
    """
    head, size = read_head(path, _HEADER_LEN_BYTES)
    if len(head) != _HEADER_LEN_BYTES:
        raise ConfigImportError(f"{path}: not a safetensors file (shorter than 8 bytes)")
    (n,) = struct.unpack("<Q", head)
    if n > _MAX_HEADER_BYTES:
        raise ConfigImportError(f"{path}: safetensors header of {n} bytes is implausible")
    if n > size - _HEADER_LEN_BYTES:
        raise ConfigImportError(f"{path}: safetensors header length {n} runs past the end of the {size}-byte file")
    raw, _ = read_head(path, _HEADER_LEN_BYTES + n)
    try:
        header = parse_json(raw[_HEADER_LEN_BYTES:], f"{path}: safetensors header")
    except SpecplanError as exc:
        raise ConfigImportError(str(exc)) from None
    if not isinstance(header, dict):
        raise ConfigImportError(f"{path}: safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    data_bytes = size - _HEADER_LEN_BYTES - n
    for name, info in header.items():
        _check_entry(path, name, info, data_bytes)
    return header


def _check_entry(path: Path, name: str, info: Any, data_bytes: int) -> None:
    where = f"{path}: tensor {shown(name, 60)}"
    if not isinstance(info, dict):
        raise ConfigImportError(f"{where}: expected an object with dtype, shape and data_offsets")
    if not isinstance(info.get("dtype"), str):
        raise ConfigImportError(f"{where}: field dtype: expected a string")
    shape, offsets = info.get("shape"), info.get("data_offsets")
    if not isinstance(shape, list) or not all(_natural(d) for d in shape):
        raise ConfigImportError(f"{where}: field shape: expected a list of non-negative integers")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_natural(o) for o in offsets)
            or offsets[0] > offsets[1]):
        raise ConfigImportError(f"{where}: field data_offsets: expected [begin, end] with 0 <= begin <= end")
    if offsets[1] > data_bytes:
        raise ConfigImportError(
            f"{where}: data_offsets end {offsets[1]} is past the {data_bytes} data bytes in the file (truncated?)"
        )


def _natural(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


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
    if params > _MAX_PARAMS:
        raise ConfigImportError(f"{label}: {params} parameters is implausible (over {_MAX_PARAMS:.0e}): a corrupt header")
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
    if index.exists():
        doc = read_json(index)
        meta = doc.get("metadata") if isinstance(doc, dict) else None
        total = meta.get("total_size") if isinstance(meta, dict) else None
        weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
        if not _natural(total) or total > _MAX_PARAMS * 8:
            raise ConfigImportError(f"{index}: field metadata.total_size: expected a byte count, got {shown(total, 40)}")
        if not isinstance(weight_map, dict):
            raise ConfigImportError(f"{index}: field weight_map: expected an object of tensor name -> file")
        has_lm_head = any(n.endswith("lm_head.weight") for n in weight_map)
        return CheckpointSummary(None, total, None, has_lm_head, f"{index.name} (shards absent)")
    return None

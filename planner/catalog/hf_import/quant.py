"""The weight format a checkpoint's quantization_config names (planner/catalog/precisions.py names)."""

from __future__ import annotations

from typing import Any

from planner.errors import ConfigImportError

__all__ = ["checkpoint_format"]

_BY_METHOD = {"awq": "int4-awq", "gptq": "int4-gptq"}
_NVFP4_GROUP = 16  # NVFP4: 4-bit E2M1 values, one FP8 scale per 16 (modelopt / compressed-tensors nvfp4)


def _compressed_tensors(q: dict[str, Any]) -> str | None:
    """compressed-tensors: NVFP4 is 4-bit "float" weights in groups of 16; 8-bit float is FP8."""
    groups = q.get("config_groups")
    if not isinstance(groups, dict):
        return None
    for group in groups.values():
        w = group.get("weights") if isinstance(group, dict) else None
        if not isinstance(w, dict) or w.get("type") != "float":
            continue
        if w.get("num_bits") == 4 and w.get("group_size") == _NVFP4_GROUP:
            return "nvfp4"
        if w.get("num_bits") == 8:
            return "fp8-block" if w.get("strategy") == "block" else "fp8"
    return None


def checkpoint_format(q: Any, label: str, is_moe: bool) -> str | None:
    """Format name for a ``quantization_config`` (None when absent or not one specplan models).

    gpt-oss's mxfp4 quantizes the routed experts only (its modules_to_not_convert lists the
    attention, router, embeddings and lm_head): ``mxfp4-moe`` for a MoE, ``mxfp4`` for a dense
    model. DeepSeek-V3 style fp8 with ``weight_block_size`` is ``fp8-block``.
    """
    if q is None:
        return None
    if not isinstance(q, dict):
        raise ConfigImportError(f"{label}: field quantization_config: expected an object")
    method = q.get("quant_method")
    if method is not None and not isinstance(method, str):
        raise ConfigImportError(f"{label}: field quantization_config.quant_method: expected a string")
    method = (method or "").lower()
    if method == "mxfp4":
        return "mxfp4-moe" if is_moe else "mxfp4"
    if method == "fp8":
        return "fp8-block" if q.get("weight_block_size") else "fp8"
    if method == "modelopt":
        algo = str(q.get("quant_algo", "")).upper()
        return {"NVFP4": "nvfp4", "FP8": "fp8"}.get(algo)
    if method == "compressed-tensors":
        return _compressed_tensors(q)
    return _BY_METHOD.get(method)

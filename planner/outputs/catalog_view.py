"""Listings of the GPU and model catalogues, with filters."""

from __future__ import annotations

from typing import Any

from planner.catalog.loading import hardware_catalog, model_catalog
from planner.catalog.schemas import GpuSpec
from planner.footprint import parameter_counts
from planner.outputs.render import Column, print_table
from planner.units import BILLION, GIB

_BF16_BYTES = 2

__all__ = ["list_gpus", "list_models", "print_gpu_table", "print_model_table"]


def _matches(value: str, wanted: str | None) -> bool:
    return wanted is None or value.lower() == wanted.lower()


def list_gpus(vendor: str | None = None, family: str | None = None, min_memory_gib: float | None = None) -> list[dict[str, Any]]:
    """Catalogue GPUs as dicts, filtered by vendor, family and minimum memory (GiB)."""
    rows: list[GpuSpec] = [
        g for g in hardware_catalog()
        if _matches(g.vendor, vendor) and _matches(g.family, family)
        and (min_memory_gib is None or g.memory_gib >= min_memory_gib)
    ]
    return [g.model_dump(mode="json", exclude_none=True) for g in rows]


def list_models(
    vendor: str | None = None,
    family: str | None = None, min_memory_gib: float | None = None, tokenizer: str | None = None
) -> list[dict[str, Any]]:
    """Catalogue models as dicts with computed parameter counts.

    ``vendor`` is the publisher (the Hugging Face organisation of the id);
    ``min_memory_gib`` keeps models whose bf16 weights need at least that much
    memory; ``tokenizer`` keeps one tokenizer (the drafts a target can use).
    """
    out = []
    for m in model_catalog():
        counts = parameter_counts(m)
        bf16_gib = counts.total * _BF16_BYTES / GIB
        if not (_matches(m.id.split("/")[0], vendor) and _matches(m.family, family) and _matches(m.tokenizer, tokenizer)):
            continue
        if min_memory_gib is not None and bf16_gib < min_memory_gib:
            continue
        row = m.model_dump(mode="json", exclude_none=True)
        row["computed_total_params"] = counts.total
        row["computed_active_params"] = counts.active
        out.append(row)
    return out


def print_gpu_table(rows: list[dict[str, Any]]) -> None:
    """GPU listing for people (ids whole at any width)."""
    columns = (Column("id"), Column("name", wrap=True), Column("memory", "right"), Column("bandwidth", "right"),
               Column("fp16 TFLOPS", "right"), Column("fp8 TFLOPS", "right"), Column("link", wrap=True))
    cells = []
    for g in rows:
        link = g["interconnect"]
        cells.append([
            g["id"], g["name"], f"{g['memory_gib']:g} GiB {g['memory_type']}", f"{g['memory_bandwidth_gb_s']:g} GB/s",
            f"{g.get('fp16_tensor_tflops', '-')}", f"{g.get('fp8_tensor_tflops', '-')}",
            f"{link['kind']} {link['bandwidth_gb_s']:g} GB/s" if link["bandwidth_gb_s"] else link["kind"],
        ])
    print_table(f"{len(rows)} accelerators", columns, cells)


def print_model_table(rows: list[dict[str, Any]]) -> None:
    """Model listing for people (ids whole at any width)."""
    columns = (Column("id"), Column("family"), Column("gen"), Column("params", wrap=True), Column("layers", "right"),
               Column("heads/kv", "right"), Column("tokenizer"), Column("context", "right"))
    cells = []
    for m in rows:
        params = f"{m['computed_total_params'] / BILLION:.2f}B"
        if m.get("moe"):
            params += f" ({m['computed_active_params'] / BILLION:.1f}B active)"
        cells.append([
            m["id"], m["family"], m["generation"], params, str(m["num_layers"]),
            f"{m['num_attention_heads']}/{m['num_kv_heads']}", m["tokenizer"], str(m["max_context_tokens"]),
        ])
    print_table(f"{len(rows)} models", columns, cells)

"""One catalogue entry with its sources: `specplan gpus --sources ID` and `specplan models --sources ID`.

A GPU is shown figure by figure (value, the items of ``source`` that give it, "weak" where
only non-vendor material does); a model as its source list with the parameter counts
computed from its architecture next to the published ones and the items that state them.
"""

from __future__ import annotations

from typing import Any

from planner.catalog.citations import config_json_url, items_citing_config, items_stating
from planner.catalog.loading import model_catalog
from planner.catalog.lookup import find_gpu
from planner.catalog.names import resolve
from planner.catalog.schemas import GPU_FIGURES, GpuSpec, ModelSpec
from planner.footprint import parameter_counts
from planner.outputs.render import Column, print_line, print_table, print_warnings

__all__ = ["gpu_sources", "model_sources", "gpu_sources_to_dict", "model_sources_to_dict",
           "print_gpu_sources", "print_model_sources"]

# The unit each figure is stored in (its field name's suffix), for people reading the table.
_UNITS = {"memory_gib": "GiB", "usable_memory_gib": "GiB", "memory_bandwidth_gb_s": "GB/s", "fp32_tflops": "TFLOPS",
          "fp16_tensor_tflops": "TFLOPS", "fp8_tensor_tflops": "TFLOPS", "int8_tensor_tops": "TOPS",
          "fp4_tensor_tflops": "TFLOPS", "tdp_w": "W", "interconnect": "GB/s"}


def _items(source: str | list[str]) -> list[str]:
    return [source] if isinstance(source, str) else list(source)


def _figure_row(gpu: GpuSpec, figure: str, items: list[str]) -> dict[str, Any]:
    value = getattr(gpu, figure)
    positions = gpu.figure_sources.get(figure, [])
    return {"figure": figure, "value": value.model_dump(mode="json") if figure == "interconnect" else value,
            "unit": _UNITS[figure], "source_items": positions, "sources": [items[p - 1] for p in positions],
            "weak": figure in gpu.weak_figures}


def gpu_sources_to_dict(gpu: GpuSpec) -> dict[str, Any]:
    """Every figure ``gpu`` sets with its value, unit, source items (1-based) and weakness."""
    items = _items(gpu.source)
    figures = [_figure_row(gpu, f, items) for f in GPU_FIGURES if getattr(gpu, f) is not None]
    return {"id": gpu.id, "name": gpu.name, "figures": figures, "source": items,
            "unsourced_figures": gpu.unsourced_figures, "weak_figures": list(gpu.weak_figures), "notes": gpu.notes}


def gpu_sources(name: str) -> dict[str, Any]:
    """The sources view of the catalogue GPU called ``name`` (id, name or alias)."""
    return gpu_sources_to_dict(find_gpu(name))


def _count_row(count: str, computed: int, published: int | None, items: list[str]) -> dict[str, Any]:
    return {"count": count, "computed": computed, "published": published,
            "relative_difference": None if published is None else computed / published - 1,
            "stated_in": [] if published is None else items_stating(items, published)}


def model_sources_to_dict(model: ModelSpec) -> dict[str, Any]:
    """``model``'s sources, the items citing its config.json, and computed vs published parameter counts."""
    items = _items(model.source)
    counts = parameter_counts(model)
    params = [_count_row("total", counts.total, model.total_params, items)]
    if model.is_moe or model.active_params is not None:
        params.append(_count_row("active", counts.active, model.active_params, items))
    return {"id": model.id, "kind": model.kind, "variant_of": model.variant_of, "source": items,
            "config_json": config_json_url(model.id), "config_json_items": items_citing_config(model.id, items),
            "params": params, "notes": model.notes}


def model_sources(name: str) -> dict[str, Any]:
    """The sources view of the catalogue model called ``name`` (Hub id, repo name or alias)."""
    return model_sources_to_dict(resolve(name, model_catalog().index, "model"))


def _positions(positions: list[int]) -> str:
    return ", ".join(str(p) for p in positions) if positions else "-"


def _value_text(row: dict[str, Any]) -> str:
    value = row["value"]
    if row["figure"] == "interconnect":
        link = " ".join(str(v) for v in (value["kind"], value.get("generation")) if v)
        return f"{link} {value['bandwidth_gb_s']:g} GB/s"
    return f"{value:g} {row['unit']}"


def _print_items(items: list[str]) -> None:
    print_line("sources:")
    for n, text in enumerate(items, start=1):
        print_line(f"  {n}. {text}")


def print_gpu_sources(data: dict[str, Any]) -> None:
    """A GPU's figures with their source items, then the numbered items."""
    columns = (Column("figure"), Column("value", "right"), Column("sources"), Column("status"))
    rows = [[r["figure"], _value_text(r), _positions(r["source_items"]),
             "weak" if r["weak"] else ("" if r["source_items"] else "unsourced")] for r in data["figures"]]
    print_table(f"{data['id']} ({data['name']})", columns, rows, box="compact")
    _print_items(data["source"])
    if data["notes"]:
        print_line(f"notes: {data['notes']}")
    if data["unsourced_figures"]:
        print_warnings([f"no source item is listed for {', '.join(data['unsourced_figures'])} (figure_sources)"])


def _count_text(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def print_model_sources(data: dict[str, Any]) -> None:
    """A model's computed vs published parameter counts with the items that state them, then the items."""
    title = data["id"] + (f" ({data['kind']}; architecture of {data['variant_of']})" if data["variant_of"]
                          else f" ({data['kind']})")
    columns = (Column("params"), Column("computed", "right"), Column("published", "right"),
               Column("difference", "right"), Column("stated in"))
    rows = [[p["count"], _count_text(p["computed"]), _count_text(p["published"]),
             "-" if p["relative_difference"] is None else f"{p['relative_difference']:+.2%}",
             _positions(p["stated_in"])] for p in data["params"]]
    print_table(title, columns, rows, box="compact")
    _print_items(data["source"])
    if data["notes"]:
        print_line(f"notes: {data['notes']}")
    warnings = [] if data["config_json_items"] else [f"no source item cites {data['config_json']}"]
    warnings += [f"no source item states the published {p['count']} {p['published']:,}"
                 for p in data["params"] if p["published"] is not None and not p["stated_in"]]
    print_warnings(warnings)

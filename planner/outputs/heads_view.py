"""`specplan heads`: the catalogue of published heads and MTP checkpoints, or one entry with its sources.

Each row carries what the entry costs: its parameters (planner.proposers.heads.head_params for an
EAGLE/EAGLE-3 head, planner.proposers.mtp.mtp_params over the target's own layer for MTP), the
checkpoint's bytes at its stored format next to the size the Hub shows, and the GiB the engine
holds beside the target (the stored embedding copy dropped where the engine shares the target's).
"""

from __future__ import annotations

from typing import Any

from planner.catalog.citations import config_json_url, items_citing_config
from planner.catalog.lookup import find_model
from planner.catalog.names import resolve
from planner.catalog.precisions import WeightFormat, weight_format
from planner.errors import SpecplanError
from planner.outputs.render import Column, print_line, print_table, print_warnings
from planner.proposers.catalog import HEAD_METHODS, HeadEntry, head_catalog, heads_for
from planner.proposers.costs import HeadParams, head_weight_bytes
from planner.proposers.heads import head_params
from planner.proposers.methods import method_info
from planner.proposers.mtp import mtp_params
from planner.proposers.proposer import HEAD_DTYPES
from planner.units import GIB

__all__ = ["list_heads", "head_row", "head_sources", "head_sources_to_dict", "print_heads_table",
           "print_head_sources"]

# Layer figures shown by --sources, in the order a head's config.json lists them.
_HEAD_FIGURES = ("hidden_size", "target_hidden_size", "num_attention_heads", "num_kv_heads", "head_dim",
                 "intermediate_size", "num_layers", "vocab_size", "draft_vocab_size", "stores_embedding",
                 "uses_aux_hidden_states")


def _stored_format(entry: HeadEntry) -> WeightFormat:
    """The format the checkpoint stores: a head its own dtype, MTP modules the target's format."""
    if entry.method != "mtp":
        return weight_format(HEAD_DTYPES[entry.torch_dtype])
    spec = find_model(entry.targets[0]).spec
    return weight_format(spec.weight_format or HEAD_DTYPES[spec.torch_dtype])


def _params(entry: HeadEntry) -> HeadParams:
    if entry.method == "mtp":
        return mtp_params(find_model(entry.targets[0]).spec, entry.num_nextn_predict_layers or 0)
    return head_params(entry.layout)


def _relative(computed: float, published: int | None) -> float | None:
    return None if published is None else computed / published - 1


def head_row(entry: HeadEntry) -> dict[str, Any]:
    """One entry as a listing row: parameters, checkpoint bytes vs the Hub's, resident GiB."""
    p, fmt = _params(entry), _stored_format(entry)
    shares = method_info(entry.method).reuses_target_embedding
    checkpoint = head_weight_bytes(p, fmt, shares_embedding=False)
    return {
        "id": entry.id, "method": entry.method, "targets": list(entry.targets),
        "weight_format": fmt.name, "num_nextn_predict_layers": entry.num_nextn_predict_layers,
        "parameters": p.total, "checkpoint_bytes": checkpoint, "published_bytes": entry.published_bytes,
        "relative_difference": _relative(checkpoint, entry.published_bytes),
        "resident_gib": head_weight_bytes(p, fmt, shares_embedding=shares) / GIB,
    }


def _check_method(method: str | None) -> None:
    if method is not None and method not in HEAD_METHODS:
        raise SpecplanError(f"unknown head method {method!r}; choose from {', '.join(HEAD_METHODS)}")


def list_heads(method: str | None = None, target: str | None = None) -> list[dict[str, Any]]:
    """Catalogued heads and MTP entries as rows, optionally of one method and for one target release."""
    _check_method(method)
    entries = heads_for(target, method) if target is not None else [
        h for h in head_catalog() if method is None or h.method == method]
    return [head_row(h) for h in entries]


def _figures(entry: HeadEntry) -> list[dict[str, Any]]:
    if entry.method == "mtp":
        return [{"figure": "num_nextn_predict_layers", "value": entry.num_nextn_predict_layers}]
    layout = entry.layout.model_dump()
    return [{"figure": f, "value": layout[f]} for f in _HEAD_FIGURES if layout.get(f) is not None]


def head_sources_to_dict(entry: HeadEntry) -> dict[str, Any]:
    """``entry``'s figures, its counts against the published size, and the items citing its config.json."""
    row = head_row(entry)
    items = list(entry.source)
    return {**row, "aliases": list(entry.aliases), "figures": _figures(entry), "source": items,
            "config_json": config_json_url(entry.id), "config_json_items": items_citing_config(entry.id, items),
            "notes": entry.notes}


def head_sources(name: str) -> dict[str, Any]:
    """The sources view of the catalogued head or MTP entry called ``name`` (Hub id or alias)."""
    return head_sources_to_dict(resolve(name, head_catalog().index, "head"))


def _millions(n: int) -> str:
    return f"{n / 1e6:,.1f}M"


def _size_text(row: dict[str, Any]) -> str:
    if row["published_bytes"] is None:
        return "-"
    return f"{row['published_bytes'] / 1e9:.2f} GB ({row['relative_difference']:+.1%})"


def print_heads_table(rows: list[dict[str, Any]]) -> None:
    """The listing for people: ids whole, targets wrapped, the Hub's size with the computed difference."""
    columns = (Column("id"), Column("method"), Column("targets", wrap=True), Column("params", "right"),
               Column("resident", "right"), Column("Hub size (computed diff)", "right"))
    cells = [[r["id"], r["method"] + (f" x{r['num_nextn_predict_layers']}" if r["num_nextn_predict_layers"] else ""),
              ", ".join(r["targets"]), _millions(r["parameters"]), f"{r['resident_gib']:.2f} GiB", _size_text(r)]
             for r in rows]
    print_table(f"{len(rows)} heads and MTP checkpoints", columns, cells)


def print_head_sources(data: dict[str, Any]) -> None:
    """One entry's figures and counts, then its numbered source items, notes and warnings."""
    title = f"{data['id']} ({data['method']} for {', '.join(data['targets'])}; {data['weight_format']})"
    rows = [[f["figure"], str(f["value"])] for f in data["figures"]]
    rows += [["parameters", f"{data['parameters']:,}"], ["checkpoint bytes", f"{data['checkpoint_bytes']:,.0f}"],
             ["Hub size", _size_text(data)], ["resident", f"{data['resident_gib']:.3f} GiB"]]
    print_table(title, (Column("figure"), Column("value", "right")), rows, box="compact")
    print_line("sources:")
    for n, text in enumerate(data["source"], start=1):
        print_line(f"  {n}. {text}")
    if data["notes"]:
        print_line(f"notes: {data['notes']}")
    warnings = [] if data["config_json_items"] else [f"no source item cites {data['config_json']}"]
    print_warnings(warnings)

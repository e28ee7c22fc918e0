"""The proposer a plan runs beside its target: which method, which head or MTP module, and what it holds.

A draft model stays ``FitRequest.draft`` (a full ModelSpec priced like the target); every other
method is a ``Proposer``: an EAGLE/EAGLE-3 head (a catalogued Hub id, or a local folder's
config.json), the target's own MTP modules, or a host-only lookup (n-gram, suffix).
``resolve_proposer`` turns what the user typed into one, refusing what the target cannot run
with the reason and the nearest alternative.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from planner.catalog.lookup import ResolvedModel, expand_path, looks_like_path, model_name
from planner.catalog.precisions import KvFormat, WeightFormat, weight_format
from planner.catalog.schemas import ModelSpec
from planner.errors import ConfigImportError, SpecplanError
from planner.proposers.catalog import HeadEntry, head_catalog, heads_for
from planner.proposers.config_import import head_layout_from_config, mtp_layers_from_config
from planner.proposers.costs import ProposerMemory
from planner.proposers.heads import HeadLayout, head_memory
from planner.proposers.host import host_memory
from planner.proposers.methods import METHODS, method_info
from planner.proposers.mtp import mtp_memory

__all__ = ["Proposer", "resolve_proposer", "available_methods", "HEAD_DTYPES", "PROPOSER_METHODS"]

PROPOSER_METHODS = ("eagle", "eagle3", "mtp", "ngram", "suffix")  # every method but a draft model
HEAD_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
_LM_HEAD_BYTES = 2  # output heads stay 16-bit in quantized checkpoints (DeepSeek-V3's FP8 release included)


@dataclass(frozen=True)
class Proposer:
    """A non-draft-model proposer: its method, its head's shapes or MTP module count, and its name.

    ``name`` is what every output calls the head: the Hub id as typed, a local folder's
    absolute path, the target's id for its own MTP modules, None for host lookups.
    ``weight_format`` is the head's own dtype (heads ship 16-bit); MTP modules are stored in
    the target's format, so None there means "the target's".
    """

    method: str
    name: str | None = None
    layout: HeadLayout | None = None  # eagle / eagle3
    mtp_layers: int = 0  # mtp: num_nextn_predict_layers
    weight_format: str | None = None
    entry: HeadEntry | None = None  # the catalogue entry, when the head came from head_db

    @property
    def host_only(self) -> bool:
        """True for n-gram / suffix lookup: no GPU weights, no KV cache."""
        return method_info(self.method).host_only  # type: ignore[arg-type]

    def format_for(self, target_fmt: WeightFormat) -> WeightFormat:
        """The weight format the proposer's matrices are stored in."""
        return weight_format(self.weight_format) if self.weight_format else target_fmt

    def memory(self, target: ModelSpec, target_fmt: WeightFormat, kv: KvFormat, tp: int = 1,
               engine: str | None = None) -> ProposerMemory:
        """What the proposer adds on one GPU: its weights (whole, not split) and KV bytes per token (split).

        ``engine``: an engine that keeps the module's own output head (methods.yaml own_lm_head_engines:
        vLLM's DeepSeek MTP) adds one 16-bit vocab x hidden matrix per module.
        """
        if self.host_only:
            return host_memory()
        fmt = self.format_for(target_fmt)
        if self.method == "mtp":
            mem = mtp_memory(target, self.mtp_layers, fmt, kv, tp)
            if engine in method_info("mtp").own_lm_head_engines:
                head = self.mtp_layers * target.vocab_size * target.hidden_size * _LM_HEAD_BYTES
                mem = mem.model_copy(update={"weight_bytes": mem.weight_bytes + head})
            return mem
        assert self.layout is not None
        return head_memory(self.layout, fmt, kv, tp)


def _head_from_folder(typed: str, method: str) -> Proposer:
    """An EAGLE/EAGLE-3 head from a local folder (or its config.json)."""
    from planner.catalog.hf_import.load import read_config_dict

    path = expand_path(typed.strip())
    config = path / "config.json" if path.is_dir() else path
    if not config.is_file():
        raise ConfigImportError(f"{model_name(typed)}: no config.json found for the {method} head")
    cfg = read_config_dict(config)
    layout = head_layout_from_config(cfg, str(config), method=method)
    dtype = cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16"
    return Proposer(method, model_name(typed), layout=layout, weight_format=HEAD_DTYPES.get(str(dtype), "bf16"))


def _from_entry(entry: HeadEntry, shown: str | None = None) -> Proposer:
    if entry.method == "mtp":
        return Proposer("mtp", shown or entry.targets[0], mtp_layers=entry.num_nextn_predict_layers or 0, entry=entry)
    return Proposer(entry.method, shown or entry.id, layout=entry.layout, weight_format=HEAD_DTYPES[entry.torch_dtype],
                    entry=entry)


def _target_mtp_layers(target: ResolvedModel) -> int:
    """MTP modules of a local target folder, from its own config.json (0 when it has none)."""
    if target.origin == "catalog":
        return 0
    from planner.catalog.hf_import.load import read_config_dict

    config = Path(target.origin)
    config = config / "config.json" if config.is_dir() else config
    try:
        return mtp_layers_from_config(read_config_dict(config), str(config))
    except ConfigImportError:
        return 0


def available_methods(target: ResolvedModel, engine_methods: tuple[str, ...]) -> dict[str, str]:
    """Methods this target can run on an engine, each with what it would run (head id, "lookup")."""
    out: dict[str, str] = {}
    for method in ("eagle3", "eagle", "mtp"):
        if method not in engine_methods:
            continue
        heads = heads_for(target.spec.id, method) if target.origin == "catalog" else []
        if heads:
            out[method] = heads[0].id
        elif method == "mtp" and _target_mtp_layers(target):
            out[method] = f"{target.spec.id}'s own MTP layers"
    for method in ("ngram", "suffix"):
        if method in engine_methods:
            out[method] = "host lookup, no model"
    return out


def _nearest(target: ResolvedModel, method: str, engine_methods: tuple[str, ...],
             others: dict[str, str] | None = None) -> str:
    found = {**(others or {}), **available_methods(target, engine_methods)}
    shown = "; ".join(f"--method {m} ({what})" for m, what in found.items() if m != method)
    return f"nearest alternatives: {shown}" if shown else "no other method is available"


def resolve_proposer(method: str, target: ResolvedModel, head: str | None, engine_label: str,
                     engine_methods: tuple[str, ...], others: dict[str, str] | None = None) -> Proposer:
    """The proposer ``--method`` (and ``--head``) name for ``target`` on an engine serving ``engine_methods``.

    Refuses, in one line with the nearest alternative: a method the engine does not serve, a
    head-based method without a catalogued head (and no ``--head``), a head trained for
    another target, MTP on a checkpoint without nextn layers.
    """
    if method not in METHODS or method == "draft":
        raise SpecplanError(f"unknown proposal method {method!r}; choose from {', '.join(METHODS)}")
    if method not in engine_methods:
        raise SpecplanError(f"{engine_label} does not serve --method {method}; it serves {', '.join(engine_methods)}; "
                            + _nearest(target, method, engine_methods, others))
    if method in ("ngram", "suffix"):
        if head is not None:
            raise SpecplanError(f"--method {method} runs no model: drop --head")
        return Proposer(method)
    if head is not None and looks_like_path(head.strip()):
        if method == "mtp":
            raise SpecplanError("--method mtp runs the target's own MTP layers: drop --head, or give the target's "
                                "folder as --target")
        return _head_from_folder(head, method)
    if head is not None:
        entry = head_catalog().index.get(head.strip().lower())
        if entry is None or entry.method != method:
            names = [h.id for h in head_catalog() if h.method == method]
            from planner.catalog.names import did_you_mean

            raise SpecplanError(f"no {method} head {head.strip()!r} in head_db/ ({did_you_mean(head, names)}); "
                                "or give the head's local folder")
        keys = {k.lower() for k in (target.spec.catalog_id, target.spec.id) if k}
        if not keys & {t.lower() for t in entry.targets}:
            raise SpecplanError(f"head {entry.id} was trained for {', '.join(entry.targets)}, not {target.spec.id}; "
                                + _nearest(target, method, engine_methods, others))
        return _from_entry(entry, model_name(head))
    if method == "mtp" and target.origin != "catalog":
        layers = _target_mtp_layers(target)
        if not layers:
            raise SpecplanError(f"{target.spec.id}: config.json has no num_nextn_predict_layers: the checkpoint "
                                "ships no MTP layers; " + _nearest(target, method, engine_methods, others))
        return Proposer("mtp", target.spec.id, mtp_layers=layers)
    found = heads_for(target.spec.id, method) if target.origin == "catalog" else []
    if not found:
        if method == "mtp":
            why = (f"no MTP layers are catalogued for {target.spec.id} (head_db/mtp.yaml); a checkpoint that ships them "
                   "is planned from its folder (--target PATH, config.json num_nextn_predict_layers)")
        else:
            why = f"no {method} head is catalogued for {target.spec.id} (head_db/); give --head with a head's local folder"
        raise SpecplanError(f"{why}; " + _nearest(target, method, engine_methods, others))
    return _from_entry(found[0], target.spec.id if method == "mtp" else None)

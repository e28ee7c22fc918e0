"""Model names in exported files: exactly as the plan names them.

The plan carries each model as the user typed it: a Hub id (``meta-llama/Llama-3.1-70B-Instruct``)
or an absolute folder path. That string is what every export writes; the catalogue is
consulted only for architecture facts (vocabulary size, tokenizer, context limit), never
to rename a model. The one exception is a short catalogue alias such as ``llama-3.1-70b``,
which is no Hub id at all: it is written as the Hub id of the catalogue entry it names.
"""

from __future__ import annotations

import os

from planner.catalog.loading import model_catalog
from planner.catalog.schemas import ModelSpec
from planner.errors import SpecplanError
from planner.exports.text import check_word

__all__ = ["PRE_QUANTIZED", "catalogue_model", "model_facts", "served_name", "model_reference", "vocab_sizes"]

# Formats a server loads only from a checkpoint already quantized that way (AWQ/GPTQ exports,
# SmoothQuant int8, MXFP4/NVFP4/block-FP8 checkpoints whose config.json quantization_config names
# them); fp8 is quantized on load by vLLM and SGLang but not by TensorRT-LLM/HF.
PRE_QUANTIZED = frozenset({"int8", "int4-awq", "int4-gptq", "fp8-block", "mxfp4", "mxfp4-moe", "nvfp4"})


def catalogue_model(name: str | None) -> ModelSpec | None:
    """The catalogue entry of a repo id or alias, or None for a local checkpoint / unknown id."""
    if not name:
        return None
    return model_catalog().index.get(name.strip().lower())


def _is_local(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or os.path.isabs(name)


def model_facts(name: str | None, catalog_id: str | None = None) -> ModelSpec | None:
    """Architecture facts of a model: its catalogue entry, or a local folder's config.json when readable.

    ``catalog_id`` (a plan's ``*_catalog_id``) names the catalogue release the plan used.
    """
    if catalog_id and (entry := catalogue_model(catalog_id)) is not None:
        return entry
    if not name:
        return None
    entry = catalogue_model(name)
    if entry is not None or not _is_local(name):
        return entry
    from planner.catalog.lookup import find_model

    try:
        return find_model(name).spec
    except (SpecplanError, OSError, ValueError):
        return None  # exported for another machine: the folder need not exist here


def served_name(name: str) -> str:
    """What a server is told to load for ``name``: the name itself, or the Hub id of a short alias."""
    check_word(name, "model name")
    if "/" in name or _is_local(name):
        return name
    entry = catalogue_model(name)
    if entry is not None and entry.id.lower() != name.lower():
        return entry.id  # an alias like llama-3.1-70b is no Hub id; its entry's id is
    return name


def model_reference(name: str, precision: str, override: str | None, server_label: str, role: str,
                    flag: str, online: frozenset[str] = frozenset({"fp8"}), catalog_id: str | None = None) -> str:
    """What to load for ``name`` at ``precision``: the override path, or the plan's id or path.

    A catalogue id names the checkpoint on the Hub, 16-bit unless its entry says it is stored
    in another format (``weight_format``: gpt-oss's MXFP4 experts, DeepSeek-V3's block FP8).
    Formats the server only loads pre-quantized (``PRE_QUANTIZED``, plus fp8 where ``online``
    lacks it) cannot come from a 16-bit one: a quantized export must be named with ``flag``.
    """
    if override:
        return check_word(override, flag)
    served = served_name(name)
    entry = catalogue_model(catalog_id or name)
    if entry is None:
        return served  # a local folder or an id of the user's own checkpoint: taken as quantized as planned
    if entry.weight_format == precision:
        return served  # the published checkpoint is stored in the planned format
    if precision in PRE_QUANTIZED or (precision == "fp8" and "fp8" not in online):
        raise SpecplanError(
            f"the plan runs the {role} {name} as {precision}, but {served} is the 16-bit checkpoint and "
            f"{server_label} loads {precision} weights only from a checkpoint quantized that way: pass {flag} "
            f"with such a checkpoint, or re-plan with a format {server_label} quantizes itself (bf16, fp16"
            f"{', fp8' if 'fp8' in online else ''})"
        )
    return served


def vocab_sizes(target: str, draft: str | None, target_catalog_id: str | None = None,
                draft_catalog_id: str | None = None) -> tuple[int | None, int | None]:
    """Padded embedding rows (config.json ``vocab_size``) of target and draft, None where unknown."""
    t, d = model_facts(target, target_catalog_id), model_facts(draft, draft_catalog_id)
    return (t.vocab_size if t else None), (d.vocab_size if d else None)


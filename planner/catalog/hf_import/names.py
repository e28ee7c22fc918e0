"""config.json's ``_name_or_path``: the Hub repo id or folder a checkpoint was saved from."""

from __future__ import annotations

import re
from typing import Any

from planner.errors import ConfigImportError, SpecplanError
from planner.inputs import check_name, shown

__all__ = ["name_or_path"]

# transformers writes into ``_name_or_path`` the string from_pretrained was given: a Hub repo id or
# the folder the checkpoint was saved from. Both are made of the POSIX portable file-name characters
# (Hub ids are a subset) plus path separators, a drive colon, '~', spaces and '+', '@', '=', ','.
# Anything else (markup, quotes, shell syntax) means a damaged or hand-edited config: refused.
_NAME_OR_PATH = re.compile(r"[A-Za-z0-9._\-/\\:~ +@=,]+")


def name_or_path(cfg: dict[str, Any], label: str) -> str | None:
    """config.json's ``_name_or_path``: a Hub repo id or a saved-from path, on one line."""
    name = cfg.get("_name_or_path")
    if name is None or name == "":
        return None
    if not isinstance(name, str):
        raise ConfigImportError(f"{label}: field _name_or_path: expected a string, got {shown(name, 40)}")
    try:
        name = check_name(name, f"{label}: field _name_or_path")
    except SpecplanError as exc:
        raise ConfigImportError(str(exc)) from None
    if not _NAME_OR_PATH.fullmatch(name):
        raise ConfigImportError(
            f"{label}: field _name_or_path {shown(name, 60)} is neither a Hugging Face repo id nor a path "
            "(letters, digits, . _ - / \\ : ~ space + @ = , only)"
        )
    return name

"""Errors that the CLI turns into one-line messages and exit codes."""

from __future__ import annotations

__all__ = ["SpecplanError", "UnknownNameError", "CatalogError", "ConfigImportError", "IncompatiblePairError"]


class SpecplanError(Exception):
    """Bad input from the user or a data file; the CLI prints it on one line and exits 2."""

    exit_code = 2


class UnknownNameError(SpecplanError):
    """A GPU, model or format name not in the catalogue; the message lists the nearest names."""


class CatalogError(SpecplanError):
    """A malformed catalogue file: the message names the file, the entry and the field."""


class ConfigImportError(SpecplanError):
    """A Hugging Face config.json or safetensors file that cannot be read into a footprint."""


class IncompatiblePairError(SpecplanError):
    """A draft that cannot serve the target (different tokenizer)."""

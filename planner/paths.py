"""Locate the data folders (hardware_db/, model_db/, templates/) in every kind of install."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

__all__ = ["data_dir"]


def data_dir(name: str) -> Traversable:
    """Return the data folder ``name`` as a Traversable.

    A wheel carries the folders inside the package (hatchling force-include); an
    editable install or a source checkout keeps them at the repository root, one
    level above ``planner/``.
    """
    packaged = files("planner") / name
    if packaged.is_dir():
        return packaged
    source = Path(__file__).resolve().parent.parent / name
    if source.is_dir():
        return source
    raise FileNotFoundError(f"specplan data folder {name!r} not found (broken install?)")

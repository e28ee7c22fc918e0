"""Every module's __all__ names real objects, and importing planner pulls in no heavy library."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import planner

MODULES = [m.name for m in pkgutil.walk_packages(planner.__path__, "planner.")]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name):
    module = importlib.import_module(name)
    for attr in getattr(module, "__all__", []):
        assert hasattr(module, attr), f"{name}.__all__ lists missing {attr}"


def test_cli_import_stays_light():
    code = "import sys, planner.cli; print(sorted(m for m in ('torch', 'scipy', 'jinja2', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"

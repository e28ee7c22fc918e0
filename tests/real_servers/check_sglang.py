#!/usr/bin/env python3
"""Stand-in for ``python3 -m sglang.launch_server``: take the argv an exported ``-serve.sh``
passes to it and walk it through SGLang's own start-up, up to the point where weights load.

Run with the Python of an SGLang venv built by .ci/server_venvs.sh. The steps are
launch_server.py's: ``prepare_server_args(argv)`` (argparse with ServerArgs.add_cli_args,
the ``--config`` YAML merged by ConfigArgumentMerger, ServerArgs built; up to 0.5.x its
``__post_init__`` runs every cross-check), then, on releases that split it out,
``ServerArgs.resolve_once()`` (the resolution pipeline that replaced ``__post_init__``'s
checks). Both read the models' config.json, which come from the offline Hub cache the test
wrote (HF_HUB_OFFLINE=1, HF_HUB_CACHE). Prints one JSON line (verdict.py).

Two things differ from a GPU machine. The device: SGLang's checks ask torch.cuda for the GPU
(count, compute capability, memory) and stop at "No accelerator" without one, so
_simulated_cuda answers those questions as the plan's H100s would (SPECPLAN_SIMULATED_GPUS of
them); nothing runs on a device. And torchvision: SGLang's config registry
(sglang/srt/configs/__init__.py) imports its vision-language configs eagerly, and they import
torchvision; the only torchvision wheels this machine can get are CUDA builds, whose _C.so
needs libtorch_cuda.so. Where ``import torchvision`` fails, a stand-in module takes its place
whose every attribute is a placeholder that raises when used: importing works, any real use
by the text-model checks fails loudly (a REJECTED naming the stand-in), and the verdict's
"environment" says the stand-in was used.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import types

from verdict import Walk, run

_FACTS = ("model_path", "tp_size", "context_length", "max_running_requests", "mem_fraction_static", "dtype",
          "quantization", "speculative_algorithm", "speculative_draft_model_path", "speculative_num_steps",
          "speculative_eagle_topk", "speculative_num_draft_tokens", "speculative_draft_model_quantization",
          "speculative_ngram_max_bfs_breadth")


_TORCHVISION_FOR_TORCH = "0.28.0"  # the torchvision release built with torch 2.13


class _Placeholder:
    """An attribute of the torchvision stand-in: more placeholders on access, an error on use."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> "_Placeholder":
        return _Placeholder(f"{self._name}.{attr}")

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"{self._name} used, but torchvision is only a stand-in here (no CPU wheel)")

    def __mro_entries__(self, bases):  # `class X(torchvision.Y)` at import time
        return (object,)


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__version__ = _TORCHVISION_FOR_TORCH  # transformers parses it before importing torchvision
        module.__getattr__ = lambda attr: _Placeholder(f"{spec.name}.{attr}")  # PEP 562
        return module

    def exec_module(self, module) -> None:
        pass


def _torchvision() -> str:
    """'real' when torchvision imports, else install the stand-in and say why."""
    try:
        import torchvision  # noqa: F401
    except (ImportError, OSError, RuntimeError) as exc:
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        sys.meta_path.insert(0, _StandInFinder())
        return f"stand-in ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
    return "real"


# The GPU every plan of the test runs on (h100-sxm): compute capability and memory as CUDA reports them.
H100 = {"name": "NVIDIA H100 80GB HBM3", "capability": (9, 0), "total_memory_bytes": 85_520_809_984}


def _simulated_cuda(gpus: int) -> None:
    """Answer SGLang's device probes as ``gpus`` H100s would (torch.cuda queries only; nothing runs on them).

    SGLang's ServerArgs checks pick defaults from the device (get_device, memory capacity,
    compute capability); on a machine without a GPU they stop at "No accelerator". Only the
    answers to those questions are given here; every check that reads them is SGLang's own.
    """
    import torch

    props = types.SimpleNamespace(name=H100["name"], total_memory=H100["total_memory_bytes"],
                                  major=H100["capability"][0], minor=H100["capability"][1], multi_processor_count=132)
    torch.cuda.is_available = lambda: True
    torch.cuda.device_count = lambda: gpus
    torch.cuda.current_device = lambda: 0
    torch.cuda.get_device_capability = lambda device=None: H100["capability"]
    torch.cuda.get_device_name = lambda device=None: H100["name"]
    torch.cuda.get_device_properties = lambda device=None: props
    torch.cuda.mem_get_info = lambda device=None: (H100["total_memory_bytes"], H100["total_memory_bytes"])


def _resolve(server_args) -> object:
    """What the server runs with: the resolved view on releases with resolve_once, else the record."""
    if not hasattr(server_args, "resolve_once"):
        return server_args  # <= 0.5.x: __post_init__ already ran inside prepare_server_args
    server_args.resolve_once()
    from sglang.srt.arg_groups.overrides import resolving_view

    return resolving_view(server_args)


def _version() -> str:
    from importlib.metadata import version

    return version("sglang")


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    argv = sys.argv[1:]
    sys.argv[0] = "sglang.launch_server"  # argparse names the program after it in its errors
    walk = Walk("sglang", _version())
    gpus = int(os.environ.get("SPECPLAN_SIMULATED_GPUS", "8"))
    _simulated_cuda(gpus)
    walk.report["environment"] = {"torchvision": _torchvision(), "device": f"{gpus} x {H100['name']} (simulated)"}
    from sglang.srt.server_args import prepare_server_args

    server_args = walk.step("prepare_server_args " + " ".join(argv), prepare_server_args, argv)
    view = walk.step("ServerArgs checks (resolve_once / __post_init__)", _resolve, server_args)
    return walk.finish(**({name: getattr(view, name, None) for name in _FACTS} if view is not None else {}))


if __name__ == "__main__":
    run(main)

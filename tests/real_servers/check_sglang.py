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
"""

from __future__ import annotations

import os
import sys

from verdict import Walk, run

_FACTS = ("model_path", "tp_size", "context_length", "max_running_requests", "mem_fraction_static", "dtype",
          "quantization", "speculative_algorithm", "speculative_draft_model_path", "speculative_num_steps",
          "speculative_eagle_topk", "speculative_num_draft_tokens", "speculative_draft_model_quantization")


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
    walk = Walk("sglang", _version())
    from sglang.srt.server_args import prepare_server_args

    server_args = walk.step("prepare_server_args " + " ".join(argv), prepare_server_args, argv)
    view = walk.step("ServerArgs checks (resolve_once / __post_init__)", _resolve, server_args)
    return walk.finish(**({name: getattr(view, name, None) for name in _FACTS} if view is not None else {}))


if __name__ == "__main__":
    run(main)

#!/usr/bin/env python3
"""Stand-in for the ``vllm`` command: take the argv an exported ``-serve.sh`` passes to it and
walk it through vLLM's own start-up, up to the point where weights would be loaded.

Run with the Python of a vLLM venv built by .ci/server_venvs.sh. The steps are the ones
``vllm serve`` takes (vllm/entrypoints/cli/main.py and serve.py; api_server's
run_server): the ``serve`` subcommand's parser, ``ServeSubcommand.validate``
(validate_parsed_serve_args), ``model_tag`` over ``--model``, ``AsyncEngineArgs.from_cli_args``,
a check that every speculative-config key is a SpeculativeConfig field (0.9.2 ignores unknown
ones silently), and ``create_engine_config`` (ModelConfig, ParallelConfig, SpeculativeConfig
with the draft's own ModelConfig, the whole VllmConfig). Prints one JSON line (verdict.py).

Two things differ from a GPU machine, both on purpose. There is no GPU platform here, so
vLLM's CpuPlatform stands in (what ``vllm bench`` itself switches to), told to accept every
quantization method, as CudaPlatform does (its supported list is empty): which kernels a
CPU has is not what the test asks. The models' config.json files come from the offline Hub
cache the test wrote (HF_HUB_OFFLINE=1, HF_HUB_CACHE): vLLM resolves the ids itself.
"""

from __future__ import annotations

import os
import sys

from verdict import Walk, run


def _cpu_platform() -> None:
    from vllm import platforms
    from vllm.platforms.cpu import CpuPlatform

    CpuPlatform.supported_quantization = []  # as CudaPlatform: every method passes verify_quantization
    platform = CpuPlatform()
    platforms._current_platform = platform  # what the lazy `current_platform` lookup returns ...
    platforms.current_platform = platform  # ... and the attribute `vllm bench` replaces


def _parser():
    try:
        from vllm.utils.argparse_utils import FlexibleArgumentParser
    except ImportError:  # <= 0.10: vllm/utils.py
        from vllm.utils import FlexibleArgumentParser
    import vllm.entrypoints.cli.serve as serve

    parser = FlexibleArgumentParser(description="vLLM CLI")
    subparsers = parser.add_subparsers(required=False, dest="subparser")
    cmds = {}
    for cmd in serve.cmd_init():
        cmd.subparser_init(subparsers).set_defaults(dispatch_function=cmd.cmd)
        cmds[cmd.name] = cmd
    return parser, cmds


def _engine_args(args):
    from vllm.engine.arg_utils import AsyncEngineArgs

    return AsyncEngineArgs.from_cli_args(args)


def _speculative_keys(engine_args) -> None:
    """Every speculative-config key must be a SpeculativeConfig field: some releases (0.9.2) drop
    unknown keys without a word, so a misspelt or too-new key would silently do nothing."""
    import dataclasses

    from vllm.config import SpeculativeConfig

    spec = engine_args.speculative_config or {}
    unknown = sorted(set(spec) - {f.name for f in dataclasses.fields(SpeculativeConfig)})
    if unknown:
        raise ValueError(f"speculative-config keys that are not fields of this vLLM's SpeculativeConfig: {unknown}")


def _engine_config(engine_args):
    from vllm.usage.usage_lib import UsageContext

    return engine_args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER)


def _facts(config) -> dict:
    spec = config.speculative_config
    draft = getattr(spec, "draft_model_config", None)
    return {
        "model": config.model_config.model,
        "max_model_len": config.model_config.max_model_len,
        "tensor_parallel_size": config.parallel_config.tensor_parallel_size,
        "gpu_memory_utilization": config.cache_config.gpu_memory_utilization,
        "max_num_seqs": config.scheduler_config.max_num_seqs,
        "quantization": config.model_config.quantization,
        "method": getattr(spec, "method", None),
        "num_speculative_tokens": getattr(spec, "num_speculative_tokens", None),
        "prompt_lookup_max": getattr(spec, "prompt_lookup_max", None),
        "prompt_lookup_min": getattr(spec, "prompt_lookup_min", None),
        "draft_model": getattr(draft, "model", None),
        "draft_max_model_len": getattr(draft, "max_model_len", None),
        "draft_quantization": getattr(draft, "quantization", None),
        "draft_tensor_parallel_size": getattr(getattr(spec, "draft_parallel_config", None),
                                              "tensor_parallel_size", None),
    }


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import vllm

    walk = Walk("vllm", vllm.__version__)
    argv = sys.argv[1:]
    walk.step("CpuPlatform", _cpu_platform)
    walk.report["environment"] = {"platform": "CpuPlatform, every quantization method allowed"}
    built = walk.step("build the `vllm serve` parser", _parser)
    parser, cmds = built if built else (None, {})
    args = walk.step("parse " + " ".join(argv), lambda: parser.parse_args(argv))
    if args is not None and args.subparser not in cmds:
        walk.step("subcommand", lambda: (_ for _ in ()).throw(ValueError(f"not `vllm serve`: {argv}")))
    walk.step("ServeSubcommand.validate", lambda: cmds[args.subparser].validate(args))
    if not walk.done and getattr(args, "model_tag", None) is not None:
        args.model = args.model_tag  # ServeSubcommand.cmd: the positional model wins
    engine_args = walk.step("AsyncEngineArgs.from_cli_args", _engine_args, args)
    walk.step("speculative-config keys are SpeculativeConfig fields", _speculative_keys, engine_args)
    config = walk.step("create_engine_config", _engine_config, engine_args)
    return walk.finish(**(_facts(config) if config is not None else {}))


if __name__ == "__main__":
    run(main)

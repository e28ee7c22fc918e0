"""What every command shares: output, value ranges and the option groups (hardware, draft, task, calibration)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from planner.cli_types import NAME, Float, Int
from planner.outputs.render import FORMATS, dump

PLAN_METHODS = ("draft", "eagle", "eagle3", "mtp", "ngram", "suffix")  # planner.proposers.methods.METHODS

__all__ = ["_emit", "_options", "_hardware", "_draft", "_task", "_calibration", "_rank_method", "_format_option", "_GPUS", "_BATCH",
           "_CONTEXT", "_K", "_TOP", "_UNIT", "_MEMORY_GIB", "_MIN_GIB", "_PRICE"]


def _emit(data: Any, fmt: str, table: Callable[[Any], None]) -> None:
    text = dump(data, fmt, table)
    if text is not None:
        click.echo(text.rstrip("\n"))


# Ranges: wide enough for any real deployment, narrow enough that a typo is caught here.
_GPUS = Int(1, 4096)
_BATCH = Int(1, 1_000_000)
_CONTEXT = Int(1, 100_000_000)
_K = Int(1, 64)  # planner.speedup.K_MAX: no engine proposes longer chains
_TOP = Int(1, 10_000)
_UNIT = Float(0, 1)
_MEMORY_GIB = Float(0, 1_000_000, low_open=True)
_MIN_GIB = Float(0, 1_000_000)
_PRICE = Float(0, 1_000_000, low_open=True)

_format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
    help="Output: table for people, json or yaml for scripts (same fields as the table and more)."
)


def _options(*decorators: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Apply a list of click options in reading order."""

    def wrap(f: Any) -> Any:
        for d in reversed(decorators):
            f = d(f)
        return f

    return wrap


_hardware = _options(
    click.option("--target", type=NAME, required=True,
                 help="Target model: catalogue id or name (see `specplan models`), or a local folder / config.json."),
    click.option("--gpu", type=NAME, required=True, help="GPU: catalogue id, name or alias (see `specplan gpus`); local: this machine's GPU 0 (NVML); cpu: this machine's CPU."),
    click.option("--gpus", type=_GPUS, default=1, show_default=True,
                 help="Number of GPUs in the group (tensor parallel or layer split); recommend and report "
                      "also try every smaller valid count."),
    click.option("--precision", type=NAME, default=None,
                 help="Target weight format (default: the engine's; e.g. bf16, fp8, int4-awq, q4_k_m)."),
    click.option("--kv-precision", type=NAME, default=None, help="KV-cache element format: fp16 (default), fp8, q8_0, q4_0."),
    click.option("--batch", type=_BATCH, default=1, show_default=True, help="Concurrent sequences decoded together (count)."),
    click.option("--context", type=_CONTEXT, default=None,
                 help="Tokens per sequence, prompt + output (default: 4096 or the model's maximum)."),
    click.option("--engine", default="auto", show_default=True, type=NAME,
                 help="vllm, sglang, trtllm, llamacpp, hf, gptfast; research code: eagleref (EAGLE's own), eaglefast "
                      "(EAGLE's gpt-fast branch) (auto: vllm; llamacpp on Apple)."),
    click.option("--memory-gib", type=_MEMORY_GIB, default=None,
                 help="Memory of one GPU in GiB, if not the catalogue's (Apple: your configuration)."),
)
_draft = _options(
    click.option("--draft", type=NAME, default=None, help="Draft model: catalogue id or name, or a local folder / config.json."),
    click.option("--draft-precision", type=NAME, default=None,
                 help="Draft weight format, e.g. bf16, fp8, int4-awq, q4_k_m (default: the target's)."),
    click.option("--allow-tokenizer-mismatch", is_flag=True, help="Plan a draft whose tokenizer differs from the target's."),
    click.option("--method", type=click.Choice(PLAN_METHODS, case_sensitive=False), default=None,
                 help="Proposal method: draft (a --draft model), eagle / eagle3 (a head), mtp (the target's own "
                      "MTP layers), ngram / suffix (host lookup, no model). Default: draft with --draft, else none."),
    click.option("--head", type=NAME, default=None,
                 help="EAGLE / EAGLE-3 head: Hub id from `specplan heads`, or a local folder with its config.json "
                      "(default: the head catalogued for the target)."),
)
_tree = _options(
    click.option("--num-steps", type=_K, default=None,
                 help="A head's tree as the server runs it: SGLang --speculative-num-steps (depth; default: searched)."),
    click.option("--topk", type=_K, default=None, help="SGLang --speculative-eagle-topk (branching per step; 1: a chain)."),
    click.option("--num-draft-tokens", type=Int(2, 4096), default=None,
                 help="SGLang --speculative-num-draft-tokens (tokens verified per round, the root included)."),
    click.option("--tree", type=NAME, default=None,
                 help="A static tree by name (planner/trees/static_trees.yaml, e.g. EAGLE's mc_sim_7b_63)."),
)
_rank_method = click.option(
    "--method", type=click.Choice(("all",) + PLAN_METHODS, case_sensitive=False), default=None,
    help="Proposal methods to rank: all (every method the target and engine can run, with no speculation), or "
         "one. Default: all when the target has EAGLE heads or MTP layers catalogued, else draft models.")
_task = click.option("--task", type=click.Choice(["chat", "code", "math", "summarize", "structured", "mixed"]),
                     default="chat", show_default=True,
                     help="Workload the acceptance (alpha) prior is tuned for (mixed: a blend of tasks, as "
                          "Spec-Bench's overall column).")

_calibration = click.option("--calibration", type=click.Path(dir_okay=False), default=None,
                            help="Calibration file from `specplan probe` or `specplan calibrate` to re-plan with.")

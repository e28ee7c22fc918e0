"""Hugging Face TGI: n-gram speculation (``--speculate N``) only; a draft-model plan is refused.

TGI speculates with Medusa heads, or with n-grams for any other model: the launcher's
``--speculate`` is "The number of input_ids to speculate on ... Other wise, it will use n-gram
speculation" (launcher/src/main.rs; docs conceptual/speculation.md: "to enable n-gram
speculation simply use `--speculate 2`"). So ``--method ngram`` is written as a
``text-generation-launcher`` command line; the n-gram match length has no flag and is
TGI's own. Sources: planner/exports/server_args/tgi.yaml.
"""

from __future__ import annotations

from typing import NoReturn

from planner.catalog.precisions import weight_format
from planner.errors import SpecplanError
from planner.exports.common import TORCH_DTYPE_NAMES, Export, ExportPlan, FileNames, header, shell_script
from planner.exports.method_args import MethodArgs
from planner.exports.method_export import method_measure, method_notes
from planner.exports.names import model_reference
from planner.exports.versions import ServerLine

__all__ = ["SERVER", "LABEL", "DEFAULT_MAIN", "refuse", "export", "export_method"]

SERVER = "tgi"
LABEL = "TGI"
DEFAULT_MAIN = "tgi-serve.sh"


def refuse() -> NoReturn:
    """TGI has no separate draft-model option (shared/research/servers.md section 5)."""
    raise SpecplanError(
        "TGI has no draft-model speculative decoding (it speculates only with Medusa heads or n-grams, "
        "`--speculate N`: export --method ngram); the closest alternatives that run a draft model are vLLM and "
        "SGLang: use --server vllm or --server sglang"
    )


def export(plan: ExportPlan, line: ServerLine, names: FileNames, target_path: str | None,
           draft_path: str | None) -> NoReturn:
    """A draft-model plan: refused, TGI loads no second model."""
    refuse()


def export_method(plan: ExportPlan, line: ServerLine, args: MethodArgs, names: FileNames,
                  target_path: str | None) -> Export:
    """The launcher command line for an n-gram plan (methods.yaml gives --speculate for the line)."""
    precision = weight_format(plan.precision).name
    if precision not in TORCH_DTYPE_NAMES:
        raise SpecplanError(f"TGI export writes 16-bit targets (--dtype float16 / bfloat16), the plan runs "
                            f"{plan.target} as {precision}: re-plan with --precision bf16")
    target = model_reference(plan.target, precision, target_path, LABEL, "target", "--target-path", frozenset(),
                             catalog_id=plan.target_catalog_id)
    options: list[tuple[str, object]] = [("--model-id", target)]
    if plan.tensor_parallel > 1:
        options.append(("--num-shard", plan.tensor_parallel))
    options += [("--dtype", TORCH_DTYPE_NAMES[precision]), *args.keys.items()]
    # specplan has no TGI engine model: header's "re-plan with --engine tgi" would name an engine that is not there
    head = [ln if not ln.startswith("Note: the memory plan used") else
            f"Note: the memory plan used {plan.engine}'s reserves (specplan has no memory model of TGI's own)."
            for ln in header(plan, LABEL, line, [method_measure(plan)], method_notes(args))]
    files = {names.main: shell_script(head, ["text-generation-launcher"], options)}
    summary = (f"{LABEL} {line.name}: n-gram speculation ({', '.join(f'{k} {v}' for k, v in args.keys.items())}), "
               f"{plan.tensor_parallel} shard(s); predicted {plan.speedup:.2f}x "
               f"({plan.speedup_low:.2f}-{plan.speedup_high:.2f})")
    return Export(files=files, summary=summary, server=SERVER, line=line.name)

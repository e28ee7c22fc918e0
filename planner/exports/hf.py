"""Hugging Face transformers: a Python snippet for assisted generation with the planned draft.

The draft length is fixed at the planner's k: ``num_assistant_tokens = k`` with
``num_assistant_tokens_schedule = "constant"`` (the "heuristic" schedule would move it by
+2/-1 after every step). transformers takes the draft as ``generate(assistant_model=...)``
and runs assisted generation for one sequence at a time ("not batched inputs"), so only
batch-1 plans export. A Python file rather than a generation_config.json: JSON has no
comments, and the assistant model is a generate() argument, not a config field.

A draft with another tokenizer runs as universal assisted generation (transformers >= 4.46):
generate() also takes ``tokenizer=`` and ``assistant_tokenizer=`` and then re-tokenises each
round's draft through text (candidate_generator.py AssistedCandidateGeneratorDifferentTokenizers
@ 00a11b6a0745b442473aef0221e098d022b8158c); greedy decoding only in that release line.
"""

from __future__ import annotations

import shlex
from typing import Any

from planner.catalog.precisions import weight_format
from planner.errors import SpecplanError
from planner.exports.common import (
    Export,
    ExportPlan,
    FileNames,
    check_runs,
    comment_block,
    cross_tokenizer_plan,
    header,
)
from planner.exports.method_args import MethodArgs
from planner.exports.method_export import method_notes
from planner.exports.names import model_reference
from planner.exports.versions import ServerLine

__all__ = ["SERVER", "LABEL", "DEFAULT_MAIN", "export", "export_method"]

SERVER = "hf"
LABEL = "HF transformers"
DEFAULT_MAIN = "hf_assisted.py"
_TORCH_DTYPE = {"bf16": "torch.bfloat16", "fp16": "torch.float16"}
_OLD_LINE = "4.35-4.55"
_DEMO_PROMPT = "Explain speculative decoding in three sentences."
_UAG_NOTE = ("The assistant has another tokenizer: universal assisted generation (transformers >= 4.46) passes "
             "tokenizer= and assistant_tokenizer= to generate() and re-tokenises each round's draft through text; "
             "greedy decoding only before 4.50 (UAG-TLI adds sampling).")


def _check_batch(plan: ExportPlan) -> None:
    check_runs(plan, SERVER, LABEL)
    if plan.batch != 1:
        raise SpecplanError(
            f"transformers runs assisted generation one sequence at a time (\"not batched inputs\"), but the plan is "
            f"for batch {plan.batch}: re-plan with --batch 1, or serve the pair with vLLM or SGLang"
        )


def _dtype(precision: str) -> str:
    """The dtype argument: 16-bit formats by name, quantized checkpoints as stored ("auto")."""
    return _TORCH_DTYPE.get(weight_format(precision).name, '"auto"')


def _snippet(plan: ExportPlan, line: ServerLine, target: str, draft: str, uag: bool) -> str:
    dtype_kw = "torch_dtype" if line.name == _OLD_LINE else "dtype"
    # universal assisted generation: both tokenizers go to generate(), which re-tokenises each round
    uag_load = "\n    assistant_tokenizer = AutoTokenizer.from_pretrained(ASSISTANT)" if uag else ""
    uag_args = ", tokenizer=tokenizer, assistant_tokenizer=assistant_tokenizer" if uag else ""
    draft_prec = plan.draft_precision or plan.precision
    max_new = max(1, plan.context // 2)  # half the planned context is left for the prompt
    # The confidence threshold the plan was priced with (transformers' default is 0.4 from 4.45);
    # written where the export line knows the key.
    threshold = (f"\n    assistant_confidence_threshold={plan.p_min!r},"
                 if plan.p_min is not None and line.name != _OLD_LINE else "")
    body = f'''import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

TARGET = {target!r}
ASSISTANT = {draft!r}

GENERATION_CONFIG = GenerationConfig(
    num_assistant_tokens={plan.k},
    num_assistant_tokens_schedule="constant",{threshold}
    max_new_tokens={max_new},
)


def main() -> None:
    tokenizer = AutoTokenizer.from_pretrained(TARGET){uag_load}
    model = AutoModelForCausalLM.from_pretrained(TARGET, {dtype_kw}={_dtype(plan.precision)}, device_map="auto")
    assistant = AutoModelForCausalLM.from_pretrained(ASSISTANT, {dtype_kw}={_dtype(draft_prec)}, device_map="auto")
    prompt = " ".join(arg for arg in sys.argv[1:] if arg != "--compare") or {_DEMO_PROMPT!r}
    inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
    start = time.perf_counter()
    output = model.generate(**inputs, assistant_model=assistant, generation_config=GENERATION_CONFIG{uag_args})
    assisted = time.perf_counter() - start
    print(tokenizer.decode(output[0], skip_special_tokens=True))
    if "--compare" in sys.argv:
        start = time.perf_counter()
        model.generate(**inputs, generation_config=GENERATION_CONFIG)  # greedy: the same tokens, no draft
        plain = time.perf_counter() - start
        print(f"assisted {{assisted:.2f}} s, plain {{plain:.2f}} s: speedup {{plain / assisted:.2f}}x "
              f"(specplan predicted {plan.speedup:.2f}x)")


if __name__ == "__main__":
    main()
'''
    return body


def _measure() -> list[str]:
    return [
        "generate() exposes no acceptance counters; run this file with --compare to time the same prompt with and",
        "without assistant_model and compare the measured speedup with the prediction above (greedy decoding, so",
        "both runs produce the same text).",
    ]


def export(plan: ExportPlan, line: ServerLine, names: FileNames, target_path: str | None,
           draft_path: str | None) -> Export:
    """A runnable Python file for assisted generation with the plan's pair."""
    _check_batch(plan)
    target = model_reference(plan.target, weight_format(plan.precision).name, target_path, LABEL, "target",
                             "--target-path", frozenset(), catalog_id=plan.target_catalog_id)
    draft = model_reference(plan.draft or "", weight_format(plan.draft_precision or plan.precision).name, draft_path,
                            LABEL, "draft", "--draft-path", frozenset(), catalog_id=plan.draft_catalog_id)
    notes = [
        (f"num_assistant_tokens {plan.k} with schedule \"constant\": the draft proposes exactly k tokens per step "
        "(assistant_confidence_threshold may still stop it early)."),
        "device_map=\"auto\" (needs the accelerate package) spreads the target over the visible GPUs layer by layer.",
    ]
    if line.name == _OLD_LINE:
        notes.append("transformers before 4.56 names the load dtype torch_dtype= (4.56 renamed it dtype=).")
    uag = cross_tokenizer_plan(plan)
    if uag:
        notes.append(_UAG_NOTE + (" Within the 4.35-4.55 line that means 4.46 or later." if line.name == _OLD_LINE else ""))
    head = header(plan, LABEL, line, _measure(), notes)
    text = comment_block(head + [f"Run: python {shlex.quote(names.main)} \"your prompt\" [--compare]"]) + _snippet(
        plan, line, target, draft, uag)
    files: dict[str, Any] = {names.main: text}
    mode = " (universal assisted generation: assistant_tokenizer passed)" if uag else ""
    summary = (f"{LABEL} {line.name}: assistant {draft}{mode}, num_assistant_tokens {plan.k} "
               f"(constant); predicted {plan.speedup:.2f}x ({plan.speedup_low:.2f}-{plan.speedup_high:.2f})")
    return Export(files=files, summary=summary, server=SERVER, line=line.name)


def _lookup_snippet(plan: ExportPlan, line: ServerLine, target: str, keys: dict[str, Any]) -> str:
    """generate() with prompt lookup: the GenerationConfig fields of the method, no assistant model."""
    dtype_kw = "torch_dtype" if line.name == _OLD_LINE else "dtype"
    fields = "".join(f"\n    {key}={value!r}," for key, value in keys.items())
    return f'''import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

TARGET = {target!r}

GENERATION_CONFIG = GenerationConfig({fields}
    max_new_tokens={max(1, plan.context // 2)},
)


def main() -> None:
    tokenizer = AutoTokenizer.from_pretrained(TARGET)
    model = AutoModelForCausalLM.from_pretrained(TARGET, {dtype_kw}={_dtype(plan.precision)}, device_map="auto")
    prompt = " ".join(arg for arg in sys.argv[1:] if arg != "--compare") or {_DEMO_PROMPT!r}
    inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
    start = time.perf_counter()
    output = model.generate(**inputs, generation_config=GENERATION_CONFIG)
    lookup = time.perf_counter() - start
    print(tokenizer.decode(output[0], skip_special_tokens=True))
    if "--compare" in sys.argv:
        plain_config = GenerationConfig(max_new_tokens=GENERATION_CONFIG.max_new_tokens)
        start = time.perf_counter()
        model.generate(**inputs, generation_config=plain_config)  # greedy: the same tokens, no lookup
        plain = time.perf_counter() - start
        print(f"prompt lookup {{lookup:.2f}} s, plain {{plain:.2f}} s: speedup {{plain / lookup:.2f}}x "
              f"(specplan predicted {plan.speedup:.2f}x)")


if __name__ == "__main__":
    main()
'''


def export_method(plan: ExportPlan, line: ServerLine, args: MethodArgs, names: FileNames,
                  target_path: str | None) -> Export:
    """A runnable Python file for prompt lookup decoding (the n-gram method; the only one transformers runs)."""
    _check_batch(plan)
    target = model_reference(plan.target, weight_format(plan.precision).name, target_path, LABEL, "target",
                             "--target-path", frozenset(), catalog_id=plan.target_catalog_id)
    notes = method_notes(args)
    if line.name == _OLD_LINE:
        notes.append("transformers before 4.56 names the load dtype torch_dtype= (4.56 renamed it dtype=).")
    measure = ["generate() exposes no acceptance counters; run this file with --compare to time the same prompt with",
               "and without prompt lookup and compare the measured speedup with the prediction above."]
    head = header(plan, LABEL, line, measure, notes)
    text = comment_block(head + [f"Run: python {shlex.quote(names.main)} \"your prompt\" [--compare]"]) + \
        _lookup_snippet(plan, line, target, args.keys)
    summary = (f"{LABEL} {line.name}: prompt lookup ({', '.join(f'{k}={v}' for k, v in args.keys.items())}); "
               f"predicted {plan.speedup:.2f}x ({plan.speedup_low:.2f}-{plan.speedup_high:.2f})")
    return Export(files={names.main: text}, summary=summary, server=SERVER, line=line.name)

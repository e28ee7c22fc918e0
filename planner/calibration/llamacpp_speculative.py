"""llama-speculative over every prompt while the budget lasts: per-prompt counts and its own decode speed.

llama-speculative (llama.cpp examples/speculative/speculative.cpp, b11312) ends each run with
``decoded N tokens in S seconds, speed: V t/s`` and ``n_predict = N``, ``n_drafted = D``,
``n_accept = A``; one run takes one prompt (``-p``), so the probe runs it once per prompt and pools
the counts (llamacpp_outputs.llamacpp_calibration sums texts of one kind).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from planner.calibration.budget import Budget
from planner.calibration.llamacpp_settings import clean_log
from planner.calibration.schema import PromptCounts
from planner.errors import SpecplanError

__all__ = ["SpeculativeRuns", "run_prompts", "prompt_counts"]

ATTEMPTS = 3  # runs per prompt until its closing stats print (llama.cpp #22142: the log is not flushed at exit)
_DECODED = re.compile(r"decoded\s+([0-9]+)\s+tokens in\s+([0-9]*\.?[0-9]+)\s+seconds")
_COUNT = {name: re.compile(rf"\b{name}\s*=\s*([0-9]+)") for name in ("n_predict", "n_drafted", "n_accept")}


@dataclass
class SpeculativeRuns:
    """The texts of the runs that printed their stats, one record per prompt, and why it stopped early."""

    texts: list[str] = field(default_factory=list)
    prompts: list[PromptCounts] = field(default_factory=list)
    partial: str | None = None
    notes: list[str] = field(default_factory=list)
    tool: str = "llama-speculative"  # or llama-speculative-simple (llamacpp_probe.SPECULATIVE_TOOLS)


def prompt_counts(text: str, index: int) -> PromptCounts | None:
    """One run's numbers: committed, drafted and accepted tokens, target steps, decode s; None without its stats."""
    text = clean_log(text)
    found = {name: rx.findall(text) for name, rx in _COUNT.items()}
    if not (found["n_drafted"] and found["n_accept"] and found["n_predict"]):
        return None
    predicted, drafted, accepted = (int(found[n][-1]) for n in ("n_predict", "n_drafted", "n_accept"))
    if accepted > drafted or len(str(predicted)) > 12:
        raise SpecplanError(f"llama-speculative (prompt {index + 1}): n_accept {accepted} exceeds n_drafted {drafted}")
    decoded = _DECODED.findall(text)
    seconds = float(decoded[-1][1]) if decoded else None
    return PromptCounts(prompt=index, predicted=predicted, drafted=drafted, accepted=accepted,
                        target_steps=max(predicted - accepted, 0), decode_s=seconds)


def run_prompts(prompts: tuple[str, ...], call: Callable[[str, float], str], budget: Budget, min_tool_s: float,
                out: SpeculativeRuns | None = None) -> SpeculativeRuns:
    """Run ``call(prompt, timeout_s)`` per prompt while ``min_tool_s`` of the budget is left.

    The first prompt must print its stats (up to ATTEMPTS runs) or the probe fails; a later prompt
    that fails, or a budget that ends, stops the runs with what was measured, marked partial.
    ``out`` is filled as the runs finish, so a Ctrl-C keeps the prompts already measured.
    """
    out = out if out is not None else SpeculativeRuns()
    for i, prompt in enumerate(prompts):
        if budget.left() < min_tool_s:
            out.partial = f"llama-speculative: the budget ended after {i} of {len(prompts)} prompts"
            break
        try:
            got = _one_prompt(prompt, i, call, budget, min_tool_s, out.notes)
        except SpecplanError as exc:
            if not out.prompts:
                raise
            out.partial = f"llama-speculative stopped at prompt {i + 1} of {len(prompts)}: {exc}"
            break
        if got is not None:
            out.texts.append(got[0])
            out.prompts.append(got[1])
    if not out.prompts:
        raise SpecplanError(f"llama-speculative: no n_drafted / n_accept lines in {ATTEMPTS} run(s) (llama.cpp #22142)")
    return out


def _one_prompt(prompt: str, i: int, call: Callable[[str, float], str], budget: Budget, min_tool_s: float,
                notes: list[str]) -> tuple[str, PromptCounts] | None:
    for attempt in range(ATTEMPTS):
        if attempt and budget.left() < min_tool_s:
            break
        text = call(prompt, budget.left())
        counts = prompt_counts(text, i)
        if counts is not None:
            return text, counts
        notes.append(f"llama-speculative prompt {i + 1} run {attempt + 1}: its closing stats were lost "
                     "(unflushed log, llama.cpp #22142)")
    if i == 0:
        raise SpecplanError(f"llama-speculative: no n_drafted / n_accept lines in {ATTEMPTS} run(s) (llama.cpp #22142)")
    return None

"""The speculative settings llama.cpp states in its outputs: the draft maximum k and p-min.

Where they are printed (llama.cpp b11312, vendored in llama-cpp-python 0.3.36): ``"speculative.n_max"`` /
``"speculative.p_min"`` in ``/props`` and a response's ``generation_settings`` (tools/server/server-schema.cpp),
the draft implementation's start-up line ``- n_max=%d, n_min=%d, p_min=%f`` (common/speculative.cpp,
a trace line for draft-simple) and llama-speculative's ``n_draft   = %d`` (examples/speculative*/).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from planner.errors import SpecplanError

__all__ = ["clean_log", "stated_k", "stated_p_min", "states_settings"]

_NUM = r"([0-9]*\.?[0-9]+)"
# The setting lines only: "n_draft   = 16" ends its line (the adaptive-MTP trace "n_draft=1," does not).
_SPEC_DRAFT = re.compile(r"\bn_draft\s*=\s*([0-9]+)[ \t]*$", re.MULTILINE)
# k as the server states it: "speculative.n_max": 8 in /props and generation_settings, or the
# start-up line "- n_max=8, n_min=0, p_min=0.75" (common/speculative.cpp).
_N_MAX_JSON = re.compile(r'"speculative\.n_max"\s*:\s*([0-9]+)')
_N_MAX_LOG = re.compile(r"\bn_max\s*=\s*([0-9]+)\s*,\s*n_min\b")
# p-min: "speculative.p_min": 0.75 in /props, "p_min=0.750000" / "p_min = 0.75" in a log.
_P_MIN_JSON = re.compile(r'"speculative\.p_min"\s*:\s*' + _NUM)
_P_MIN_LOG = re.compile(r"\bp_min\s*=\s*" + _NUM)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def clean_log(text: str) -> str:
    """Text without ANSI colour codes (llama-speculative colours its tokens) and with CR as newline."""
    return _ANSI.sub(" ", text).replace("\r", "\n")  # a space: a code may join a token to a log line


def states_settings(text: str) -> bool:
    """Whether a text states the draft n_max or p-min."""
    return bool(_N_MAX_JSON.search(text) or _P_MIN_JSON.search(text) or _N_MAX_LOG.search(text))


def _one(values: set[float] | set[int], what: str, advice: str) -> Any:
    if len(values) > 1:
        raise SpecplanError(f"the llama.cpp texts state several {what} values ({', '.join(map(str, sorted(values)))}): "
                            f"{advice}")
    return values.pop() if values else None


def stated_p_min(texts: Sequence[str]) -> float | None:
    """The p-min the server states in /props or responses (speculative.p_min) or its log; None if none does."""
    found = {round(float(x), 6) for text in texts for x in _P_MIN_JSON.findall(text) + _P_MIN_LOG.findall(text)}
    return _one({x for x in found if 0 <= x <= 1}, "p-min", "calibrate one server setting at a time")


def stated_k(texts: Sequence[str]) -> int | None:
    """The draft maximum k the texts state: speculative.n_max, '- n_max=k, n_min=' or 'n_draft = k'."""
    found = set()
    for text in texts:
        text = clean_log(text)
        for x in _N_MAX_JSON.findall(text) + _N_MAX_LOG.findall(text) + _SPEC_DRAFT.findall(text):
            if len(x) <= 4 and 1 <= int(x) <= 64:  # planner.speedup.K_MAX
                found.add(int(x))
    return _one(found, "draft n_max (k)", "calibrate one server setting at a time")

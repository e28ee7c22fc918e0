"""Universal assisted generation (a draft with another tokenizer in transformers): what a round re-does.

The prior treats such a pair as its own relationship ("cross-tokenizer"); the cost side adds the
host work below to each round. Figures and their source: planner/priors/priors.yaml,
``cross_tokenizer_mode``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from planner.errors import CatalogError
from planner.priors.model import priors_document

__all__ = ["UagMode", "uag_mode", "retokenised_tokens_per_round", "uag_round_us"]


@dataclass(frozen=True)
class UagMode:
    """transformers' universal assisted generation: releases and the re-tokenisation windows (tokens)."""

    min_transformers: str
    sampling_from: str
    target_lookbehind_tokens: int
    assistant_lookbehind_tokens: int
    host_us_per_call: float  # one tokenizer decode or encode call, us
    tokenizer_calls_per_round: int
    host_us_per_retokenised_token: float  # us per token decoded or encoded
    alignment_us_per_round: float  # the prefix alignment between the two token streams, us


@lru_cache(maxsize=1)
def uag_mode() -> UagMode:
    """The ``cross_tokenizer_mode`` block of priors.yaml."""
    try:
        return UagMode(**priors_document()["cross_tokenizer_mode"])
    except (KeyError, TypeError) as exc:
        raise CatalogError(f"planner/priors/priors.yaml: cross_tokenizer_mode: {exc}") from None


def retokenised_tokens_per_round(k: int, committed: float) -> float:
    """Tokens decoded to text and encoded again per round (tokens per round).

    Target -> assistant: the target's lookbehind window plus the ``committed`` tokens of the last
    round; assistant -> target: the assistant's lookbehind window plus its ``k`` new tokens.
    """
    mode = uag_mode()
    return mode.target_lookbehind_tokens + committed + mode.assistant_lookbehind_tokens + k


def uag_round_us(k: int, committed: float) -> float:
    """Host time one universal-assisted-generation round adds to the engine's round, us.

    The tokenizer calls' fixed cost, the re-tokenised tokens (both directions) and the alignment.
    """
    mode = uag_mode()
    return (mode.tokenizer_calls_per_round * mode.host_us_per_call
            + mode.host_us_per_retokenised_token * retokenised_tokens_per_round(k, committed)
            + mode.alignment_us_per_round)

"""Model-free proposers (n-gram prompt lookup, suffix decoding): no GPU weights or KV, a host matching cost.

vLLM's NgramProposer (vllm/v1/spec_decode/ngram_proposer.py) tries n from prompt_lookup_max down to
prompt_lookup_min and runs one numba-compiled KMP search (_find_subarray_kmp) of the last n tokens
over the request's context for each; SuffixDecoding (arXiv:2411.04975) walks a suffix tree along the
longest match. No figure for the time of one step was found (methods.yaml marks it UNVERIFIED), so
the cost is given as the work done, in token comparisons, for the cost model to price later.
"""

from __future__ import annotations

from planner.proposers.costs import ProposerMemory
from planner.proposers.methods import method_info

__all__ = ["host_memory", "ngram_match_comparisons", "suffix_match_steps", "host_step_us"]

_KMP_COMPARISONS_PER_TOKEN = 2  # KMP compares each text token at most twice (one advance, one fallback)


def host_memory() -> ProposerMemory:
    """An n-gram or suffix proposer's GPU memory: none (its tables live in host memory), in bytes."""
    return ProposerMemory(weight_bytes=0.0, kv_bytes_per_token=0.0, host_only=True)


def ngram_match_comparisons(context_tokens: int, min_n: int, max_n: int) -> int:
    """Worst-case token comparisons of one vLLM n-gram proposal step: one KMP scan per n, in comparisons.

    The scan stops at the first n that matches, so this is the upper bound (no n matches).
    """
    if not 1 <= min_n <= max_n:
        raise ValueError("need 1 <= prompt_lookup_min <= prompt_lookup_max")
    return (max_n - min_n + 1) * _KMP_COMPARISONS_PER_TOKEN * context_tokens


def suffix_match_steps(match_tokens: int, speculated_tokens: int) -> int:
    """Suffix-tree nodes one SuffixDecoding step visits: the match walk plus the proposed tree, in nodes."""
    return match_tokens + speculated_tokens


def host_step_us(method: str) -> float | None:
    """Published host time of one proposal step, microseconds, or None where no figure exists (UNVERIFIED)."""
    return method_info(method).host_step_us  # type: ignore[arg-type]

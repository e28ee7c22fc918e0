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

__all__ = ["host_memory", "ngram_match_comparisons", "suffix_match_steps", "host_step_us", "host_round_us",
           "NGRAM_DEFAULT_N"]

_KMP_COMPARISONS_PER_TOKEN = 2  # KMP compares each text token at most twice (one advance, one fallback)
# A compiled scalar loop (numba in vLLM, C++ in SGLang / llama.cpp) retires one int32
# compare-and-branch in about 1-3 cycles of a ~3 GHz server core: ~1 ns per comparison. Physics,
# not a measurement (no published per-step figure exists: methods.yaml host_step_note).
_NS_PER_COMPARISON = 1.0
_SUFFIX_NS_PER_NODE = 50.0  # a pointer-chasing tree walk: one cache miss (~50-100 ns) per node, the low end
NGRAM_DEFAULT_N = (5, 5)  # vLLM SpeculativeConfig: prompt_lookup_min / max default to 5 when neither is given


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


def host_round_us(method: str, context_tokens: float, k: int, ngram_n: tuple[int, int] = NGRAM_DEFAULT_N) -> float:
    """Host time of one lookup proposal per request and round, microseconds (an estimate; see the constants).

    n-gram: the worst-case KMP scans of ngram_match_comparisons at ~1 ns each (one proposal
    serves the whole round: the k tokens after the match are copied at once). Suffix: a walk of
    about k nodes plus the match (taken as k) at a cache miss each.
    """
    if method == "ngram":
        return ngram_match_comparisons(int(context_tokens), *ngram_n) * _NS_PER_COMPARISON / 1000.0
    if method == "suffix":
        return suffix_match_steps(k, k) * _SUFFIX_NS_PER_NODE / 1000.0
    raise ValueError(f"{method} is not a host lookup method")

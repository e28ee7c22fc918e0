"""What one speculation method is run with: the settings every server export of it reads.

``MethodSettings`` is server-neutral: ``k`` is the number of tokens proposed per verify step
(vLLM num_speculative_tokens, TRT-LLM max_draft_len, llama.cpp n-max); a tree is SGLang's
(num_steps, topk, num_draft_tokens), with a chain (topk 1, num_draft_tokens = k + 1, as
SGLang's docs say: "If topk=1, it is adjusted to num_steps + 1") as the default. Each
server's keys for these are data (planner/exports/server_args/methods.yaml) read by
planner/exports/method_args.py.

Ranges are the servers' own checks where they have one (vLLM SpeculativeConfig
``prompt_lookup_min <= prompt_lookup_max``, ``suffix_decoding_min_token_prob`` in [0, 1];
llama.cpp's n-gram sizes 1..1024 in common/arg.cpp at b11312), so a setting no server
takes is refused here, on one line, before any file is written.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from planner.errors import SpecplanError

__all__ = ["METHODS", "HEAD_METHODS", "DERIVED_FROM", "MethodSettings", "method_settings", "tree_candidates"]

Method = Literal["draft", "eagle", "eagle3", "mtp", "ngram", "suffix"]
METHODS: tuple[str, ...] = ("draft", "eagle", "eagle3", "mtp", "ngram", "suffix")
HEAD_METHODS = frozenset({"draft", "eagle", "eagle3"})  # a separate checkpoint must be named
_TREE_METHODS = frozenset({"draft", "eagle", "eagle3", "mtp", "ngram"})
_NGRAM_SIZE_MAX = 1024  # llama.cpp common/arg.cpp b11312: "ngram size N must be between 1 and 1024 inclusive"
LlamacppNgram = Literal["ngram-simple", "ngram-map-k", "ngram-map-k4v", "ngram-mod", "ngram-cache"]


def tree_candidates(steps: int, topk: int) -> int:
    """Tokens an EAGLE-2 style tree can verify, the root included (count).

    The first step keeps topk tokens, each later step expands each of the topk kept
    tokens by topk children (topk^2 candidates), and the root is the target's own token:
    1 + topk + (steps - 1) * topk^2; SGLang picks num_draft_tokens - 1 of these
    with torch.topk (sglang/srt/speculative/build_eagle_tree.py of SGLang 0.5.3,
    build_tree_kernel_efficient_preprocess: "n= 1 + (num_steps-1) * self.topk" rows of topk scores).
    A chain (topk 1): steps + 1.
    """
    return 1 + topk + (steps - 1) * topk * topk


# The fields each derived value reads: a setting the user gave that no key of a line reads is
# reported as left to the server (planner/exports/method_args.py).
DERIVED_FROM: dict[str, frozenset[str]] = {
    "steps": frozenset({"num_steps", "k"}),
    "breadth": frozenset({"topk"}),
    "draft_tokens": frozenset({"num_draft_tokens", "num_steps", "k"}),
    "dynamic_tree": frozenset({"topk"}),
    "tree_topk": frozenset({"topk"}),
    "tree_nodes": frozenset({"num_draft_tokens", "num_steps", "k", "topk"}),
}


class MethodSettings(BaseModel):
    """One method and its settings; fields a method does not use stay None."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Method
    k: int | None = Field(default=None, ge=1)  # tokens proposed per verify step
    # tree (SGLang --speculative-num-steps / --speculative-eagle-topk / --speculative-num-draft-tokens)
    num_steps: int | None = Field(default=None, ge=1)
    topk: int | None = Field(default=None, ge=1)
    num_draft_tokens: int | None = Field(default=None, ge=2)  # tree nodes verified, the root included
    head: str | None = Field(default=None, min_length=1)  # Hub id or local path of the draft / head / MTP module
    # n-gram matching: vLLM prompt_lookup_min/max, SGLang 0.5.3 match windows, llama.cpp size N, TRT-LLM max_matching_ngram_size
    prompt_lookup_min: int | None = Field(default=None, ge=1, le=_NGRAM_SIZE_MAX)
    prompt_lookup_max: int | None = Field(default=None, ge=1, le=_NGRAM_SIZE_MAX)
    ngram_min_bfs_breadth: int | None = Field(default=None, ge=1)  # SGLang
    ngram_max_bfs_breadth: int | None = Field(default=None, ge=1)  # SGLang
    ngram_branch_length: int | None = Field(default=None, ge=1)  # SGLang branch length (max trie depth later)
    llamacpp_ngram_type: LlamacppNgram = "ngram-simple"
    # suffix decoding (vLLM suffix_decoding_*; SpeculativeConfig._validate_suffix_decoding ranges)
    suffix_max_tree_depth: int | None = Field(default=None, ge=1)
    suffix_max_cached_requests: int | None = Field(default=None, ge=0)
    suffix_max_spec_factor: float | None = Field(default=None, ge=0)
    suffix_min_token_prob: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> MethodSettings:
        m = self.method
        if m in HEAD_METHODS and self.head is None:
            raise ValueError(f"method {m} needs the head's Hub id or local path (head)")
        if m != "suffix" and self.k is None and self.num_steps is None:
            raise ValueError(f"method {m} needs k (tokens proposed per step)")
        tree = (self.num_steps, self.topk, self.num_draft_tokens)
        if any(v is not None for v in tree):
            if m not in _TREE_METHODS:
                raise ValueError(f"method {m} takes no tree shape (num_steps, topk, num_draft_tokens)")
            if m != "ngram" and None in tree:
                # SGLang docs: set --speculative-num-steps, --speculative-eagle-topk and --speculative-num-draft-tokens together
                raise ValueError("a tree needs num_steps, topk and num_draft_tokens together")
        if None not in tree:
            steps, topk, nodes = tree
            if nodes > (pool := tree_candidates(steps, topk)):  # type: ignore[arg-type]
                raise ValueError(f"num_draft_tokens {nodes} exceeds the {pool} candidates a tree of "
                                 f"{steps} steps x topk {topk} has (root included)")
            if topk == 1 and nodes != steps + 1:  # type: ignore[operator]
                raise ValueError(f"with topk 1 num_draft_tokens must be num_steps + 1 = {steps + 1}")  # type: ignore[operator]
        low, high = self.prompt_lookup_min, self.prompt_lookup_max
        if low is not None and high is not None and low > high:
            raise ValueError(f"prompt_lookup_min {low} must be <= prompt_lookup_max {high}")
        b_low, b_high = self.ngram_min_bfs_breadth, self.ngram_max_bfs_breadth
        if b_low is not None and b_high is not None and b_low > b_high:
            raise ValueError(f"ngram_min_bfs_breadth {b_low} must be <= ngram_max_bfs_breadth {b_high}")
        return self

    @property
    def steps(self) -> int:
        """Draft steps (tree depth); a chain drafts k tokens in k steps."""
        return self.num_steps if self.num_steps is not None else self.k or 1

    @property
    def breadth(self) -> int:
        """Candidates kept per step (1: a chain)."""
        return self.topk or 1

    @property
    def draft_tokens(self) -> int:
        """Tokens verified per step, the root included (a chain: k + 1)."""
        return self.num_draft_tokens if self.num_draft_tokens is not None else self.steps + 1

    @property
    def is_tree(self) -> bool:
        """True when more than one candidate is kept per step."""
        return self.breadth > 1

    @property
    def dynamic_tree(self) -> bool | None:
        """True for a tree, None for a chain (TRT-LLM use_dynamic_tree is then left at its default)."""
        return True if self.is_tree else None

    @property
    def tree_topk(self) -> int | None:
        """topk of a tree, None for a chain."""
        return self.breadth if self.is_tree else None

    @property
    def tree_nodes(self) -> int | None:
        """Draft tokens of a tree without its root (TRT-LLM max_total_draft_tokens), None for a chain."""
        return self.draft_tokens - 1 if self.is_tree else None


def method_settings(**fields: object) -> MethodSettings:
    """``MethodSettings(**fields)``, a bad value refused on one line (SpecplanError)."""
    try:
        return MethodSettings(**fields)  # type: ignore[arg-type]
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        raise SpecplanError(f"method settings: {where + ': ' if where else ''}{' '.join(msg.split())}") from None

"""Token-tree shapes: a parent array over the draft nodes, each node's depth and its draft rank.

Node i (0-based, numbered so every parent comes before its children) is one drafted token;
``parents[i] == -1`` means its parent is the root, the last committed token (the target's own
token, verified for free). ``ranks[i]`` is the node's rank in its parent's draft distribution
(0 = the draft's top-1 candidate), which the acceptance model prices. Siblings have distinct
ranks. A node is also named by its *rank path*, the ranks from the root down to it, e.g. (0, 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Sequence

import numpy as np

from planner.errors import SpecplanError

__all__ = ["TreeInputError", "TokenTree", "chain", "full_tree", "from_paths", "vllm_token_tree"]

MAX_NODES = 4096  # far above any engine's draft-token budget (SGLang's defaults verify 8)


class TreeInputError(SpecplanError, ValueError):
    """A tree shape, acceptance table or search range out of range (one-line message)."""


@dataclass(frozen=True)
class TokenTree:
    """A draft token tree: ``parents[i]`` (-1 = the root) and ``ranks[i]`` per draft node."""

    parents: tuple[int, ...]
    ranks: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.parents) != len(self.ranks):
            raise TreeInputError(f"a tree needs one rank per node (got {len(self.parents)} parents, {len(self.ranks)} ranks)")
        if len(self.parents) > MAX_NODES:
            raise TreeInputError(f"a tree may hold at most {MAX_NODES} draft nodes (got {len(self.parents)})")
        seen: set[tuple[int, int]] = set()
        for i, (p, r) in enumerate(zip(self.parents, self.ranks)):
            if not -1 <= p < i:
                raise TreeInputError(f"node {i}'s parent must be -1 (the root) or an earlier node (got {p})")
            if r < 0:
                raise TreeInputError(f"node {i}'s rank must be >= 0 (got {r})")
            if (p, r) in seen:
                raise TreeInputError(f"node {i} repeats rank {r} among the children of {'the root' if p < 0 else p}")
            seen.add((p, r))

    @property
    def num_nodes(self) -> int:
        """Draft tokens in the tree (the root excluded). Unit: tokens."""
        return len(self.parents)

    @property
    def num_draft_tokens(self) -> int:
        """Tokens the target verifies per request and round, the root included: SGLang's
        ``speculative_num_draft_tokens``. Unit: tokens."""
        return len(self.parents) + 1

    @cached_property
    def depths(self) -> np.ndarray:
        """Each node's depth (a child of the root has depth 1). Unit: tokens from the root."""
        d = np.zeros(self.num_nodes, dtype=np.int64)
        for i, p in enumerate(self.parents):
            d[i] = 1 if p < 0 else d[p] + 1
        d.setflags(write=False)
        return d

    @property
    def depth(self) -> int:
        """The deepest node's depth (0 for the empty tree): the most drafts a round can keep."""
        return int(self.depths.max()) if self.num_nodes else 0

    @cached_property
    def paths(self) -> tuple[tuple[int, ...], ...]:
        """Each node's rank path from the root, in node order."""
        out: list[tuple[int, ...]] = []
        for p, r in zip(self.parents, self.ranks):
            out.append((() if p < 0 else out[p]) + (r,))
        return tuple(out)

    def contains(self, other: TokenTree) -> bool:
        """Whether every node of ``other`` (by rank path) is a node of this tree."""
        return set(other.paths) <= set(self.paths)


def from_paths(paths: Iterable[Sequence[int]]) -> TokenTree:
    """The tree whose nodes are the given rank paths; every prefix of a path must be given too."""
    unique = sorted({tuple(int(r) for r in p) for p in paths}, key=lambda p: (len(p), p))
    index = {p: i for i, p in enumerate(unique)}
    parents, ranks = [], []
    for p in unique:
        if not p:
            raise TreeInputError("the empty rank path is the root, not a draft node")
        if len(p) > 1 and p[:-1] not in index:
            raise TreeInputError(f"rank path {list(p)} has no parent {list(p[:-1])} in the tree")
        parents.append(index[p[:-1]] if len(p) > 1 else -1)
        ranks.append(p[-1])
    return TokenTree(tuple(parents), tuple(ranks))


def chain(k: int) -> TokenTree:
    """k drafts in a row, each the draft's top-1: the classic speculative-decoding round."""
    if not 0 <= k <= MAX_NODES:
        raise TreeInputError(f"a chain needs 0..{MAX_NODES} drafts (got {k})")
    return TokenTree(tuple(range(-1, k - 1)), (0,) * k)


def full_tree(branching: Sequence[int]) -> TokenTree:
    """The full tree with ``branching[d-1]`` children (ranks 0..b-1) under every node at depth d-1.

    ``full_tree([2, 2])`` is the root's top-2 candidates, each with its own top-2: 6 drafts.
    """
    total, width = 0, 1
    for b in branching:
        if b < 1:
            raise TreeInputError(f"every depth needs at least one child per node (got {b})")
        width *= b
        total += width
        if total > MAX_NODES:
            raise TreeInputError(f"the full tree {list(branching)} has more than {MAX_NODES} nodes")
    parents: list[int] = []
    ranks: list[int] = []
    level = [-1]
    for b in branching:
        next_level = []
        for p in level:
            for r in range(b):
                next_level.append(len(parents))
                parents.append(p)
                ranks.append(r)
        level = next_level
    return TokenTree(tuple(parents), tuple(ranks))


def vllm_token_tree(tree: TokenTree) -> str:
    """The tree as vLLM's ``speculative_token_tree``: its rank paths, level by level, as a string.

    vLLM's EAGLE proposer (vllm/v1/spec_decode/eagle.py @ f7eef1b6987f4780fe8636077682936fe075aa2f,
    ``propose_tree``) drafts this static tree; its tests pass ``str(list_of_tuples)`` with
    ``num_speculative_tokens == len(tree)``, e.g. ``"[(0,), (0, 0), (0, 1)]"``.
    """
    return str(sorted(tree.paths, key=lambda p: (len(p), p)))

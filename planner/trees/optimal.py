"""The tree with the largest E[L] for a node budget, under an AcceptanceModel.

Claim: taking nodes best-first by path probability (a max-heap over the children of the nodes
taken so far) is optimal. Proof: E[L] - 1 is the sum of P(node) over the tree's nodes, and any
ancestor-closed set of rank paths is a tree. P never grows from a node to its child (each factor
a[d][j] <= 1), so the N paths of largest P, ties broken towards shallower paths, are
ancestor-closed: they are a tree, and no N-node tree has a larger sum. The heap pops exactly those
N paths, because every path not yet in the heap has an ancestor in it with at least its P.
This is the tree EAGLE-2's dynamic tree aims at with draft confidence standing in for P
(Li et al. 2024, "EAGLE-2: Faster Inference of Language Models with Dynamic Draft Trees").
tests/test_trees.py checks it against brute force over every tree of small budgets.
"""

from __future__ import annotations

import heapq

from planner.trees.acceptance import AcceptanceModel
from planner.trees.shapes import MAX_NODES, TokenTree, TreeInputError

__all__ = ["best_tree"]


def best_tree(budget: int, model: AcceptanceModel, max_depth: int | None = None) -> TokenTree:
    """The ``budget``-node tree (depth <= max_depth if given) maximising E[L] under ``model``.

    Unit of budget: draft tokens (SGLang's num_draft_tokens - 1). Nodes the model gives
    probability 0 are left out (they add nothing), so the tree may hold fewer. Ties go to
    shallower, then lower-rank nodes, so the answer is deterministic.
    """
    if not 0 <= budget <= MAX_NODES:
        raise TreeInputError(f"the node budget must be between 0 and {MAX_NODES} (got {budget})")
    if max_depth is not None and max_depth < 1:
        raise TreeInputError(f"max_depth must be at least 1 (got {max_depth})")
    parents: list[int] = []
    ranks: list[int] = []
    heap: list[tuple[float, int, int, int]] = []  # (-P, depth, rank, parent) per candidate

    def push_children(parent: int, p_parent: float, depth: int) -> None:
        if max_depth is not None and depth > max_depth:
            return
        for r in range(model.num_ranks):
            p = p_parent * float(model.rate(depth, r))
            if p > 0:
                heapq.heappush(heap, (-p, depth, r, parent))

    push_children(-1, 1.0, 1)
    while heap and len(parents) < budget:
        neg_p, depth, r, parent = heapq.heappop(heap)
        parents.append(parent)
        ranks.append(r)
        push_children(len(parents) - 1, -neg_p, depth + 1)
    return TokenTree(tuple(parents), tuple(ranks))

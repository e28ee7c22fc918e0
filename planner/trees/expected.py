"""Closed forms for one verify round of a token tree under an AcceptanceModel.

The accepted nodes always form a path from the root (a node is reached only through its parent,
and at most one sibling matches), so with P(node) = the product of a[d][j] along its rank path:
* P(accepted depth >= d) = sum of P(node) over the nodes at depth d (disjoint events), and
* E[L] = 1 + sum of P(node) over all nodes: tokens committed per round, the target's own (bonus)
  token included, the definition SGLang and TensorRT-LLM print as "acceptance length".
"""

from __future__ import annotations

import numpy as np

from planner.trees.acceptance import AcceptanceModel
from planner.trees.shapes import TokenTree

__all__ = ["path_probabilities", "expected_accepted_length", "depth_survival", "accepted_depth_pmf"]


def path_probabilities(tree: TokenTree, model: AcceptanceModel) -> np.ndarray:
    """P(node i and all its ancestors are accepted) = prod of a[d][j] along its path, per node.

    Unit: probability, in node order.
    """
    own = model.rate(tree.depths, np.asarray(tree.ranks, dtype=np.int64)) if tree.num_nodes else np.zeros(0)
    p = np.empty(tree.num_nodes)
    for i, parent in enumerate(tree.parents):  # parents come first, so one pass suffices
        p[i] = own[i] * (1.0 if parent < 0 else p[parent])
    return p


def expected_accepted_length(tree: TokenTree, model: AcceptanceModel) -> float:
    """E[L] = 1 + sum over nodes of P(path to node accepted). Unit: tokens committed per round.

    Between 1 (empty tree or nothing accepted) and depth + 1. For a chain with a[d][0] = alpha this
    is 1 + alpha + ... + alpha^k, planner.speedup.expected_accepted_length(alpha, k).
    """
    return float(1.0 + path_probabilities(tree, model).sum())


def depth_survival(tree: TokenTree, model: AcceptanceModel) -> np.ndarray:
    """S_d = P(accepted depth >= d) for d = 0..depth (S_0 = 1). Unit: probability, non-increasing."""
    s = np.zeros(tree.depth + 1)
    s[0] = 1.0
    np.add.at(s, tree.depths, path_probabilities(tree, model))
    return s


def accepted_depth_pmf(tree: TokenTree, model: AcceptanceModel) -> np.ndarray:
    """P(D = d) for d = 0..depth: drafts kept in one round (tokens committed L = D + 1).

    S_d - S_(d+1), with S_(depth+1) = 0. Unit: probability; sums to 1.
    """
    s = depth_survival(tree, model)
    # Rounding can leave -1e-17 where two equal survivals cancel; a probability is never below 0.
    return np.clip(s - np.append(s[1:], 0.0), 0.0, None)

"""Published static draft trees by name (static_trees.yaml) and the E[L] of any measured shape.

A published acceptance figure names its tree in one of three ways: a chain of k drafts, a static
tree by name (EAGLE's and Medusa's ``mc_sim_7b_63``), or a dynamic tree by its (depth, topk,
verify tokens), which SGLang builds per round and EAGLE-2/3's ``topK_genrate`` builds the same way
(planner.trees.eagle). ``shape_expected_length`` gives E[L] for each under a top-1 alpha and a
rank profile, so one function serves the rank-profile fit and the method priors' tree model.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

import numpy as np
import yaml

from planner.trees.acceptance import RankProfile, chain_model, model_from_alpha
from planner.trees.eagle import sglang_expected_lengths
from planner.trees.expected import expected_accepted_length
from planner.trees.shapes import TokenTree, TreeInputError, chain, from_paths

__all__ = ["NamedTree", "static_tree", "static_trees", "MeasuredShape", "shape_expected_length", "shape_tree",
           "shape_longest_length", "draft_pass_widths"]


@dataclass(frozen=True)
class NamedTree:
    """A static tree as its code names it, with the file it was read from."""

    name: str
    owner: str
    tree: TokenTree
    source: str


@lru_cache(maxsize=1)
def static_trees() -> tuple[NamedTree, ...]:
    """Every tree of static_trees.yaml."""
    raw = yaml.safe_load(files("planner.trees").joinpath("static_trees.yaml").read_text(encoding="utf-8"))
    return tuple(NamedTree(str(t["name"]), str(t["owner"]), from_paths(t["paths"]), " ".join(str(t["source"]).split()))
                 for t in raw["trees"])


def static_tree(name: str, nodes: int | None = None) -> NamedTree | None:
    """The static tree called ``name`` with ``nodes`` draft nodes (any size when None); None if unknown.

    Two owners share a name (EAGLE's and Medusa's mc_sim_7b_63); the node count tells them apart.
    """
    hits = [t for t in static_trees() if t.name == name and (nodes is None or t.tree.num_nodes == nodes)]
    return hits[0] if len(hits) == 1 else None


@dataclass(frozen=True)
class MeasuredShape:
    """What a figure was measured on: kind "chain" (k), "static" (tree name, nodes) or "dynamic"
    (depth = SGLang num_steps, topk, verify_tokens = num_draft_tokens, root included); tokens."""

    kind: str
    k: int | None = None
    name: str | None = None
    depth: int | None = None
    topk: int | None = None
    verify_tokens: int | None = None


def shape_tree(shape: MeasuredShape) -> TokenTree | None:
    """The static tree or chain a shape names (None for a dynamic tree, rebuilt per round)."""
    if shape.kind == "chain" and shape.k:
        return chain(shape.k)
    if shape.kind == "static":
        named = static_tree(str(shape.name), None if shape.verify_tokens is None else shape.verify_tokens - 1)
        if named is None:
            raise TreeInputError(f"no static tree {shape.name!r} with {shape.verify_tokens} verify tokens in static_trees.yaml")
        return named.tree
    if shape.kind == "dynamic" and shape.depth and shape.topk and shape.verify_tokens:
        return None
    raise TreeInputError(f"cannot price the shape {shape}: a chain needs k, a static tree a name, a dynamic one depth,"
                         " topk and verify tokens")


def shape_longest_length(shape: MeasuredShape) -> int:
    """E[L] when every top-1 matches: the deepest path plus the bonus token. Unit: tokens per round."""
    tree = shape_tree(shape)
    if tree is not None:
        return tree.depth + 1
    assert shape.depth is not None and shape.verify_tokens is not None
    return min(shape.depth + 1, shape.verify_tokens)


def draft_pass_widths(shape: MeasuredShape) -> tuple[int, ...]:
    """Tokens per request in each proposer pass of one round, in order. Unit: tokens.

    The proposer runs once per tree level: first on the last committed token (1), then on the
    nodes of each level that has children below it. A chain of k: k passes of 1. A dynamic
    (depth, topk) tree: 1, then depth - 1 passes of topk (each frontier expands its topk best,
    planner.trees.eagle). A static tree: 1, then the node count of each level 1 .. depth - 1.
    """
    tree = shape_tree(shape)
    if tree is None:
        assert shape.depth is not None and shape.topk is not None
        return (1,) + (int(shape.topk),) * (int(shape.depth) - 1)
    levels = np.bincount(tree.depths, minlength=tree.depth + 1)
    return (1,) + tuple(int(n) for n in levels[1:tree.depth])


def shape_expected_length(shape: MeasuredShape, alpha: float, profile: RankProfile | None = None) -> float:
    """E[L] of ``shape`` when the draft's top-1 is accepted with probability ``alpha`` at every depth
    and lower ranks split the misses by ``profile`` (rank_profiles.yaml's default when None).

    A chain is 1 + alpha + ... + alpha^k; a static tree its closed form over its nodes; a dynamic
    tree SGLang's (depth, topk, verify_tokens) tree scored by path probability. Unit: tokens
    committed per verify step, the target's own token included.
    """
    tree = shape_tree(shape)
    if tree is None:  # dynamic: SGLang's / EAGLE-2's tree rebuilt from the path scores
        assert shape.depth is not None and shape.topk is not None and shape.verify_tokens is not None
        lengths = sglang_expected_lengths(shape.depth, shape.topk, model_from_alpha(alpha, shape.topk, profile))
        return float(lengths[min(shape.verify_tokens, len(lengths)) - 1])
    if shape.kind == "chain":
        return expected_accepted_length(tree, chain_model(alpha))
    return expected_accepted_length(tree, model_from_alpha(alpha, max(tree.ranks) + 1, profile))

"""The tree model of the method priors: tau of a published tree shape under a per-token chain alpha.

``tree_model_for(method)`` returns a TreeModel (shape, alpha) -> tau that prices a methods.yaml
shape with planner.trees under the method's rank profile (rank_profiles.yaml by_method: the fitted
``eagle-fit`` for EAGLE heads, Medusa's published split for Medusa):
* a chain: 1 + alpha + ... + alpha^k;
* a dynamic tree with a topk (EAGLE-2/3's topK_genrate, SGLang's num_steps / topk /
  num_draft_tokens): SGLang's tree, planner.trees.sglang_eagle_tree;
* a static tree that planner/trees/static_trees.yaml names (EAGLE's and Medusa's mc_sim_7b_63);
* any other static tree: the best tree for its node budget and depth (planner.trees.best_tree), an
  approximation that can only overstate the tree, so its alpha leans low; ``shape_basis`` says so.
``fitted_tree_model`` is the method priors' default: the model only where the profile was fitted.
"""

from __future__ import annotations

from planner.priors.method_rows import Shape, TreeModel
from planner.trees import (
    MeasuredShape, RankProfile, best_tree, expected_accepted_length, method_rank_profile, model_from_alpha,
    shape_expected_length, static_tree,
)

__all__ = ["BEST_TREE_RANKS", "measured_shape", "shape_basis", "tree_tau", "tree_model_for", "fitted_tree_model"]

BEST_TREE_RANKS = 10  # ranks the budget approximation may use: EAGLE's top_k default


def measured_shape(shape: Shape) -> MeasuredShape | None:
    """The planner.trees shape a methods.yaml shape names, or None when only the budget approximation fits."""
    if shape.kind == "chain":
        return MeasuredShape("chain", k=shape.k)
    if shape.topk:
        return MeasuredShape("dynamic", depth=shape.depth, topk=shape.topk, verify_tokens=shape.verify_tokens)
    if shape.tree and static_tree(shape.tree, int(shape.verify_tokens) - 1) is not None:  # type: ignore[arg-type]
        return MeasuredShape("static", name=shape.tree, verify_tokens=shape.verify_tokens)
    return None


def shape_basis(shape: Shape) -> str:
    """How tree_tau prices the shape, in words (for explanations)."""
    m = measured_shape(shape)
    if m is None:
        return (f"no static tree {shape.tree!r} of {shape.verify_tokens} tokens is catalogued: the best tree of "
                f"{int(shape.verify_tokens) - 1} nodes and depth {shape.depth} stands in (an upper bound on its tau)")  # type: ignore[arg-type]
    return {"chain": "a chain", "dynamic": "SGLang's / EAGLE-2's dynamic tree", "static": f"the static tree {shape.tree}"}[m.kind]


def tree_tau(shape: Shape, alpha: float, profile: RankProfile) -> float:
    """tau of ``shape`` at top-1 acceptance ``alpha`` under ``profile``. Unit: tokens per verify step."""
    m = measured_shape(shape)
    if m is not None:
        return shape_expected_length(m, alpha, profile)
    model = model_from_alpha(alpha, BEST_TREE_RANKS, profile)
    return expected_accepted_length(best_tree(int(shape.verify_tokens) - 1, model, max_depth=shape.depth), model)  # type: ignore[arg-type]


def tree_model_for(method: str) -> TreeModel:
    """The TreeModel for ``method``'s rows: tree_tau under rank_profiles.yaml's profile for the method."""
    profile = method_rank_profile(method)

    def model(shape: Shape, alpha: float) -> float:
        return tree_tau(shape, alpha, profile)

    return model


def fitted_tree_model(method: str) -> TreeModel | None:
    """tree_model_for(method) when the method's rank profile was fitted to chain/tree pairs, else None.

    Medusa's profile is a published top-1 / top-5 coverage of one head, and Medusa's heads lose
    accuracy with depth, which one alpha per depth cannot show: its tree rows stay upper bounds.
    """
    return tree_model_for(method) if method_rank_profile(method).retention is not None else None

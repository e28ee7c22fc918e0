"""Token trees for speculative decoding: shapes, expected accepted length, the best tree, SGLang's EAGLE shape.

Model. Each round the draft proposes a tree of tokens rooted at the last committed token; the
target verifies every node at once (tree attention) and keeps the longest root path whose tokens
all match its own, plus one token of its own. At depth d, given its parent was accepted, the
target's token is the draft's rank-j candidate with probability a[d][j] (acceptance.py), and no
candidate with probability 1 - sum_j a[d][j]. So E[L] = 1 + sum over nodes of the product of
a along the node's path (expected.py), a chain with a[d][0] = alpha being planner.speedup's i.i.d.
case; best_tree (optimal.py) takes nodes best-first by that product, which is optimal for a node
budget; sglang_eagle_tree (eagle.py) rebuilds SGLang's (steps, topk, num_draft_tokens) tree with
path probabilities as its scores; costs.py counts a round's verify and draft work and searches the
shape with the most tokens/s under a round-time callable; inverse.py turns a measured SGLang
acceptance length back into alpha; named.py holds the published static trees by name and the E[L]
of any measured shape; fit.py fits the rank profile to heads measured on a chain and on trees
(tree_fit_data.yaml), whose result rank_profiles.yaml stores as ``eagle-fit``.

Assumptions: greedy verification (at most one sibling matches; see acceptance.py for lossless
sampling); a[d][j] does not depend on the parent's rank or on the context; draft scores rank
candidates as their acceptance does (a calibrated draft). Layer: beside planner.speedup; imports
planner.speedup and planner.errors only.
"""

from planner.trees.acceptance import (
    AcceptanceModel, RankProfile, chain_model, method_rank_profile, model_from_alpha, rank_acceptance, rank_profile,
    rank_retention, residual_rank_share,
)
from planner.trees.costs import (
    SGLANG_GRID, RoundCounts, ShapeGrid, TreeShapeChoice, best_tree_shape, round_counts, shape_grid,
    tokens_per_second,
)
from planner.trees.eagle import check_eagle_shape, eagle_candidate_count, sglang_eagle_tree, sglang_expected_lengths
from planner.trees.expected import accepted_depth_pmf, depth_survival, expected_accepted_length, path_probabilities
from planner.trees.named import (MeasuredShape, NamedTree, draft_pass_widths, shape_expected_length, shape_longest_length,
                                 shape_tree, static_tree, static_trees)
from planner.trees.inverse import alpha_for_shape_length, alpha_from_mean_accepted_length, longest_accepted_length
from planner.trees.optimal import best_tree
from planner.trees.shapes import TokenTree, TreeInputError, chain, from_paths, full_tree, vllm_token_tree

__all__ = [
    "AcceptanceModel", "RankProfile", "chain_model", "model_from_alpha", "rank_acceptance", "rank_profile",
    "rank_retention", "residual_rank_share", "SGLANG_GRID", "RoundCounts", "ShapeGrid", "TreeShapeChoice",
    "best_tree_shape", "round_counts", "shape_grid", "tokens_per_second", "check_eagle_shape",
    "eagle_candidate_count", "sglang_eagle_tree", "sglang_expected_lengths", "accepted_depth_pmf", "depth_survival",
    "expected_accepted_length", "path_probabilities", "best_tree", "TokenTree", "TreeInputError", "chain",
    "from_paths", "full_tree", "vllm_token_tree", "alpha_from_mean_accepted_length", "longest_accepted_length",
    "method_rank_profile", "MeasuredShape", "NamedTree", "shape_expected_length", "static_tree", "static_trees",
    "draft_pass_widths", "shape_longest_length", "shape_tree", "alpha_for_shape_length",
]

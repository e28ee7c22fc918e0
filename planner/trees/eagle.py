"""SGLang's EAGLE tree for (speculative_num_steps, speculative_eagle_topk, speculative_num_draft_tokens).

What SGLang builds each round (sgl-project/sglang):
* python/sglang/srt/speculative/eagle_worker.py @ fba8eccd7ebe41bbdbf70ab3b6a2df1835f8b532,
  ``draft_forward``: ``for i in range(speculative_num_steps)`` calls ``select_top_k_tokens`` and
  breaks before the last forward ("we get 1 token from draft prefill and (#spec steps - 1) tokens
  here"), so a round runs steps draft passes, the first being the draft extend after verify.
* ``select_top_k_tokens`` (eagle_utils.py @ 263bc85d64baa38d82ec20f58a61f2982c78075d; spec_utils.py
  in later releases): step 0 takes the root's top-k children with their draft probabilities as
  scores; each later step multiplies every frontier node's score by its top-k child
  probabilities (topk x topk candidates, all kept in the score list) and makes the topk best of
  them, by cumulative score, the next frontier.
* ``organize_draft_results`` / ``build_tree_kernel_efficient_preprocess`` (eagle_utils.py above;
  build_eagle_tree.py @ 009db01a7c0d5460611d543516401eb497641918): ``torch.topk(score_list,
  num_draft_tokens - 1)`` over all topk + (steps - 1) topk^2 candidates, then the verified token
  is prepended as the root: the target verifies num_draft_tokens tokens.
* python/sglang/srt/server_args.py: with topk == 1, num_draft_tokens is reset to steps + 1 (a chain).
EAGLE-2's own dynamic tree (SafeAILab/EAGLE, eagle/model/cnets.py @
bfeb532e689a3db4e1a9081c7c83219c9385e84a, ``topK_genrate``) is the same expansion with log-score
sums and ``torch.topk(scores_list, total_token)``: total_token = num_draft_tokens - 1.

Here a candidate's score is its model path probability (EAGLE-2's premise that draft confidence
tracks acceptance; a calibrated draft), so the shape is what SGLang builds on an average round.
"""

from __future__ import annotations

import numpy as np

from planner.trees.acceptance import AcceptanceModel
from planner.trees.shapes import MAX_NODES, TokenTree, TreeInputError

__all__ = ["eagle_candidate_count", "check_eagle_shape", "sglang_eagle_tree", "sglang_expected_lengths"]


def eagle_candidate_count(steps: int, topk: int) -> int:
    """topk + (steps - 1) topk^2: draft candidates SGLang scores per request and round.

    Unit: tokens. num_draft_tokens - 1 of them are kept for verification.
    """
    return topk + (steps - 1) * topk * topk


def check_eagle_shape(steps: int, topk: int, num_draft_tokens: int) -> None:
    """Raise unless SGLang would build this shape as given (it rewrites topk == 1 shapes itself)."""
    if steps < 1 or topk < 1:
        raise TreeInputError(f"speculative_num_steps and speculative_eagle_topk must be >= 1 (got {steps}, {topk})")
    if topk == 1 and num_draft_tokens != steps + 1:
        raise TreeInputError(
            f"with speculative_eagle_topk 1 SGLang sets speculative_num_draft_tokens to steps + 1 = {steps + 1}"
            f" (got {num_draft_tokens})"
        )
    most = eagle_candidate_count(steps, topk) + 1
    if not 2 <= num_draft_tokens <= min(most, MAX_NODES + 1):
        raise TreeInputError(
            f"speculative_num_draft_tokens must be between 2 and topk + (steps - 1) topk^2 + 1 = {most}"
            f" for steps {steps}, topk {topk} (got {num_draft_tokens})"
        )


def _candidates(steps: int, topk: int, model: AcceptanceModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SGLang's candidate list in its order: (parent candidate or -1, rank, path-probability score).

    Depth by depth, every frontier node's topk children in frontier order, so candidate ids run
    over depths as SGLang's score list does.
    """
    ranks = np.arange(topk)
    parents, rank_parts, scores = [], [], []
    frontier, frontier_score, offset = np.array([-1]), np.array([1.0]), 0
    for depth in range(1, steps + 1):
        level_score = (frontier_score[:, None] * model.rate(depth, ranks)[None, :]).ravel()
        parents.append(np.repeat(frontier, topk))
        rank_parts.append(np.tile(ranks, frontier.size))
        scores.append(level_score)
        # Step 0 keeps all topk root children; later steps keep the topk best of topk^2 (ties: the earlier).
        best = np.argsort(-level_score, kind="stable")[:topk]
        frontier, frontier_score = offset + best, level_score[best]
        offset += level_score.size
    return np.concatenate(parents), np.concatenate(rank_parts), np.concatenate(scores)


def sglang_eagle_tree(steps: int, topk: int, num_draft_tokens: int, model: AcceptanceModel) -> TokenTree:
    """The tree SGLang verifies for (steps, topk, num_draft_tokens), scored by ``model``.

    Ties keep the earlier candidate (a parent is always listed before its children and scores at
    least as high, so the kept set is a tree).
    """
    check_eagle_shape(steps, topk, num_draft_tokens)
    parent_of, rank_of, score = _candidates(steps, topk, model)
    kept = sorted(int(i) for i in np.argsort(-score, kind="stable")[: num_draft_tokens - 1])
    new_index = {c: n for n, c in enumerate(kept)}
    parents = tuple(-1 if parent_of[c] < 0 else new_index[int(parent_of[c])] for c in kept)
    return TokenTree(parents, tuple(int(rank_of[c]) for c in kept))


def sglang_expected_lengths(steps: int, topk: int, model: AcceptanceModel) -> np.ndarray:
    """E[L] of sglang_eagle_tree(steps, topk, n, model) for n = 1, 2, ..., candidates + 1.

    The kept nodes are the n - 1 best scores and a node's score is its path probability, so E[L]
    is 1 plus the running sum of the sorted scores. Unit: tokens committed per round (index n - 1).
    """
    if steps < 1 or topk < 1:
        raise TreeInputError(f"speculative_num_steps and speculative_eagle_topk must be >= 1 (got {steps}, {topk})")
    score = _candidates(steps, topk, model)[2]
    return 1.0 + np.concatenate([[0.0], np.cumsum(np.sort(score)[::-1])])

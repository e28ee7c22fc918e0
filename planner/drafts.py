"""Which catalogue releases recommend tries as drafts for a target.

The catalogue lists each architecture once with its released variants (base, Instruct,
R1...). A draft must be smaller and share the target's token ids (the same tokenizer, or
one that only appends tokens: CodeLlama-7B's 32,016 for CodeLlama-34B's 32,000); of each
such architecture recommend tries one release: the one of the target's kind. Drafts with
another tokenizer (transformers' universal assisted generation) are tried only when asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.catalog.loading import model_catalog
from planner.catalog.schemas import ModelSpec
from planner.catalog.tokenizers import cross_tokenizer
from planner.footprint import parameter_counts

__all__ = ["DraftChoice", "draft_candidates", "no_draft_message"]


# Releases a draft should be, best first, for each kind of target: an Instruct target is
# drafted by Instruct releases (they were tuned on the same chat data, so their guesses match
# more often); drafts built for speculation ("draft") pair with every kind.
_DRAFT_KINDS = {"base": ("base",), "instruct": ("instruct",), "reasoning": ("reasoning", "instruct"),
                "draft": ("draft",)}


# What speculation needs no second model: the engines' own method lists are in
# planner/exports/server_args/*.yaml (vLLM ngram/eagle/eagle3/medusa, SGLang NGRAM/EAGLE/NEXTN,
# TensorRT-LLM NGram/Eagle/MTP, llama.cpp ngram-*/draft-eagle3/draft-mtp). Named only, never
# priced: EAGLE heads and MTP layers exist for some checkpoints, not all.
DRAFTLESS_PROPOSERS = "n-gram / prompt-lookup drafting, EAGLE heads, MTP layers"


@dataclass(frozen=True)
class DraftChoice:
    """The catalogue releases recommend tries as drafts, and why some are of another kind."""

    drafts: list[ModelSpec]
    notes: dict[str, str]  # draft id -> why its release kind differs from the target's


def _release_for(releases: list[ModelSpec], kind: str) -> tuple[ModelSpec, str | None]:
    """The release of one architecture to draft with for a ``kind`` target, and a note when it is another kind."""
    for wanted in (*_DRAFT_KINDS[kind], "draft"):
        match = next((m for m in releases if m.kind == wanted), None)
        if match is not None:
            return match, None
    chosen = releases[0]  # the architecture's own entry
    return chosen, (f"the catalogue has no {kind} release of draft {chosen.id}'s architecture: "
                    f"its {chosen.kind} release is ranked instead")


def draft_candidates(target: ModelSpec, include_cross_tokenizer: bool = False) -> DraftChoice:
    """One release per smaller catalogue architecture that shares the target's token ids.

    ``include_cross_tokenizer`` adds smaller architectures with another tokenizer (for
    transformers, which runs them as universal assisted generation).

    The release is the one of the target's kind (Instruct for an Instruct target), so the
    draft id printed is a repo that exists and resolves when typed back.
    """
    size = parameter_counts(target).total
    by_architecture: dict[str, list[ModelSpec]] = {}
    for m in model_catalog():
        if parameter_counts(m).total < size and (include_cross_tokenizer or not cross_tokenizer(target, m)):
            by_architecture.setdefault(m.architecture_id, []).append(m)
    drafts, notes = [], {}
    for releases in by_architecture.values():
        chosen, note = _release_for(releases, target.kind)
        drafts.append(chosen)
        if note:
            notes[chosen.id] = note
    return DraftChoice(drafts, notes)


def no_draft_message(target: ModelSpec, engine: str) -> str:
    """The one line recommend prints when no smaller catalogue model shares the target's token ids."""
    return (f"no same-tokenizer draft: no smaller catalogue model shares {target.id}'s tokenizer "
            f"({target.tokenizer}), so no draft-model speculation is ranked; proposers that need no draft "
            f"model ({DRAFTLESS_PROPOSERS}) may still apply where {engine} supports them for this "
            "checkpoint (not priced here)")

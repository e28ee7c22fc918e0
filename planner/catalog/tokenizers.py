"""Whether a draft's token ids mean the same tokens as the target's: judged from the token -> id map.

Speculative decoding hands the draft's token ids to the target, so what matters is that every id
either model can emit names the same token in both. Two tokenizers pass when their maps agree on
every id they share and the only difference is tokens appended after the other's last id (Code
Llama 7B = Llama 2's 32,000 pieces + 16 infill/special tokens at ids 32000-32015). Padded
embedding rows (vocab_size rounded up) are not tokens and never enter the comparison.

llama.cpp applies the same rule (common/speculative.cpp @ 6c8a04576e2cfa04261019fe8cbdc90c5cfc90fb,
common_speculative_are_compatible: token text equal from id 5 on up to the smaller vocabulary, sizes
at most SPEC_VOCAB_MAX_SIZE_DIFFERENCE = 128 apart).

Local folders are compared on the maps in their tokenizer.json files; catalogue entries on their
tokenizer identity plus ``tokenizer_base`` / ``tokenizer_base_vocab_size`` (the identity whose
first ids an extended tokenizer keeps unchanged, with its sources in model_db/).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from planner.catalog.schemas import ModelSpec
from planner.errors import SpecplanError
from planner.inputs import read_json

__all__ = ["TokenizerMatch", "token_pairs", "token_map", "read_token_map", "compare_token_maps", "match_tokenizers", "cross_tokenizer",
           "LLAMACPP_MAX_VOCAB_DIFFERENCE"]

Relation = Literal["same", "appended", "different", "unverified"]
LLAMACPP_MAX_VOCAB_DIFFERENCE = 128  # SPEC_VOCAB_MAX_SIZE_DIFFERENCE, common/speculative.cpp (see above)


@dataclass(frozen=True)
class TokenizerMatch:
    """How the draft's token -> id map relates to the target's."""

    relation: Relation
    shared_ids: int | None = None  # ids with the same token in both (None: not known)
    appended_target: int = 0  # tokens only the target has, after the shared ids
    appended_draft: int = 0  # tokens only the draft has, after the shared ids
    detail: str = ""

    @property
    def compatible(self) -> bool:
        """True when every id both can emit names one token: plain speculative decoding works."""
        return self.relation in ("same", "appended")


def token_pairs(doc: object) -> dict[str, int] | None:
    """token -> id from a parsed tokenizer.json (model vocab plus added_tokens), or None if it is not one."""
    try:
        vocab = doc["model"]["vocab"]  # type: ignore[index]
        pairs = dict(vocab) if isinstance(vocab, dict) else {str(t[0]): i for i, t in enumerate(vocab)}
        pairs.update({t["content"]: t["id"] for t in doc.get("added_tokens") or []})  # type: ignore[union-attr]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None
    if not all(isinstance(t, str) and isinstance(i, int) and not isinstance(i, bool) for t, i in pairs.items()):
        return None
    return pairs


def token_map(doc: object) -> dict[int, str] | None:
    """id -> token from a parsed tokenizer.json, or None if it is not one."""
    pairs = token_pairs(doc)
    return None if pairs is None else {i: t for t, i in pairs.items()}


@lru_cache(maxsize=8)
def _cached_map(path: str, _stamp: tuple[int, int]) -> dict[int, str] | None:
    try:
        return token_map(read_json(Path(path)))
    except SpecplanError:
        return None


def read_token_map(path: str | Path | None) -> dict[int, str] | None:
    """The id -> token map of a tokenizer.json, or None when there is no readable one."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _cached_map(str(path), (st.st_mtime_ns, st.st_size))


def compare_token_maps(target: dict[int, str], draft: dict[int, str]) -> TokenizerMatch:
    """Same map, one map plus appended ids, or different (the first id that disagrees)."""
    shared = target.keys() & draft.keys()
    clash = min((i for i in shared if target[i] != draft[i]), default=None)
    only_t, only_d = target.keys() - shared, draft.keys() - shared
    if clash is None and not only_t and not only_d:
        return TokenizerMatch("same", len(shared))
    if clash is not None:
        return TokenizerMatch("different", None, detail=f"id {clash} is {target[clash]!r} in the target's "
                              f"tokenizer but {draft[clash]!r} in the draft's")
    top_t, top_d = max(target, default=-1), max(draft, default=-1)
    if all(i > top_d for i in only_t) and all(i > top_t for i in only_d):
        return TokenizerMatch("appended", len(shared), len(only_t), len(only_d))
    gap = min(only_t | only_d)
    return TokenizerMatch("different", None, detail=f"id {gap} exists in only one tokenizer, below the other's last id")


def _catalog_match(target: ModelSpec, draft: ModelSpec) -> TokenizerMatch:
    """From identities: the same, or one extends the other by appending (``tokenizer_base``)."""
    if target.tokenizer == draft.tokenizer:
        return TokenizerMatch("same", target.tokenizer_vocab_size)
    if target.tokenizer.startswith("unknown:") or draft.tokenizer.startswith("unknown:"):
        return TokenizerMatch("unverified", detail="no tokenizer.json to compare")
    for longer, shorter, draft_longer in ((draft, target, True), (target, draft, False)):
        if longer.tokenizer_base == shorter.tokenizer and longer.tokenizer_base_vocab_size == shorter.tokenizer_vocab_size:
            extra = longer.tokenizer_vocab_size - shorter.tokenizer_vocab_size
            return TokenizerMatch("appended", shorter.tokenizer_vocab_size, 0 if draft_longer else extra,
                                  extra if draft_longer else 0)
    return TokenizerMatch("different")


def match_tokenizers(target: ModelSpec, draft: ModelSpec) -> TokenizerMatch:
    """Compare the two tokenizers: on their tokenizer.json maps when both have one, else on identities."""
    maps = read_token_map(target.tokenizer_file), read_token_map(draft.tokenizer_file)
    if maps[0] is not None and maps[1] is not None:
        return compare_token_maps(maps[0], maps[1])
    return _catalog_match(target, draft)


def cross_tokenizer(target: ModelSpec, draft: ModelSpec) -> bool:
    """True when the pair cannot share token ids, so only transformers' universal assisted generation runs it."""
    return not match_tokenizers(target, draft).compatible

"""Per-depth, per-rank acceptance: a[d][j] = P(the target's token at depth d is the draft's rank-j
candidate | the token at depth d-1 on this path was accepted).

Verification rule: greedy exact match (temperature 0; SGLang's and vLLM's tree verify keep the
child whose token equals the target's argmax). The target emits one token per position, so at
most one sibling can match: the events "rank j matches" are disjoint and sum_j a[d][j] <= 1; the
remainder is the chance that no candidate matches. Medusa's typical acceptance keeps the same
disjointness when it accepts the longest plausible candidate by a single target token per position.

Lossless sampling (SpecInfer's and EAGLE's multi-round rejection sampling) differs: sibling j is
tried only after siblings 0..j-1 were rejected, against the residual distribution those rejections
leave, so a[d][j] is then "the probability that sibling j is the one kept", a function of both
distributions rather than of the draft's top-k coverage. The closed forms still hold once a[d][j]
is read that way (at most one sibling is kept), but the default rank profile below, built from
top-k coverage, describes the greedy rule only.

Depths past the table repeat its last row (the i.i.d. model of planner.speedup is one row); ranks
past it have acceptance 0. The model assumes a[d][j] does not depend on which rank the parent had.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib.resources import files
from typing import Sequence

import numpy as np
import yaml

from planner.speedup import check_alpha
from planner.trees.shapes import TreeInputError

__all__ = [
    "AcceptanceModel", "RankProfile", "rank_profile", "method_rank_profile", "residual_rank_share", "rank_retention",
    "rank_acceptance", "chain_model", "model_from_alpha",
]

MAX_RANKS = 64  # no engine drafts a wider top-k (SGLang's topk and EAGLE's top_k stay near 10)


@dataclass(frozen=True)
class AcceptanceModel:
    """a[d][j] per depth row d = 1.. (``table[d-1]``) and rank column j = 0..; unit: probability."""

    table: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        if not self.table or any(len(row) != len(self.table[0]) for row in self.table) or not self.table[0]:
            raise TreeInputError("an acceptance table needs at least one row, all rows of the same non-zero length")
        a = check_alpha(self.matrix, name="per-rank acceptance")
        if a.shape[1] > MAX_RANKS:
            raise TreeInputError(f"an acceptance table may have at most {MAX_RANKS} ranks (got {a.shape[1]})")
        totals = a.sum(axis=1)
        if (totals > 1 + 1e-12).any():
            d = int(np.argmax(totals > 1 + 1e-12))
            raise TreeInputError(
                f"the ranks at depth {d + 1} sum to {totals[d]:.6g} > 1: under greedy verification at most one sibling matches"
            )

    @cached_property
    def matrix(self) -> np.ndarray:
        """The table as a (depths, ranks) float array (read-only: built once, shared by every rate call)."""
        m = np.asarray(self.table, dtype=float)
        m.setflags(write=False)
        return m

    @property
    def num_ranks(self) -> int:
        """Columns of the table: a sibling of a higher rank has acceptance 0 and adds nothing."""
        return len(self.table[0])

    def rate(self, depth: np.ndarray | int, rank: np.ndarray | int) -> np.ndarray:
        """a[depth][rank], broadcast; depths past the table repeat its last row, ranks past it give 0.

        Unit: probability.
        """
        m = self.matrix
        d = np.minimum(np.asarray(depth), m.shape[0]) - 1
        r = np.asarray(rank)
        inside = r < m.shape[1]
        return np.where(inside, m[d, np.minimum(r, m.shape[1] - 1)], 0.0)


@dataclass(frozen=True)
class RankProfile:
    """How a kind of draft's lower ranks catch the top-1's misses (rank_profiles.yaml).

    Either a published top-1 / top-k coverage pair, or a fitted ``retention`` (the q of
    rank_retention) with the fit's provenance in ``source``.
    """

    name: str
    top1_coverage: float | None  # P(target's token is the draft's top-1), probability
    topk_coverage: float | None  # P(target's token is among the draft's top k_ref), probability
    k_ref: int | None  # the k of topk_coverage, candidates
    source: str
    retention: float | None = None  # fitted q: the share of the remaining misses each further rank leaves

    def __post_init__(self) -> None:
        if self.retention is not None:
            if not 0 < self.retention < 1:
                raise TreeInputError(f"rank profile {self.name!r} needs a retention strictly between 0 and 1")
            return
        t1, tk, k = self.top1_coverage, self.topk_coverage, self.k_ref
        if t1 is None or tk is None or k is None or not (0 <= t1 <= tk <= 1 and t1 < 1 and k >= 2):
            raise TreeInputError(f"rank profile {self.name!r} needs 0 <= top1 <= topk <= 1, top1 < 1 and k_ref >= 2")


def _profile(name: str, p: dict) -> RankProfile:
    source = " ".join(str(p["source"]).split())
    if "retention" in p:
        return RankProfile(name, None, None, None, source, float(p["retention"]))
    return RankProfile(name, float(p["top1_coverage"]), float(p["topk_coverage"]), int(p["k_ref"]), source)


@lru_cache(maxsize=None)
def _document() -> dict:
    return yaml.safe_load(files("planner.trees").joinpath("rank_profiles.yaml").read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _profiles() -> tuple[str, dict[str, RankProfile]]:
    raw = _document()
    profiles = {name: _profile(name, p) for name, p in raw["profiles"].items()}
    return str(raw["default"]), profiles


def rank_profile(name: str | None = None) -> RankProfile:
    """A rank profile by name from rank_profiles.yaml; None gives the file's default."""
    default, profiles = _profiles()
    key = default if name is None else name
    if key not in profiles:
        raise TreeInputError(f"unknown rank profile {key!r} (known: {', '.join(sorted(profiles))})")
    return profiles[key]


def method_rank_profile(method: str) -> RankProfile:
    """The rank profile rank_profiles.yaml's by_method names for a speculation method (else the default)."""
    return rank_profile(_document().get("by_method", {}).get(method))


def residual_rank_share(profile: RankProfile) -> float:
    """(topk - top1) / (1 - top1): the share of the top-1's misses that ranks 2..k_ref catch.

    Unit: probability. Medusa's 0.60 / 0.80 at k = 5 gives 0.5. A fitted profile states no
    coverage: its share is the one rank 2 catches, 1 - retention.
    """
    if profile.retention is not None:
        return 1.0 - profile.retention
    return (profile.topk_coverage - profile.top1_coverage) / (1.0 - profile.top1_coverage)

def rank_retention(profile: RankProfile) -> float:
    """q with q^(k_ref - 1) = 1 - residual share: the fraction of the remaining misses each further
    rank leaves uncaught (a geometric split across ranks 2, 3, ...); a fitted profile's own q.
    Unit: probability."""
    if profile.retention is not None:
        return profile.retention
    return (1.0 - residual_rank_share(profile)) ** (1.0 / (profile.k_ref - 1))


def rank_acceptance(alpha: float, num_ranks: int, profile: RankProfile | None = None) -> np.ndarray:
    """a[j] for j = 0..num_ranks-1 from the top-1 acceptance alpha and a rank profile.

    a[0] = alpha; rank j >= 1 catches (1 - alpha) q^(j-1) (1 - q) with q = rank_retention, so ranks
    1..k_ref-1 together catch the profile's residual share of the misses, capped at a[j-1] (a
    calibrated draft's top-1 is its likeliest match, which the cap keeps true at small alpha).
    Unit: probability per rank; the sum stays <= 1.
    """
    a0 = float(check_alpha(alpha))
    if not 1 <= num_ranks <= MAX_RANKS:
        raise TreeInputError(f"num_ranks must be between 1 and {MAX_RANKS} (got {num_ranks})")
    q = rank_retention(profile or rank_profile())
    j = np.arange(1, num_ranks)
    raw = (1.0 - a0) * q ** (j - 1) * (1.0 - q)
    return np.concatenate([[a0], np.minimum.accumulate(np.minimum(raw, a0))]) if num_ranks > 1 else np.array([a0])


def chain_model(alphas: float | Sequence[float]) -> AcceptanceModel:
    """Only the top-1 is ever accepted, with alpha per depth (one value: every depth)."""
    a = np.atleast_1d(np.asarray(alphas, dtype=float))
    return AcceptanceModel(tuple((float(x),) for x in a))


def model_from_alpha(
    alphas: float | Sequence[float], num_ranks: int = 8, profile: RankProfile | None = None
) -> AcceptanceModel:
    """Per-depth top-1 acceptance alpha (one value: every depth) split over ranks by a profile."""
    a = np.atleast_1d(np.asarray(alphas, dtype=float))
    return AcceptanceModel(tuple(tuple(float(x) for x in rank_acceptance(x, num_ranks, profile)) for x in a))

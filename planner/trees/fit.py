"""Fit a rank profile's retention q to heads measured on both a chain and trees (tree_fit_data.yaml).

Model: at every depth the head's top-1 matches with alpha (one per group: head, target, benchmark)
and rank j >= 1 catches (1 - alpha) q^(j-1) (1 - q) (planner.trees.acceptance.rank_acceptance).
A chain's tau pins alpha; a tree's tau of the same head then pins q. q is shared by every group,
so it is fitted to all of them at once (least squares on tau, scipy.optimize.least_squares), never
to one row; holdout rows are predicted with their group's alpha and reported beside the residuals.

What the fit absorbs: EAGLE-2's dynamic tree adapts to each context, which an average tree under
one alpha cannot show, so its gain over the static tree is read as a larger q; the fitted q is an
effective figure for EAGLE-family heads at temperature 0, not a measured per-rank coverage.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

import numpy as np
import yaml

from planner.trees.acceptance import RankProfile
from planner.trees.named import MeasuredShape, shape_expected_length
from planner.trees.shapes import TreeInputError

__all__ = ["FitRow", "RankFit", "fit_rows", "fit_rank_retention", "fitted_profile"]

_Q_BOUNDS = (0.01, 0.99)  # q at 0 or 1 would make ranks 2.. catch everything or nothing


@dataclass(frozen=True)
class FitRow:
    """One published tau of one head on one shape."""

    group: str
    shape: MeasuredShape
    tau: float  # tokens committed per verify step, target's own token included
    source: str
    where: str
    holdout: bool = False


@dataclass(frozen=True)
class RankFit:
    """The fitted retention, each group's alpha, and every row's prediction and residual (tokens)."""

    retention: float  # q, probability
    alphas: dict[str, float]  # per group, top-1 acceptance (probability)
    rows: tuple[FitRow, ...]
    predicted: tuple[float, ...]  # model tau per row, tokens
    residuals: tuple[float, ...]  # predicted - published, tokens

    def _abs(self, holdout: bool) -> np.ndarray:
        return np.abs([r for r, row in zip(self.residuals, self.rows) if row.holdout == holdout])

    @property
    def rmse(self) -> float:
        """Root mean square residual over the fitted rows. Unit: tokens."""
        return float(np.sqrt(np.mean(self._abs(False) ** 2)))

    @property
    def max_abs_residual(self) -> float:
        """Largest |residual| over the fitted rows. Unit: tokens."""
        return float(self._abs(False).max())

    @property
    def holdout_max_abs_residual(self) -> float:
        """Largest |residual| over the holdout rows (0 when none). Unit: tokens."""
        h = self._abs(True)
        return float(h.max()) if h.size else 0.0


@lru_cache(maxsize=4)
def fit_rows(profile: str = "eagle-fit") -> tuple[FitRow, ...]:
    """The rows of tree_fit_data.yaml whose group feeds ``profile``, sources checked against the file's.

    A group names the profile it is fitted into (``profile``, default eagle-fit): heads of one
    training recipe share one split, and EAGLE-3's training-time test gives its lower ranks more
    weight than EAGLE-1's heads (its published tree gain over a chain is far larger).
    """
    raw = yaml.safe_load(files("planner.trees").joinpath("tree_fit_data.yaml").read_text(encoding="utf-8"))
    out = []
    for g in raw["groups"]:
        if g.get("profile", "eagle-fit") != profile:
            continue
        for r in g["rows"]:
            if r["source"] not in raw["sources"]:
                raise TreeInputError(f"tree_fit_data.yaml group {g['id']}: unknown source {r['source']!r}")
            out.append(FitRow(str(g["id"]), MeasuredShape(**r["shape"]), float(r["tau"]), str(r["source"]),
                              str(r["where"]), bool(r.get("holdout", False))))
    return tuple(out)


def _profile(q: float) -> RankProfile:
    return RankProfile("fit", None, None, None, "rank-profile fit in progress", float(q))


def _predict(rows: tuple[FitRow, ...], alphas: dict[str, float], q: float) -> np.ndarray:
    profile = _profile(q)
    return np.array([shape_expected_length(r.shape, alphas[r.group], profile) for r in rows])


def fit_rank_retention(rows: tuple[FitRow, ...]) -> RankFit:
    """Least-squares q (shared) and alpha per group over the non-holdout rows; tau residuals in tokens.

    Every group needs at least two fitted rows (one tau cannot separate its alpha from q).
    """
    fitted = tuple(r for r in rows if not r.holdout)
    groups = sorted({r.group for r in fitted})
    for g in groups:
        if sum(r.group == g for r in fitted) < 2:
            raise TreeInputError(f"group {g} needs at least two fitted rows to separate its alpha from the profile")
    if {r.group for r in rows} - set(groups):
        raise TreeInputError("every holdout row needs a group with fitted rows")

    def residual(x: np.ndarray) -> np.ndarray:
        alphas = dict(zip(groups, x[:-1]))
        return _predict(fitted, alphas, float(x[-1])) - np.array([r.tau for r in fitted])

    x0 = np.array([0.7] * len(groups) + [0.6])
    lower = np.array([0.0] * len(groups) + [_Q_BOUNDS[0]])
    upper = np.array([1.0] * len(groups) + [_Q_BOUNDS[1]])
    from scipy.optimize import least_squares  # here, not at module top: importing the planner stays fast
    sol = least_squares(residual, x0, bounds=(lower, upper), xtol=1e-12, ftol=1e-12, gtol=1e-12, diff_step=1e-6)
    alphas = {g: float(a) for g, a in zip(groups, sol.x[:-1])}
    q = float(sol.x[-1])
    predicted = _predict(rows, alphas, q)
    return RankFit(q, alphas, rows, tuple(float(p) for p in predicted),
                   tuple(float(p - r.tau) for p, r in zip(predicted, rows)))


def fitted_profile(fit: RankFit, name: str, source: str) -> RankProfile:
    """The fit as a rank profile (what rank_profiles.yaml stores under ``name``)."""
    return RankProfile(name, None, None, None, source, fit.retention)

"""The draft's confidence model: how a threshold on the draft's top probability filters tokens.

At every drafted position the draft's top probability q is random. The model: q ~ Beta with
mean alpha and concentration kappa (a = kappa alpha, b = kappa (1 - alpha)), independent across
positions, and a drafted token is accepted with probability q (a calibrated draft: under greedy
verification the target's argmax equals the draft's with the draft's own confidence). So

* the unfiltered per-token acceptance is E[q] = alpha (the i.i.d. model of planner.speedup), and
* a threshold p (llama.cpp's p-min, transformers' assistant_confidence_threshold) splits the
  positions into confident ones (q >= p), which are accepted more often, and the rest.

kappa is the one shape parameter: large kappa puts every q near alpha (a threshold then either
passes everything or nothing), small kappa spreads q towards 0 and 1 (a threshold sorts well).
Its default comes from llama-server b11312 (see loops.yaml, ``confidence``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

__all__ = ["ConfidenceSplit", "confidence_split", "beta_shape"]


@dataclass(frozen=True)
class ConfidenceSplit:
    """Per-position figures of one threshold, all probabilities (dimensionless), broadcast arrays."""

    pass_prob: NDArray[np.float64]  # s = P(q >= p): the draft is confident enough to go on
    accept_if_pass: NDArray[np.float64]  # E[q | q >= p]: acceptance of a confident token
    accept_if_fail: NDArray[np.float64]  # E[q | q < p]: acceptance of an unconfident token
    alpha: NDArray[np.float64]  # E[q]: acceptance of an unfiltered token


def beta_shape(alpha: ArrayLike, kappa: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(a, b) = (kappa alpha, kappa (1 - alpha)): the Beta law of q with mean alpha. Dimensionless."""
    a = np.asarray(alpha, dtype=float)
    k = np.asarray(kappa, dtype=float)
    return k * a, k * (1.0 - a)


def confidence_split(alpha: ArrayLike, p_min: ArrayLike, kappa: ArrayLike) -> ConfidenceSplit:
    """s = P(q >= p), E[q | q >= p] and E[q | q < p] for q ~ Beta(kappa alpha, kappa (1 - alpha)).

    Closed forms with the regularised incomplete beta I_x(a, b):
    P(q < p) = I_p(a, b) and E[q 1(q < p)] = alpha I_p(a + 1, b). alpha of exactly 0 or 1 is a point
    mass (q = alpha). p = 0 passes everything (s = 1), so the filter is then the identity.
    Units: probabilities.
    """
    from scipy.special import betainc, betaincc  # here, not at module top: importing the planner stays fast

    a_arr, p, kap = np.broadcast_arrays(np.asarray(alpha, float), np.asarray(p_min, float), np.asarray(kappa, float))
    interior = (a_arr > 0) & (a_arr < 1)
    safe = np.where(interior, a_arr, 0.5)
    a, b = beta_shape(safe, kap)
    x = np.clip(p, 0.0, 1.0)
    below = np.where(p > 0, betainc(a, b, x), 0.0)  # P(q < p)
    below_mass = np.where(p > 0, safe * betainc(a + 1.0, b, x), 0.0)  # E[q 1(q < p)]
    # The upper tail from the complementary function, not 1 - P(q < p): a thin tail (large kappa, p
    # well above alpha) would cancel to rounding noise and its conditional mean with it.
    s = np.where(p > 0, betaincc(a, b, x), 1.0)  # P(q >= p)
    above_mass = np.where(p > 0, safe * betaincc(a + 1.0, b, x), safe)  # E[q 1(q >= p)]
    # Point masses: q = alpha exactly.
    below = np.where(interior, below, (a_arr < p).astype(float))
    below_mass = np.where(interior, below_mass, a_arr * (a_arr < p))
    s = np.where(interior, s, (a_arr >= p).astype(float))
    above_mass = np.where(interior, above_mass, a_arr * (a_arr >= p))
    with np.errstate(invalid="ignore", divide="ignore"):
        # A tail too thin for floating point holds q just above p: its mean is p (at least alpha).
        acc_pass = np.where(s > 0, above_mass / np.where(s > 0, s, 1.0), np.maximum(a_arr, p))
        acc_fail = np.where(below > 0, below_mass / np.where(below > 0, below, 1.0), a_arr)
    return ConfidenceSplit(
        pass_prob=np.clip(s, 0.0, 1.0)[()], accept_if_pass=np.clip(acc_pass, 0.0, 1.0)[()],
        accept_if_fail=np.clip(acc_fail, 0.0, 1.0)[()], alpha=a_arr[()],
    )

"""One speculative round under each engine's drafting rule: drafted tokens D, draft passes, accepted.

Three rules (which engine runs which: loops.yaml):

* ``fixed``: draft exactly n tokens (vLLM, SGLang, TensorRT-LLM, gpt-fast, transformers "constant"
  without a confidence threshold). n draft passes.
* ``stop_before``: llama.cpp draft-simple (common/speculative.cpp, spec-draft line): before keeping
  position i the draft's top probability q_i is compared with p-min; below it drafting stops and
  that token is NOT drafted, but its logits were computed, so a round cut short by p-min after D
  tokens costs D + 1 draft passes (the seed pass on the last committed token plus one per kept
  token); a round that reaches n-max costs n-max passes (the last token is never decoded).
* ``stop_after``: llama.cpp classic (common_speculative_gen_draft, b4180-b8940) and transformers'
  ConfidenceCriteria: the token is appended first, then drafting stops when its q fell below the
  threshold, so the unconfident token IS drafted (and verified); D passes per round.

n-min (llama.cpp): a draft shorter than n-min is thrown away after it was computed; the round
verifies one token (plain decode) and accepts nothing.

Every array here carries the draft length D = 0..W on its last axis (W = the widest n-max);
leading axes broadcast over alpha, n-max, p-min and kappa.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from planner.draftloop.confidence import confidence_split

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

__all__ = ["Rule", "RULES", "RoundDist", "RoundMeans", "round_distribution", "round_means", "expected_verify_cost"]

Rule = Literal["fixed", "stop_before", "stop_after"]
RULES: tuple[Rule, ...] = ("fixed", "stop_before", "stop_after")


@dataclass(frozen=True)
class RoundDist:
    """Per round, for each draft length D = 0..W on the last axis (counts are tokens or passes)."""

    pmf: NDArray[np.float64]  # P(D = j), probability; sums to 1 over the last axis
    drafted: NDArray[np.float64]  # tokens sent to verification as drafts when D = j (0 if n-min dropped them)
    accepted: NDArray[np.float64]  # E[accepted drafts | D = j], tokens
    passes: NDArray[np.float64]  # draft forward passes the round cost when D = j
    all_accepted: NDArray[np.float64]  # P(every kept draft accepted | D = j), probability


@dataclass(frozen=True)
class RoundMeans:
    """Expectations per round (tokens or passes per round), broadcast arrays."""

    drafted: NDArray[np.float64]  # E[D kept]: what a server counts as drafted tokens per round
    accepted: NDArray[np.float64]  # E[accepted drafts]
    committed: NDArray[np.float64]  # E[accepted + 1]: tokens the round adds (the bonus/correction token)
    verified: NDArray[np.float64]  # E[D kept + 1]: tokens in the verification pass
    draft_passes: NDArray[np.float64]  # E[draft forward passes]
    all_accepted: NDArray[np.float64]  # P(every kept draft accepted)

    @property
    def acceptance_rate(self) -> NDArray[np.float64]:
        """accepted / drafted as servers print it (n_accept / n_drafted), dimensionless; 0 when nothing is drafted."""
        d = np.asarray(self.drafted)
        return np.where(d > 0, np.asarray(self.accepted) / np.where(d > 0, d, 1.0), 0.0)[()]


def _prefix_sums(a: NDArray[np.float64], width: int) -> NDArray[np.float64]:
    """sum_{i=1..j} a^i for j = 0..width on a new last axis (0 at j = 0). Unit: tokens."""
    powers = a[..., None] ** np.arange(1, width + 1)
    return np.concatenate([np.zeros(a.shape + (1,)), np.cumsum(powers, axis=-1)], axis=-1)


def round_distribution(rule: Rule, alpha: ArrayLike, n_max: ArrayLike, p_min: ArrayLike = 0.0,
                       kappa: ArrayLike = 1.0, n_min: ArrayLike = 0, width: int | None = None) -> RoundDist:
    """The law of one round's draft length D and what it costs and yields, under ``rule``.

    alpha is the unfiltered per-token acceptance (E[q]), n_max >= 1 the most drafts per round
    (llama.cpp n-max, a fixed engine's k), p_min the confidence threshold, kappa the confidence
    model's concentration (planner.draftloop.confidence). Positions are i.i.d.: P(q >= p) = s.
    ``width`` (>= max n_max) fixes the last axis at 0..width. Units: probabilities, tokens, passes.
    """
    n = np.asarray(n_max, dtype=np.int64)
    w = int(n.max()) if width is None else int(width)
    if rule == "fixed":
        p_min = 0.0  # a fixed-k engine never looks at the draft's confidence
    split = confidence_split(alpha, p_min, kappa)
    s, a1, a0, alpha_all = (np.asarray(x, dtype=float) for x in
                            (split.pass_prob, split.accept_if_pass, split.accept_if_fail, split.alpha))
    shape = np.broadcast_shapes(s.shape, n.shape, np.shape(n_min))
    s, a1, a0, alpha_all = (np.broadcast_to(x, shape) for x in (s, a1, a0, alpha_all))
    nn = np.broadcast_to(n, shape)[..., None]
    j = np.arange(w + 1)
    sx, a1x, a0x, ax = s[..., None], a1[..., None], a0[..., None], alpha_all[..., None]
    run = _prefix_sums(a1, w)  # sum_{i<=j} a1^i
    if rule in ("fixed", "stop_before"):
        pmf = np.where(j < nn, sx**j * (1.0 - sx), np.where(j == nn, sx**nn, 0.0))
        passes = np.where(j < nn, j + 1.0, np.where(j == nn, nn * 1.0, 0.0))
        accepted = run
        all_acc = a1x**j
    elif rule == "stop_after":
        jm1 = np.maximum(j - 1, 0)
        pmf = np.where((j >= 1) & (j < nn), sx**jm1 * (1.0 - sx), np.where(j == nn, sx ** (nn - 1), 0.0))
        last = np.where(j == nn, ax, a0x)  # the token drafted last: unconfident, or any at the cap
        run_before = np.concatenate([np.zeros(shape + (1,)), run[..., :-1]], axis=-1)  # sum_{i<=j-1}
        accepted = np.where(j >= 1, run_before + a1x**jm1 * last, 0.0)
        all_acc = np.where(j >= 1, a1x**jm1 * last, 1.0)
        passes = j * 1.0
    else:
        raise ValueError(f"unknown draft rule {rule!r}; one of {', '.join(RULES)}")
    kept = j >= np.asarray(n_min)[..., None]
    return RoundDist(pmf=pmf, drafted=np.where(kept, j * 1.0, 0.0), accepted=np.where(kept, accepted, 0.0),
                     passes=passes, all_accepted=np.where(kept, all_acc, 1.0))


def round_means(dist: RoundDist) -> RoundMeans:
    """Expectations of one round over its draft length (tokens / passes per round)."""
    def mean(x: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.sum(dist.pmf * x, axis=-1)[()]
    drafted, accepted = mean(dist.drafted), mean(dist.accepted)
    return RoundMeans(drafted=drafted, accepted=accepted, committed=(1.0 + accepted)[()], verified=(1.0 + drafted)[()],
                      draft_passes=mean(dist.passes), all_accepted=mean(dist.all_accepted))


def expected_verify_cost(dist: RoundDist, r_by_tokens: ArrayLike) -> NDArray[np.float64]:
    """E[r(D kept + 1)]: the round's mean verification cost in target decode steps.

    ``r_by_tokens[..., m]`` is the cost of verifying m + 1 tokens (m = 0: one token, a plain decode
    step), for m = 0..W at least; leading axes broadcast with the distribution's.
    """
    r = np.asarray(r_by_tokens, dtype=float)
    width = dist.pmf.shape[-1]
    if r.shape[-1] < width:
        raise ValueError(f"r_by_tokens needs {width} entries (1..{width} tokens) on its last axis, got {r.shape[-1]}")
    shape = np.broadcast_shapes(dist.pmf.shape[:-1], r.shape[:-1])
    idx = np.broadcast_to(dist.drafted.astype(np.int64), shape + (width,))
    table = np.broadcast_to(r, shape + (r.shape[-1],))
    return np.sum(dist.pmf * np.take_along_axis(table, idx, axis=-1), axis=-1)[()]

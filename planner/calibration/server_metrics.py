"""Turn what a running server reports about speculative decoding into a calibration file.

Two sources (DESIGN.md section 5; shared/research/servers.md sections 1.3 and 3.3):

* vLLM's Prometheus ``/metrics`` text. The spec-decode counters are cumulative since the
  server started, so a window is the difference of two scrapes. V1 names:
  ``vllm:spec_decode_num_drafts`` (S, verification steps with a draft),
  ``..._num_draft_tokens`` (D), ``..._num_accepted_tokens`` (A, bonus token excluded) and
  ``..._num_accepted_tokens_per_pos{position="i"}`` (drafts whose first i+1 tokens were all
  accepted). The V0 legacy set has no S and counts accepts differently (see ``vllm_calibration``).
* llama.cpp: ``timings.draft_n`` / ``timings.draft_n_accepted`` in server responses, the server
  log lines of every build (``draft acceptance [rate] = ...``, ``mean len``, ``statistics``), its
  ``/metrics``, or the ``n_drafted`` / ``n_accept`` lines of ``llama-speculative`` (``llamacpp_texts``).

This module reads the sources and turns a vLLM window into a calibration; one scrape is parsed in
``vllm_metrics`` (Prometheus text in ``prometheus_text``), llama.cpp texts in ``llamacpp_outputs``,
SGLang's ``/metrics`` in ``sglang_metrics``, and the shared estimators live in ``acceptance_stats``.

Two "acceptance rates" exist (DESIGN.md section 2): servers report the draft acceptance rate
A / D; the planner needs the per-token alpha. Every conversion goes through
``planner.speedup.alpha_from_acceptance_rate``, and the notes of each file label which is which.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence

import numpy as np

from planner.calibration.acceptance_stats import (
    LEVEL,
    ModelArg,
    RateFit,
    beta_interval,
    fit_from_rate,
    model_identity,
    one_line,
)
from planner.calibration.llamacpp_outputs import llamacpp_calibration
from planner.calibration.method_fits import LOOKUP_METHODS, lookup_fit, lookup_steps, method_note
from planner.calibration.schema import AcceptanceCounters, CalibrationFile, FittedAcceptance
from planner.calibration.vllm_metrics import (
    EMITTED,
    PER_POS,
    VllmSnapshot,
    snapshot_delta,
    vllm_counters,
    vllm_step_totals,
)
from planner.errors import SpecplanError
from planner.inputs import MAX_INPUT_BYTES, read_text
from planner.speedup import accepted_length_pmf, check_k
from planner.urls import check_http_url, is_url

__all__ = [
    "VllmSnapshot",
    "read_text_source",
    "vllm_counters",
    "vllm_calibration",
    "llamacpp_calibration",
]

DECAY_MARGIN = 0.1  # last conditional rate this far below the first: acceptance decays with position


# --- reading ---------------------------------------------------------------------------------


def read_text_source(url_or_file: str, what: str | None = None, timeout_s: float = 5.0, *, log: bool = False) -> str:
    """The text of a local file or of an http(s) URL (for example ``http://host:8000/metrics``).

    ``what`` names the flag in errors. ``log=True`` (llama.cpp outputs) replaces invalid UTF-8
    instead of refusing the file: a saved stdout+stderr is the tool's text, not the user's, and
    a progress bar cut mid-character must not hide the counters in it. Errors are one line.
    """
    if is_url(url_or_file):
        check_http_url(url_or_file, what or "URL")
        return _fetch_url(url_or_file.strip(), timeout_s)
    return read_text(url_or_file, what, log=log)


def _fetch_url(url: str, timeout_s: float) -> str:
    request = urllib.request.Request(url, headers={"Accept": "text/plain, application/json;q=0.9, */*;q=0.1"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - http(s) only
            body = response.read(MAX_INPUT_BYTES + 1)
            charset = response.headers.get_content_charset() or "utf-8"
    except urllib.error.HTTPError as exc:
        raise SpecplanError(f"cannot fetch {url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise SpecplanError(f"cannot fetch {url}: {exc.reason}") from None
    except TimeoutError:
        raise SpecplanError(f"cannot fetch {url}: no answer within {timeout_s:g} s") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise SpecplanError(f"cannot fetch {url}: {one_line(exc)}") from None
    if len(body) > MAX_INPUT_BYTES:
        raise SpecplanError(f"cannot fetch {url}: the answer is over the {MAX_INPUT_BYTES // 2**20} MiB limit")
    try:
        return body.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


# --- vLLM: a window --------------------------------------------------------------------------


def _conditional_rates(per_pos: Sequence[int], drafts: int) -> list[float]:
    """P(accept position i | positions before i accepted) = per_pos[i] / per_pos[i-1], per_pos[-1] := S.

    Stops at the first zero denominator (no draft got that far: the rate is unknown).
    """
    rates = []
    previous = drafts
    for count in per_pos:
        if previous == 0:
            break
        rates.append(count / previous)
        previous = count
    return rates


def _histogram(per_pos: Sequence[int], drafts: int) -> np.ndarray:
    """Rounds that accepted exactly j = 0..k draft tokens: per_pos[j-1] - per_pos[j] (ends S and 0)."""
    prefix = np.array([drafts, *per_pos, 0], dtype=np.int64)
    return prefix[:-1] - prefix[1:]


def _geometric_p_value(hist: np.ndarray, alpha_hat: float, k: int) -> float | None:
    """Chi-square goodness of fit of the truncated geometric at alpha_hat to the round histogram.

    None when k < 2 (no degrees of freedom) or an expected cell holds fewer than 5 rounds
    (the chi-square approximation fails there).
    """
    if k < 2:
        return None
    expected = hist.sum() * accepted_length_pmf(alpha_hat, k)
    if expected.min() < 5:
        return None
    from scipy.stats import chi2

    statistic = float(((hist - expected) ** 2 / expected).sum())
    return float(chi2.sf(statistic, df=k - 1))  # k+1 cells, minus the total, minus alpha


# --- vLLM: a window --------------------------------------------------------------------------


def _infer_k(counts: VllmSnapshot, k: int | None, origin: str) -> tuple[int, str]:
    """k (draft tokens per step) and a note on where it came from."""
    n_pos = len(counts.accepted_per_position) if counts.accepted_per_position else 0
    if k is not None:
        k = int(check_k(k))
        if n_pos and n_pos != k:
            raise SpecplanError(f"{origin}: k={k} was given but the server exposes {n_pos} per-position series")
        return k, f"k = {k} as given"
    if n_pos:
        return n_pos, f"k = {n_pos} inferred from the {n_pos} per-position series (positions 0..{n_pos - 1})"
    if counts.num_drafts and counts.num_draft_tokens % counts.num_drafts == 0:
        inferred = counts.num_draft_tokens // counts.num_drafts
        if inferred >= 1:
            return inferred, f"k = {inferred} inferred from draft tokens / drafts"
    raise SpecplanError(
        f"{origin}: cannot infer k (draft tokens per step) from the metrics: pass --k "
        "(num_speculative_tokens of the server)"
    )


def vllm_calibration(
    before_text: str | None,
    after_text: str,
    k: int | None,
    target: ModelArg,
    draft: ModelArg | None,
    model_name: str | None = None,
    window_s: float | None = None,
    *,
    before_origin: str = "before scrape",
    after_origin: str = "after scrape",
    method: str = "draft",
    head: str | None = None,
) -> CalibrationFile:
    """A calibration file from two vLLM ``/metrics`` scrapes taken around some traffic.

    Counters are after - before (``before_text`` None: cumulative since the server started).
    The fitted alpha is the per-token alpha whose predicted draft acceptance rate at k equals
    the observed A / D, so the model reproduces the measured mean acceptance length at this k;
    its 95 % interval is described in ``fit_from_rate``. With per-position counters the notes
    add the i.i.d.-model MLE A / (A + R), R = S - per_pos[k-1] rounds ended by a rejection, with
    its Beta(A+1, R+1) interval, and ``per_position`` holds the conditional rates.

    V0 servers: S = D / k and, since V0 counted accepts after a rejection too, the accepted
    prefix is taken as emitted - S (each step emits its accepted prefix plus one token).

    The counters are the same for every ``method`` (draft, eagle, eagle3, mtp, ngram, suffix); for
    n-gram / suffix, whose steps without a match are not counted, alpha spreads A over every decode
    step when the scrapes carry generation_tokens and request_success (``method_fits.lookup_steps``).
    """
    origin = after_origin if before_text is None else f"{before_origin} -> {after_origin}"
    after = vllm_counters(after_text, model_name, origin=after_origin)
    before = None if before_text is None else vllm_counters(before_text, model_name, origin=before_origin)
    counts = snapshot_delta(before, after, before_origin, after_origin)
    notes = _window_notes(before is None, counts)
    if counts.num_draft_tokens == 0:
        raise SpecplanError(f"{origin}: no draft tokens were proposed in the window: send traffic between the scrapes")

    k, k_note = _infer_k(counts, k, origin)
    notes.append(k_note)
    if counts.version == "v0":
        drafts, accepted = _v0_prefix_counts(counts, k, origin, notes)
    else:
        drafts, accepted = counts.num_drafts, counts.num_accepted_tokens
    proposed = counts.num_draft_tokens
    if accepted > proposed:
        raise SpecplanError(f"{origin}: more tokens accepted ({accepted}) than proposed ({proposed})")
    if drafts is not None:
        _check_drafts(drafts, proposed, k, origin, notes)

    per_pos = counts.accepted_per_position
    hist = None
    if per_pos is not None and drafts:
        _check_per_position(per_pos, drafts, accepted, origin, notes)
        hist = _histogram(per_pos, drafts)
    round_var = None if hist is None or not drafts else (
        float(hist @ np.arange(k + 1) ** 2) / drafts - (accepted / drafts) ** 2)
    fit = fit_from_rate(accepted, proposed, k, drafts, round_var)
    notes += _rate_notes(fit, accepted, proposed, drafts, k)
    if method != "draft":
        notes.insert(0, method_note(method, head))
    steps = None
    if method in LOOKUP_METHODS and counts.version == "v1":
        steps = lookup_steps(None if before_text is None else vllm_step_totals(before_text, model_name, origin=before_origin),
                             vllm_step_totals(after_text, model_name, origin=after_origin), before_text is None,
                             accepted, drafts, origin, notes)
    if steps is not None:
        if hist is not None:
            hist = hist.copy()
            hist[0] += steps - (drafts or 0)  # a step without a match: a round that accepted nothing
            round_var = float(hist @ np.arange(k + 1) ** 2) / steps - (accepted / steps) ** 2
        fit = lookup_fit(accepted, k, steps, round_var if hist is not None else None)
        notes.append(f"per-token alpha over every decode step {fit.alpha:.4f} [{fit.alpha_low:.4f}, {fit.alpha_high:.4f}]"
                     " (the figure written; the per-position analysis below covers the steps with a draft)")
    conditional, decays, p_value = ([], False, None)
    if hist is not None and drafts and per_pos is not None:
        conditional, decays, p_value = _position_analysis(per_pos, hist, drafts, accepted, proposed, k, notes)

    per_step = steps if steps is not None else drafts
    fitted = FittedAcceptance(
        mode="server", alpha=fit.alpha, alpha_low=fit.alpha_low, alpha_high=fit.alpha_high, k=k,
        rounds=per_step, per_position=conditional, geometric_p_value=p_value if steps is None else None,
        decays_with_position=decays, mean_accepted_length=1 + accepted / per_step if per_step else None,
    )
    counters = AcceptanceCounters(
        num_drafts=drafts, num_draft_tokens=proposed, num_accepted_tokens=accepted,
        accepted_per_position=list(per_pos) if per_pos is not None else None, k=k, window_s=window_s,
        steps_without_draft=None if steps is None else steps - (drafts or 0),
    )
    if window_s is not None:
        notes.append(f"window: {window_s:g} s")
    return CalibrationFile(
        source="vllm-metrics", engine="vllm", target=model_identity(target),  # type: ignore[arg-type]
        draft=model_identity(draft), method=method, head=head, counters=counters, fitted_acceptance=[fitted],
        notes=notes,
    )


def _window_notes(single_scrape: bool, counts: VllmSnapshot) -> list[str]:
    """Say what window the counters cover and which served model they belong to."""
    notes = [
        "one scrape only: counters are cumulative since the server started (warm-up and all earlier "
        "traffic included); scrape before and after a workload for a window"
        if single_scrape else "counters are deltas between two scrapes of the same server"
    ]
    if counts.model_names:
        notes.append(f"vLLM served model name: {', '.join(counts.model_names)}")
    return notes


def _rate_notes(fit: RateFit, accepted: int, proposed: int, drafts: int | None, k: int) -> list[str]:
    """The two acceptance figures, each named for what it is, and how alpha was derived."""
    notes = [f"draft acceptance rate (accepted / proposed draft tokens, what vLLM reports): "
             f"{fit.rate:.4f} = {accepted} / {proposed}"]
    if drafts:
        notes.append(f"mean acceptance length (tokens per verification step, bonus token included, "
                     f"1 + accepted / drafts): {1 + accepted / drafts:.4f}")
    notes.append(
        f"per-token alpha {fit.alpha:.4f}: the alpha whose acceptance rate at k={k} equals the observed rate "
        f"(alpha_from_acceptance_rate); {LEVEL:.0%} interval [{fit.alpha_low:.4f}, {fit.alpha_high:.4f}] from a "
        f"Beta interval on accepted of proposed, counts divided by the per-round design effect {fit.design_effect:.2f}"
    )
    return notes


def _position_analysis(per_pos: Sequence[int], hist: np.ndarray, drafts: int, accepted: int, proposed: int, k: int,
                       notes: list[str]) -> tuple[list[float], bool, float | None]:
    """Conditional acceptance per position, whether it decays, and the geometric-model p-value."""
    conditional = _conditional_rates(per_pos, drafts)
    notes.append("per-position acceptance P(accept i | 1..i-1 accepted) = per_pos[i] / per_pos[i-1]: "
                 + ", ".join(f"{r:.3f}" for r in conditional))
    if len(conditional) < k:
        notes.append(f"no draft got past position {len(conditional)}: later conditional rates are unknown")
    decays = len(conditional) >= 2 and conditional[-1] < conditional[0] - DECAY_MARGIN
    if decays:
        notes.append(f"acceptance falls with position ({conditional[0]:.3f} -> {conditional[-1]:.3f}): one alpha "
                     "overstates late positions; compare smaller k with the per-position rates")
    p_value = None
    stopped = drafts - per_pos[-1]
    if accepted + stopped > 0:
        mle = accepted / (accepted + stopped)
        low, high = beta_interval(accepted, stopped)
        notes.append(f"i.i.d.-model MLE from per-position counters (cross-check): alpha = {mle:.4f} "
                     f"[{low:.4f}, {high:.4f}] = A / (A + R), R = {stopped} rounds ended by a rejection")
        if proposed == k * drafts:
            p_value = _geometric_p_value(hist, mle, k)
    return conditional, decays, p_value


def _v0_prefix_counts(counts: VllmSnapshot, k: int, origin: str, notes: list[str]) -> tuple[int, int]:
    """(S, accepted prefix tokens) from V0 counters; V0's own accepted count is kept for the notes.

    V0's rejection sampler added ``accepted.sum()`` over all k positions, accepts after the first
    rejection included, so its A / D estimates per-token alpha directly rather than the prefix rate.
    Each step emits its accepted prefix plus one token (recovered or bonus), so the prefix is
    emitted - S with S = D / k (V0 always proposed k per sequence and step).
    """
    proposed = counts.num_draft_tokens
    if proposed % k:
        raise SpecplanError(f"{origin}: {proposed} draft tokens is not a multiple of k={k}: check --k")
    drafts = proposed // k
    if counts.num_emitted_tokens is None:
        raise SpecplanError(
            f"{origin}: vLLM V0 metrics without {EMITTED}_total: cannot tell the accepted prefix from V0's "
            "per-position accept count"
        )
    prefix = counts.num_emitted_tokens - drafts
    if not 0 <= prefix <= proposed:
        raise SpecplanError(
            f"{origin}: {counts.num_emitted_tokens} emitted tokens do not fit {drafts} steps of k={k}: check --k"
        )
    positionwise = counts.num_accepted_tokens / proposed
    notes.append(
        f"vLLM V0 metrics: steps S = draft tokens / k = {drafts}; accepted prefix = emitted - S = {prefix} "
        "(assumes a bonus token when all k drafts are accepted)"
    )
    notes.append(
        "vLLM V0 increments these _total counters by the rejection sampler's lifetime totals at every logging "
        "interval (vllm/engine/metrics.py PrometheusStatLogger.log, 0.9.2): a difference of two scrapes is a sum "
        "of lifetime snapshots, not the window's tokens, so the rates lean on earlier traffic and the interval "
        "is narrower than the data supports"
    )
    notes.append(
        f"V0's own accepted count ({counts.num_accepted_tokens}) includes accepts after the first rejection; "
        f"its ratio to draft tokens ({positionwise:.4f}) is itself a per-token alpha estimate, shown for comparison"
    )
    if counts.draft_acceptance_rate is not None:
        gauge = counts.draft_acceptance_rate
        notes.append(f"V0 gauge vllm:spec_decode_draft_acceptance_rate (cumulative, V0's A / D): {gauge:.4f}")
    return drafts, prefix


def _check_drafts(drafts: int, proposed: int, k: int, origin: str, notes: list[str]) -> None:
    if drafts == 0:
        raise SpecplanError(f"{origin}: draft tokens without any draft step: the counters are inconsistent")
    if proposed > k * drafts:
        raise SpecplanError(
            f"{origin}: {proposed} draft tokens in {drafts} steps is more than k={k} per step: check --k"
        )
    if proposed < k * drafts:
        notes.append(
            f"draft tokens / drafts = {proposed / drafts:.3f} < k={k}: some steps proposed fewer tokens; "
            "the alpha conversion assumes full drafts"
        )


def _check_per_position(per_pos: Sequence[int], drafts: int, accepted: int, origin: str, notes: list[str]) -> None:
    """per_pos[i] counts drafts whose first i+1 tokens were accepted: it cannot rise with i or exceed S."""
    prefix = [drafts, *per_pos]
    for i in range(len(per_pos)):
        if prefix[i + 1] > prefix[i]:
            what = "drafts" if i == 0 else f"position {i - 1}"
            raise SpecplanError(
                f"{origin}: {PER_POS} position {i} ({prefix[i + 1]}) exceeds {what} ({prefix[i]}): "
                "the counters are inconsistent"
            )
    if sum(per_pos) != accepted:
        # One scrape reads the counters one after another while the engine runs: a small skew is normal.
        notes.append(f"per-position counters sum to {sum(per_pos)}, accepted tokens to {accepted}")

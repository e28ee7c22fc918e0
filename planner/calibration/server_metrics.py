"""Turn what a running server reports about speculative decoding into a calibration file.

Two sources (DESIGN.md section 5; shared/research/servers.md sections 1.3 and 3.3):

* vLLM's Prometheus ``/metrics`` text. The spec-decode counters are cumulative since the
  server started, so a window is the difference of two scrapes. V1 names:
  ``vllm:spec_decode_num_drafts`` (S, verification steps with a draft),
  ``..._num_draft_tokens`` (D), ``..._num_accepted_tokens`` (A, bonus token excluded) and
  ``..._num_accepted_tokens_per_pos{position="i"}`` (drafts whose first i+1 tokens were all
  accepted). The V0 legacy set has no S and counts accepts differently (see ``vllm_calibration``).
* llama.cpp: ``timings.draft_n`` / ``timings.draft_n_accepted`` in server responses, the server
  log line ``draft acceptance rate = r ( a accepted / g generated)``, or the ``n_drafted`` /
  ``n_accept`` lines printed by the ``llama-speculative`` example.

Two "acceptance rates" exist (DESIGN.md section 2): servers report the draft acceptance rate
A / D; the planner needs the per-token alpha. Every conversion goes through
``planner.speedup.alpha_from_acceptance_rate``, and the notes of each file label which is which.
"""

from __future__ import annotations

import http.client
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from planner.calibration.schema import AcceptanceCounters, CalibrationFile, FittedAcceptance, ModelIdentity
from planner.errors import SpecplanError
from planner.inputs import MAX_INPUT_BYTES, parse_json, read_text, shown
from planner.speedup import accepted_length_pmf, alpha_from_acceptance_rate, check_k

__all__ = [
    "VllmSnapshot",
    "read_text_source",
    "vllm_counters",
    "vllm_calibration",
    "llamacpp_calibration",
]

LEVEL = 0.95  # credible level of every alpha interval written here
DECAY_MARGIN = 0.1  # last conditional rate this far below the first: acceptance decays with position

_SPEC_PREFIX = "vllm:spec_decode_"
_DRAFTS = "vllm:spec_decode_num_drafts"
_DRAFT_TOKENS = "vllm:spec_decode_num_draft_tokens"
_ACCEPTED = "vllm:spec_decode_num_accepted_tokens"
_PER_POS = "vllm:spec_decode_num_accepted_tokens_per_pos"
_EMITTED = "vllm:spec_decode_num_emitted_tokens"  # V0 only
_RATE_GAUGE = "vllm:spec_decode_draft_acceptance_rate"  # V0 only
_EFFICIENCY_GAUGE = "vllm:spec_decode_efficiency"  # V0 only

ModelArg = str | ModelIdentity
# Prometheus values are doubles: above 2^53 a counter no longer counts exactly, and no server
# drafts 9e15 tokens. The same bound keeps llama.cpp counts inside int64 for numpy.
MAX_COUNT = 2**53


# --- reading ---------------------------------------------------------------------------------


def read_text_source(url_or_file: str, what: str | None = None, timeout_s: float = 5.0, *, log: bool = False) -> str:
    """The text of a local file or of an http(s) URL (for example ``http://host:8000/metrics``).

    ``what`` names the flag in errors. ``log=True`` (llama.cpp outputs) replaces invalid UTF-8
    instead of refusing the file: a saved stdout+stderr is the tool's text, not the user's, and
    a progress bar cut mid-character must not hide the counters in it. Errors are one line.
    """
    scheme = urllib.parse.urlsplit(url_or_file).scheme.lower()
    if scheme in ("http", "https"):
        return _fetch_url(url_or_file, timeout_s)
    # "C:\\x" parses with scheme "c": only "scheme://" marks a URL, anything else is a path.
    if "://" in url_or_file:
        raise SpecplanError(f"cannot fetch {url_or_file}: only http:// and https:// URLs (or a file) are supported")
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
        raise SpecplanError(f"cannot fetch {url}: {_one_line(exc)}") from None
    if len(body) > MAX_INPUT_BYTES:
        raise SpecplanError(f"cannot fetch {url}: the answer is over the {MAX_INPUT_BYTES // 2**20} MiB limit")
    try:
        return body.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _identity(model: ModelArg | None) -> ModelIdentity | None:
    if model is None or isinstance(model, ModelIdentity):
        return model
    return ModelIdentity(id=model)


# --- vLLM: one scrape ------------------------------------------------------------------------


@dataclass(frozen=True)
class VllmSnapshot:
    """The spec-decode counters of one ``/metrics`` scrape, summed over engines.

    Counts are cumulative since the server started (tokens or verification steps).
    ``version`` is "v0" when a V0-only metric is present: V0 counted accepted tokens per
    position, including positions after the first rejection, so its ``num_accepted_tokens``
    is not V1's accepted-prefix count.
    """

    version: Literal["v1", "v0"]
    num_draft_tokens: int
    num_accepted_tokens: int
    num_drafts: int | None = None
    accepted_per_position: tuple[int, ...] | None = None
    num_emitted_tokens: int | None = None
    draft_acceptance_rate: float | None = None  # V0 gauge, cumulative A/D as V0 counted A
    model_names: tuple[str, ...] = ()


def _metric_samples(text: str, origin: str) -> list[tuple[str, dict[str, str], float]]:
    """(name without ``_total``, labels, value) for every ``vllm:spec_decode_*`` sample."""
    from prometheus_client.parser import text_string_to_metric_families

    _check_ascii_values(text, origin)
    out = []
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name = sample.name
                # Text format 0.0.4 exposes each counter as <name>_total plus a <name>_created
                # gauge holding its creation time; the parser names the family without _total.
                if not name.startswith(_SPEC_PREFIX) or name.endswith("_created"):
                    continue
                base = name[: -len("_total")] if name.endswith("_total") else name
                out.append((base, dict(sample.labels), float(sample.value)))
    except Exception as exc:  # the parser raises ValueError, IndexError, ... on malformed lines
        raise SpecplanError(f"{origin}: not Prometheus text: {_one_line(exc)}") from None
    return out


_SAMPLE_LINE = re.compile(r"\s*[^\s{#]+(?:\{.*\})?\s+(.*)")


def _check_ascii_values(text: str, origin: str) -> None:
    """Refuse sample values written in non-ASCII digits: Python's float() would read "\u0663" as 3."""
    for n, line in enumerate(text.splitlines(), start=1):
        if line.isascii() or line.lstrip().startswith("#"):
            continue
        match = _SAMPLE_LINE.match(line)
        if match and not match.group(1).isascii():
            raise SpecplanError(f"{origin}: line {n}: value {shown(match.group(1), 40)} is not an ASCII number")


def _count(value: float, name: str, origin: str) -> int:
    """A counter value as a whole count; refuses NaN, infinities, negatives and counts over MAX_COUNT."""
    if not math.isfinite(value) or value < 0 or value > MAX_COUNT:
        raise SpecplanError(f"{origin}: {name} has value {value!r}; expected a count from 0 to 2^53")
    return int(round(value))


def vllm_counters(text: str, model_name: str | None = None, *, origin: str = "metrics text") -> VllmSnapshot:
    """Read the spec-decode counters from one vLLM ``/metrics`` scrape (Prometheus text).

    Series are summed over label sets (one per engine in data-parallel serving). With
    ``model_name`` only series with that ``model_name`` label count; without it a scrape
    holding several models is refused rather than mixed. ``origin`` names the text in errors.
    """
    samples = _metric_samples(text, origin)
    if not samples:
        raise SpecplanError(f"{origin} has no vllm:spec_decode_* metrics: is speculative decoding enabled?")
    models = tuple(sorted({labels["model_name"] for _, labels, _ in samples if "model_name" in labels}))
    if model_name is not None:
        samples = [s for s in samples if s[1].get("model_name") == model_name]
        if not samples:
            found = ", ".join(models) or "none"
            raise SpecplanError(
                f"{origin} has no vllm:spec_decode_* metrics for model_name {model_name!r} (found: {found})"
            )
    elif len(models) > 1:
        raise SpecplanError(
            f"{origin} has spec-decode metrics for {len(models)} models ({', '.join(models)}): choose one model name"
        )

    totals: dict[str, int] = {}
    per_pos: dict[int, int] = {}
    rate_gauges: list[float] = []
    for name, labels, value in samples:
        if name == _RATE_GAUGE:
            rate_gauges.append(value)
        elif name == _PER_POS:
            raw = labels.get("position", "")
            if not re.fullmatch(r"[0-9]{1,3}", raw):  # str.isdigit() accepts "\u00b2", which int() refuses
                raise SpecplanError(f"{origin}: {_PER_POS} has position label {shown(raw, 40)}; expected 0, 1, ...")
            per_pos[int(raw)] = per_pos.get(int(raw), 0) + _count(value, name, origin)
        elif name in (_DRAFTS, _DRAFT_TOKENS, _ACCEPTED, _EMITTED):
            totals[name] = totals.get(name, 0) + _count(value, name, origin)

    v0 = _EMITTED in totals or bool(rate_gauges) or any(name == _EFFICIENCY_GAUGE for name, _, _ in samples)
    for needed in (_DRAFT_TOKENS, _ACCEPTED):
        if needed not in totals:
            raise SpecplanError(f"{origin} has spec-decode metrics but no {needed}_total counter")
    positions = None
    if per_pos:
        if sorted(per_pos) != list(range(len(per_pos))):
            raise SpecplanError(
                f"{origin}: {_PER_POS} positions {sorted(per_pos)} are not 0..k-1 without gaps"
            )
        positions = tuple(per_pos[i] for i in range(len(per_pos)))
    return VllmSnapshot(
        version="v0" if v0 else "v1",
        num_draft_tokens=totals[_DRAFT_TOKENS],
        num_accepted_tokens=totals[_ACCEPTED],
        num_drafts=totals.get(_DRAFTS),
        accepted_per_position=positions,
        num_emitted_tokens=totals.get(_EMITTED),
        # V0 ran one engine per server; several gauges would be different models, refused above.
        draft_acceptance_rate=rate_gauges[0] if len(rate_gauges) == 1 else None,
        model_names=(model_name,) if model_name is not None else models,
    )


def _delta(before: VllmSnapshot | None, after: VllmSnapshot, before_origin: str, after_origin: str) -> VllmSnapshot:
    """after - before, counter by counter; a counter that went down means the server restarted."""
    if before is None:
        return after
    if before.version != after.version:
        raise SpecplanError(f"{before_origin} and {after_origin} come from different vLLM engine versions (V0 / V1)")

    def sub(name: str, b: int | None, a: int | None) -> int | None:
        if a is None or b is None:
            if a is not None or b is not None:
                raise SpecplanError(f"{name} is in only one of {before_origin} and {after_origin}")
            return None
        if a < b:
            raise SpecplanError(
                f"{name} went down from {b} ({before_origin}) to {a} ({after_origin}): the server restarted "
                "between the scrapes; take both from the same server run"
            )
        return a - b

    per_pos = None
    if before.accepted_per_position is not None or after.accepted_per_position is not None:
        b_pos, a_pos = before.accepted_per_position or (), after.accepted_per_position or ()
        if len(b_pos) != len(a_pos):
            raise SpecplanError(
                f"{before_origin} has {len(b_pos)} per-position series and {after_origin} {len(a_pos)}: "
                "the speculative config changed between the scrapes"
            )
        per_pos = tuple(sub(f"{_PER_POS}{{position=\"{i}\"}}", b, a) for i, (b, a) in enumerate(zip(b_pos, a_pos)))
    return VllmSnapshot(
        version=after.version,
        num_draft_tokens=sub(f"{_DRAFT_TOKENS}_total", before.num_draft_tokens, after.num_draft_tokens),
        num_accepted_tokens=sub(f"{_ACCEPTED}_total", before.num_accepted_tokens, after.num_accepted_tokens),
        num_drafts=sub(f"{_DRAFTS}_total", before.num_drafts, after.num_drafts),
        accepted_per_position=per_pos,  # type: ignore[arg-type]  # ints: both sides were present
        num_emitted_tokens=sub(f"{_EMITTED}_total", before.num_emitted_tokens, after.num_emitted_tokens),
        draft_acceptance_rate=after.draft_acceptance_rate,
        model_names=after.model_names,
    )


# --- the estimators --------------------------------------------------------------------------


def _beta_interval(successes: float, failures: float, level: float = LEVEL) -> tuple[float, float]:
    """Equal-tailed ``level`` interval of Beta(successes + 1, failures + 1), the uniform-prior posterior.

    One-sided when either count is 0 (as ``planner.speedup.alpha_mle``), so the interval always
    holds the point estimate successes / (successes + failures). Counts may be fractional
    (effective counts after a design effect).
    """
    from scipy.stats import beta  # here, not at module top: importing the planner stays fast

    posterior = beta(successes + 1, failures + 1)
    if failures == 0:
        return float(posterior.ppf(1 - level)), 1.0
    if successes == 0:
        return 0.0, float(posterior.ppf(level))
    tail = (1 - level) / 2
    low, high = float(posterior.ppf(tail)), float(posterior.ppf(1 - tail))
    point = successes / (successes + failures)
    # With fractional counts near 0 the mode can sit outside the central interval; keep it inside.
    return min(low, point), max(high, point)


def _geometric_round_variance(alpha: float, k: int) -> float:
    """Variance of the accepted-token count of one round under the i.i.d. model, tokens^2."""
    pmf = accepted_length_pmf(alpha, k)  # P(L = i), i = 1..k+1; accepted = L - 1
    accepted = np.arange(k + 1)
    mean = float(pmf @ accepted)
    return max(float(pmf @ accepted**2) - mean**2, 0.0)


@dataclass(frozen=True)
class _RateFit:
    """alpha from A / D with its interval; ``design_effect`` is Var(A) over the binomial variance."""

    rate: float
    alpha: float
    alpha_low: float
    alpha_high: float
    design_effect: float


def _fit_from_rate(accepted: int, proposed: int, k: int, rounds: float | None, round_var: float | None) -> _RateFit:
    """Per-token alpha whose predicted draft acceptance rate at k equals the observed A / D.

    The interval is a Beta interval on the rate with A and D shrunk by the design effect
    S Var(a) / (D r (1 - r)): tokens of one round are not independent trials (a rejection ends
    the round), so A of D varies more than a binomial count would. ``round_var`` is the
    variance of the accepted count per round (observed, or the i.i.d. model's when None);
    the design effect is floored at 1, so the interval is never narrower than the binomial one.
    Both ends map through alpha_from_acceptance_rate, which is increasing.
    """
    rate = accepted / proposed
    alpha = float(alpha_from_acceptance_rate(rate, k))
    deff = 1.0
    if 0 < accepted < proposed:
        steps = rounds if rounds else proposed / k
        var = round_var if round_var is not None else _geometric_round_variance(alpha, k)
        deff = max(1.0, steps * var / (proposed * rate * (1 - rate)))
    low, high = _beta_interval(accepted / deff, (proposed - accepted) / deff)
    alpha_low = min(float(alpha_from_acceptance_rate(low, k)), alpha)
    alpha_high = max(float(alpha_from_acceptance_rate(high, k)), alpha)
    return _RateFit(rate, alpha, alpha_low, alpha_high, deff)


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
) -> CalibrationFile:
    """A calibration file from two vLLM ``/metrics`` scrapes taken around some traffic.

    Counters are after - before (``before_text`` None: cumulative since the server started).
    The fitted alpha is the per-token alpha whose predicted draft acceptance rate at k equals
    the observed A / D, so the model reproduces the measured mean acceptance length at this k;
    its 95 % interval is described in ``_fit_from_rate``. With per-position counters the notes
    add the i.i.d.-model MLE A / (A + R), R = S - per_pos[k-1] rounds ended by a rejection, with
    its Beta(A+1, R+1) interval, and ``per_position`` holds the conditional rates.

    V0 servers: S = D / k and, since V0 counted accepts after a rejection too, the accepted
    prefix is taken as emitted - S (each step emits its accepted prefix plus one token).
    """
    origin = after_origin if before_text is None else f"{before_origin} -> {after_origin}"
    after = vllm_counters(after_text, model_name, origin=after_origin)
    before = None if before_text is None else vllm_counters(before_text, model_name, origin=before_origin)
    counts = _delta(before, after, before_origin, after_origin)
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
    fit = _fit_from_rate(accepted, proposed, k, drafts, round_var)
    notes += _rate_notes(fit, accepted, proposed, drafts, k)
    conditional, decays, p_value = ([], False, None)
    if hist is not None and drafts and per_pos is not None:
        conditional, decays, p_value = _position_analysis(per_pos, hist, drafts, accepted, proposed, k, notes)

    fitted = FittedAcceptance(
        mode="server", alpha=fit.alpha, alpha_low=fit.alpha_low, alpha_high=fit.alpha_high, k=k, rounds=drafts,
        per_position=conditional, geometric_p_value=p_value, decays_with_position=decays,
    )
    counters = AcceptanceCounters(
        num_drafts=drafts, num_draft_tokens=proposed, num_accepted_tokens=accepted,
        accepted_per_position=list(per_pos) if per_pos is not None else None, k=k, window_s=window_s,
    )
    if window_s is not None:
        notes.append(f"window: {window_s:g} s")
    return CalibrationFile(
        source="vllm-metrics", engine="vllm", target=_identity(target),  # type: ignore[arg-type]
        draft=_identity(draft), counters=counters, fitted_acceptance=[fitted], notes=notes,
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


def _rate_notes(fit: _RateFit, accepted: int, proposed: int, drafts: int | None, k: int) -> list[str]:
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
        low, high = _beta_interval(accepted, stopped)
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
            f"{origin}: vLLM V0 metrics without {_EMITTED}_total: cannot tell the accepted prefix from V0's "
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
                f"{origin}: {_PER_POS} position {i} ({prefix[i + 1]}) exceeds {what} ({prefix[i]}): "
                "the counters are inconsistent"
            )
    if sum(per_pos) != accepted:
        # One scrape reads the counters one after another while the engine runs: a small skew is normal.
        notes.append(f"per-position counters sum to {sum(per_pos)}, accepted tokens to {accepted}")


# --- llama.cpp -------------------------------------------------------------------------------

_LOG_LINE = re.compile(
    r"draft acceptance rate\s*=\s*[^\s(]*\s*\(\s*([0-9]+)\s+accepted\s*/\s*([0-9]+)\s+generated\s*\)", re.IGNORECASE
)
_SPEC_DRAFTED = re.compile(r"\bn_drafted\s*=\s*([0-9]+)")
_SPEC_ACCEPT = re.compile(r"\bn_accept\s*=\s*([0-9]+)")
_SPEC_PREDICT = re.compile(r"\bn_predict\s*=\s*([0-9]+)")
_SPEC_DRAFT = re.compile(r"\bn_draft\s*=\s*([0-9]+)")


@dataclass(frozen=True)
class _LlamaCounts:
    """Acceptance counts read from one llama.cpp text; ``steps`` None when the text cannot tell."""

    kind: str
    accepted: int
    drafted: int
    steps: int | None
    items: int
    n_draft: int | None = None  # llama-speculative's --draft setting, when printed


def _whole(value: Any, field: str, label: str) -> int:
    # Ints are compared, never converted: math.isfinite(10**400) would raise OverflowError.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
        raise SpecplanError(f"{label}: timings.{field} is {shown(value, 40)}; expected a count")
    if value < 0 or value > MAX_COUNT or value != int(value):
        raise SpecplanError(f"{label}: timings.{field} is {shown(value, 40)}; expected a whole count from 0 to 2^53")
    return int(value)


def _log_ints(found: list[str], what: str, label: str) -> list[int]:
    """Counts matched in a log as ints; refuses the implausibly long (and Python's 4,300-digit limit)."""
    if any(len(x) > 16 or int(x) > MAX_COUNT for x in found):
        raise SpecplanError(f"{label}: a '{what}' count is over 2^53: not a real llama.cpp count")
    return [int(x) for x in found]


def _json_documents(text: str, label: str) -> list[Any] | None:
    """The JSON documents in a text (one document, JSON lines, or an SSE stream); None if not JSON."""
    stripped = text.strip()
    lines = [line.strip() for line in stripped.splitlines() if line.strip()]
    if lines and all(line.startswith(("data:", "event:", "id:", ":")) for line in lines):
        # A saved stream: every chunk may carry the running timings, so only the last one counts.
        docs = []
        for line in lines:
            payload = line[len("data:") :].strip() if line.startswith("data:") else ""
            if payload and payload != "[DONE]":
                docs.append(_loads(payload, label))
        with_timings = [d for d in docs if isinstance(d, dict) and isinstance(d.get("timings"), dict)]
        return with_timings[-1:] if with_timings else docs
    if not stripped.startswith(("{", "[")):
        return None
    try:
        return [parse_json(stripped, label)]
    except SpecplanError:
        if len(lines) < 2:
            raise
    return [_loads(line, label, n) for n, line in enumerate(lines, start=1)]  # JSON lines


def _loads(text: str, label: str, line: int | None = None) -> Any:
    return parse_json(text, f"{label} line {line}" if line is not None else label)


def _timings_counts(docs: list[Any], label: str) -> _LlamaCounts:
    """Sum draft_n / draft_n_accepted over the responses; steps = sum(predicted_n - draft_n_accepted)."""
    responses = []
    for doc in docs:
        responses.extend(doc if isinstance(doc, list) else [doc])
    timings = [r["timings"] for r in responses if isinstance(r, dict) and isinstance(r.get("timings"), dict)]
    if not timings:
        raise SpecplanError(f"{label}: JSON without a 'timings' object: expected llama-server responses")
    drafting = [t for t in timings if "draft_n" in t]
    if not drafting:
        raise SpecplanError(
            f"{label}: responses carry no timings.draft_n: speculative decoding did not run "
            "(start llama-server with a draft model)"
        )
    accepted = drafted = 0
    steps: int | None = 0
    for t in drafting:
        a = _whole(t.get("draft_n_accepted", 0), "draft_n_accepted", label)
        d = _whole(t["draft_n"], "draft_n", label)
        if a > d:
            raise SpecplanError(f"{label}: timings.draft_n_accepted ({a}) exceeds timings.draft_n ({d})")
        accepted, drafted = accepted + a, drafted + d
        if steps is not None and "predicted_n" in t:
            # Each target step commits its accepted drafts plus one token of its own.
            steps += max(_whole(t["predicted_n"], "predicted_n", label) - a, 0)
        else:
            steps = None
    return _LlamaCounts("server responses (timings)", accepted, drafted, steps, len(drafting))


def _log_counts(text: str, label: str) -> _LlamaCounts | None:
    matches = _LOG_LINE.findall(text)
    if not matches:
        return None
    accepted = sum(_log_ints([a for a, _ in matches], "accepted", label))
    drafted = sum(_log_ints([g for _, g in matches], "generated", label))
    return _LlamaCounts("llama-server log ('draft acceptance rate' lines)", accepted, drafted, None, len(matches))


def _speculative_counts(text: str, label: str) -> _LlamaCounts | None:
    drafted = _log_ints(_SPEC_DRAFTED.findall(text), "n_drafted", label)
    accepted = _log_ints(_SPEC_ACCEPT.findall(text), "n_accept", label)
    if not drafted and not accepted:
        return None
    if len(drafted) != len(accepted):
        raise SpecplanError(f"{label}: {len(drafted)} 'n_drafted =' lines but {len(accepted)} 'n_accept =' lines")
    if any(a > d for a, d in zip(accepted, drafted)):
        raise SpecplanError(f"{label}: n_accept exceeds n_drafted")
    predicted = _log_ints(_SPEC_PREDICT.findall(text), "n_predict", label)
    steps = None
    if len(predicted) == len(drafted):
        steps = sum(max(p - a, 0) for p, a in zip(predicted, accepted))
    settings = set(_log_ints(_SPEC_DRAFT.findall(text), "n_draft", label))
    return _LlamaCounts(
        "llama-speculative output (n_drafted / n_accept)",
        sum(accepted),
        sum(drafted),
        steps,
        len(drafted),
        n_draft=settings.pop() if len(settings) == 1 else None,
    )


def _llamacpp_counts(text: str, label: str) -> _LlamaCounts:
    """Recognise one llama.cpp text: JSON responses, then server log lines, then llama-speculative."""
    try:
        docs = _json_documents(text, label)
    except SpecplanError:
        # A log whose lines start with "[timestamp]" looks like JSON at first sight.
        if not (_LOG_LINE.search(text) or _SPEC_DRAFTED.search(text)):
            raise
        docs = None
    if docs is not None:
        return _timings_counts(docs, label)
    found = _log_counts(text, label) or _speculative_counts(text, label)
    if found is None:
        raise SpecplanError(
            f"{label}: no llama.cpp acceptance data (expected a server response with timings.draft_n, a "
            "llama-server log with 'draft acceptance rate = ...' lines, or llama-speculative output with "
            "n_drafted / n_accept)"
        )
    return found


def _labels(source_label: str | Sequence[str], n: int) -> list[str]:
    if isinstance(source_label, str):
        return [source_label] if n == 1 else [f"{source_label} #{i}" for i in range(1, n + 1)]
    labels = list(source_label)
    if len(labels) != n:
        raise SpecplanError(f"{len(labels)} source labels for {n} llama.cpp texts")
    return labels


def llamacpp_calibration(
    texts: Sequence[str],
    k: int | None,
    target: ModelArg,
    draft: ModelArg | None,
    source_label: str | Sequence[str] = "llama.cpp output",
) -> CalibrationFile:
    """A calibration file from llama.cpp outputs: server responses, server logs or llama-speculative output.

    Each text is recognised on its own (see ``_llamacpp_counts``) and the counts are summed:
    A accepted and D drafted tokens; steps S = predicted_n - draft_n_accepted when the text
    tells (an approximation: it includes steps without a draft). ``k`` is the server's
    --draft-max; it is required because llama.cpp's draft length varies with p_min.
    ``source_label`` names the texts in errors and notes: one label for all, or one per text.
    """
    if not texts:
        raise SpecplanError("no llama.cpp outputs given")
    labels = _labels(source_label, len(texts))
    if k is None:
        raise SpecplanError(
            f"{labels[0]}: llama.cpp drafts a variable number of tokens per step: pass --k "
            "(the server's --draft-max / --draft)"
        )
    k = int(check_k(k))
    parts = [_llamacpp_counts(text, label) for text, label in zip(texts, labels)]
    accepted = sum(p.accepted for p in parts)
    drafted = sum(p.drafted for p in parts)
    steps = None if any(p.steps is None for p in parts) else sum(p.steps for p in parts)  # type: ignore[misc]
    if drafted == 0:
        raise SpecplanError(f"{', '.join(labels)}: no draft tokens were proposed")

    notes = [f"{label}: {p.kind}, {p.items} item(s), {p.accepted} accepted / {p.drafted} drafted"
             for label, p in zip(labels, parts)]
    settings = {p.n_draft for p in parts if p.n_draft is not None}
    if settings and settings != {k}:
        notes.append(f"llama-speculative printed n_draft = {', '.join(map(str, sorted(settings)))} but k={k} was given")
    fit = _fit_from_rate(accepted, drafted, k, steps if steps else None, None)
    notes.append(
        f"draft acceptance rate (accepted / drafted tokens): {fit.rate:.4f} = {accepted} / {drafted}"
    )
    if steps:
        notes.append(
            f"mean acceptance length (tokens per target step, 1 + accepted / steps, steps ~ predicted - accepted): "
            f"{1 + accepted / steps:.4f}; mean draft length {drafted / steps:.2f} of k={k}"
        )
    notes.append(
        f"per-token alpha {fit.alpha:.4f} = alpha_from_acceptance_rate(rate, k={k}); {LEVEL:.0%} interval "
        f"[{fit.alpha_low:.4f}, {fit.alpha_high:.4f}] from a Beta interval on accepted of drafted "
        f"(design effect {fit.design_effect:.2f}, i.i.d. model)"
    )
    notes.append(
        "approximation: llama.cpp stops drafting early when the draft's confidence falls below p_min, so steps "
        "propose fewer than k tokens and the drafted ones are the easier ones; A / D then overstates the "
        "full-length rate and the converted alpha is approximate"
    )
    fitted = FittedAcceptance(
        mode="server", alpha=fit.alpha, alpha_low=fit.alpha_low, alpha_high=fit.alpha_high, k=k, rounds=steps
    )
    counters = AcceptanceCounters(num_drafts=steps, num_draft_tokens=drafted, num_accepted_tokens=accepted, k=k)
    return CalibrationFile(
        source="llamacpp",
        engine="llamacpp",
        target=_identity(target),  # type: ignore[arg-type]
        draft=_identity(draft),
        counters=counters,
        fitted_acceptance=[fitted],
        notes=notes,
    )

"""SGLang's Prometheus ``/metrics`` text (``--enable-metrics``): speculative-decoding acceptance.

What each release exposes, read from the packages' own code:

* SGLang 0.5.3, ``sglang/srt/metrics/collector.py``: one gauge, ``sglang:spec_accept_length``
  (SchedulerMetricsCollector, ``multiprocess_mode="mostrecent"``), set by
  ``scheduler_metrics_mixin.log_decode_stats`` every ``decode_log_interval`` (default 40) decode
  passes to (accepted drafts + bs) / bs summed over those passes (``num_accepted_tokens + bs``:
  the bonus token is included), then reset. No counter of verification steps exists, so a
  window cannot be formed; ``sglang:generation_tokens_total`` / ``sglang:num_requests_total``
  alone do not give acceptance.
* SGLang 0.5.23, ``sglang/srt/observability/metrics_collector.py``: the same gauge (now "accepted
  drafts + bonus token per forward", ``metrics_reporter.update_spec_metrics`` adds
  num_generated_tokens per pass), plus gauges ``sglang:spec_accept_rate`` (correct drafts /
  (passes x (speculative_num_draft_tokens - 1)) over the same interval), ``sglang:spec_num_steps``
  and ``sglang:spec_num_draft_tokens`` (the active tier), and, in TokenizerMetricsCollector,
  the counters ``sglang:spec_verify_calls_total`` (verification steps; incremented by each
  request's ``spec_verify_ct`` when it finishes), ``sglang:generation_tokens_total`` and
  ``sglang:num_requests_total`` (labels ``model_name``, ``engine_type``, plus ``is_streaming``
  on the last two).

A window therefore comes from the 0.5.23 counters of two scrapes: V verification steps,
G generated tokens and N finished requests. Each request's first token comes from its prefill,
not from a verification step, so the mean acceptance length is tau = (G - N) / V tokens per
step (bonus included) and A = G - N - V draft tokens were accepted of D = k V proposed. SGLang's
own per-request figure (tokenizer_manager: completion_tokens / spec_verify_ct) keeps the
prefill token and is shown beside it. Gauges cover the last logging interval, not the window:
they are read from the after scrape, used only when no counter window exists (0.5.3), and
labelled as such. Every alpha goes through ``planner.speedup.alpha_from_acceptance_rate``
(via ``acceptance_stats.fit_from_rate``) on the draft acceptance rate (tau - 1) / k.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from planner.calibration.acceptance_stats import LEVEL, ModelArg, RateFit, fit_from_rate, model_identity
from planner.calibration.prometheus_text import Sample, count_value, metric_samples
from planner.calibration.method_fits import method_note, tree_fit
from planner.calibration.schema import AcceptanceCounters, CalibrationFile, FittedAcceptance, TreeShape
from planner.errors import SpecplanError
from planner.speedup import check_k

__all__ = ["SglangSnapshot", "sglang_counters", "sglang_calibration", "VERIFY_CALLS", "GENERATION_TOKENS",
           "NUM_REQUESTS", "ACCEPT_LENGTH", "ACCEPT_RATE", "NUM_STEPS", "NUM_DRAFT_TOKENS", "GAUGE_MIN_ROUNDS"]

PREFIX = "sglang:"
VERIFY_CALLS = "sglang:spec_verify_calls"  # counter, 0.5.23 (not in 0.5.3)
GENERATION_TOKENS = "sglang:generation_tokens"  # counter, both
NUM_REQUESTS = "sglang:num_requests"  # counter, both
ACCEPT_LENGTH = "sglang:spec_accept_length"  # gauge, both
ACCEPT_RATE = "sglang:spec_accept_rate"  # gauge, 0.5.23
NUM_STEPS = "sglang:spec_num_steps"  # gauge, 0.5.23
NUM_DRAFT_TOKENS = "sglang:spec_num_draft_tokens"  # gauge, 0.5.23
_COUNTERS = (VERIFY_CALLS, GENERATION_TOKENS, NUM_REQUESTS)
_GAUGES = (ACCEPT_LENGTH, ACCEPT_RATE, NUM_STEPS, NUM_DRAFT_TOKENS)
# The gauges average at least one logging interval: decode_log_interval decode passes (default 40,
# server_args.py of 0.5.3; arg_groups/fields/observability.py of 0.5.23), each verifying >= 1 request.
GAUGE_MIN_ROUNDS = 40


@dataclass(frozen=True)
class SglangSnapshot:
    """The acceptance metrics of one SGLang ``/metrics`` scrape, for one served model.

    Counters (None when the scrape has none) are cumulative since the server started, summed
    over label sets (``is_streaming``, data-parallel ranks). Gauges are the scheduler's last
    logging interval, one value per series (one series per scheduler rank); 0 means "not set yet".
    """

    verify_calls: int | None
    generation_tokens: int | None
    num_requests: int | None
    accept_length: tuple[float, ...] = ()
    accept_rate: tuple[float, ...] = ()
    num_steps: tuple[float, ...] = ()
    num_draft_tokens: tuple[float, ...] = ()
    model_names: tuple[str, ...] = ()


def _keep(name: str) -> bool:
    base = name[: -len("_total")] if name.endswith("_total") else name
    return base in _COUNTERS or base in _GAUGES


def _choose_model(samples: list[Sample], model_name: str | None, origin: str) -> tuple[list[Sample], tuple[str, ...]]:
    models = tuple(sorted({labels["model_name"] for _, labels, _ in samples if "model_name" in labels}))
    if model_name is not None:
        samples = [s for s in samples if s[1].get("model_name") == model_name]
        if not samples:
            raise SpecplanError(f"{origin} has no SGLang acceptance metrics for model_name {model_name!r} "
                                f"(found: {', '.join(models) or 'none'})")
        return samples, (model_name,)
    if len(models) > 1:
        raise SpecplanError(f"{origin} has SGLang metrics for {len(models)} models ({', '.join(models)}): "
                            "choose one model name")
    return samples, models


def sglang_counters(text: str, model_name: str | None = None, *, origin: str = "metrics text",
                    required: bool = True) -> SglangSnapshot:
    """Read the acceptance counters and gauges from one SGLang ``/metrics`` scrape (Prometheus text).

    With ``model_name`` only series with that ``model_name`` label count; without it a scrape
    holding several models is refused rather than mixed. ``origin`` names the text in errors.
    ``required=False`` (a before scrape): SGLang creates each labelled series at its first
    update, so a scrape of a server that has not finished a request yet holds none; that reads
    as an empty snapshot instead of an error.
    """
    samples = metric_samples(text, _keep, origin)
    if not required and not (samples if model_name is None else [s for s in samples
                                                                 if s[1].get("model_name") == model_name]):
        return SglangSnapshot(verify_calls=None, generation_tokens=None, num_requests=None)
    if required and not any(name in (VERIFY_CALLS, ACCEPT_LENGTH) for name, _, _ in samples):
        raise SpecplanError(f"{origin} has no {VERIFY_CALLS}_total or {ACCEPT_LENGTH}: is it SGLang's /metrics "
                            "with --enable-metrics and speculative decoding on?")
    samples, models = _choose_model(samples, model_name, origin)
    totals: dict[str, int] = {}
    gauges: dict[str, list[float]] = {name: [] for name in _GAUGES}
    for name, _, value in samples:
        if name in _COUNTERS:
            totals[name] = totals.get(name, 0) + count_value(value, name, origin)
        elif name in gauges:
            if not 0 <= value <= 1e6:  # NaN fails too; no gauge here is negative or huge
                raise SpecplanError(f"{origin}: {name} has value {value!r}; expected a number from 0 to 1e6")
            gauges[name].append(value)
    return SglangSnapshot(
        verify_calls=totals.get(VERIFY_CALLS), generation_tokens=totals.get(GENERATION_TOKENS),
        num_requests=totals.get(NUM_REQUESTS), accept_length=tuple(gauges[ACCEPT_LENGTH]),
        accept_rate=tuple(gauges[ACCEPT_RATE]), num_steps=tuple(gauges[NUM_STEPS]),
        num_draft_tokens=tuple(gauges[NUM_DRAFT_TOKENS]), model_names=models,
    )


def _delta(before: SglangSnapshot | None, after: SglangSnapshot, before_origin: str,
           after_origin: str) -> SglangSnapshot:
    """after - before for the counters; gauges are the after scrape's.

    SGLang creates a labelled counter's series at its first increment, so a counter missing
    from the before scrape but present after is taken as 0 before (no request finished yet).
    """
    if before is None:
        return after

    def sub(name: str, b: int | None, a: int | None) -> int | None:
        if a is None:
            if b is not None:
                raise SpecplanError(f"{name}_total is in {before_origin} but not in {after_origin}: "
                                    "take both scrapes from the same server run")
            return None
        b = b or 0
        if a < b:
            raise SpecplanError(f"{name}_total went down from {b} ({before_origin}) to {a} ({after_origin}): the "
                                "server restarted between the scrapes; take both from the same server run")
        return a - b

    return replace(after, verify_calls=sub(VERIFY_CALLS, before.verify_calls, after.verify_calls),
                   generation_tokens=sub(GENERATION_TOKENS, before.generation_tokens, after.generation_tokens),
                   num_requests=sub(NUM_REQUESTS, before.num_requests, after.num_requests))


def _set(values: tuple[float, ...]) -> tuple[float, ...]:
    """The gauge series that hold a value (0 is a gauge's value before the first logging interval)."""
    return tuple(v for v in values if v > 0)


def _mean(values: tuple[float, ...]) -> float:
    return sum(values) / len(values)


def _gauge_k(counts: SglangSnapshot, notes: list[str], shape_given: bool = False) -> int | None:
    """k from the 0.5.23 tier gauges: speculative_num_steps, the depth of the draft (None if unset)."""
    steps = sorted(set(_set(counts.num_steps)))
    if not steps:
        return None
    if len(steps) > 1:
        notes.append(f"{NUM_STEPS} differs between series ({', '.join(f'{s:g}' for s in steps)}): took the largest")
    draft_tokens = _set(counts.num_draft_tokens)
    if draft_tokens and max(draft_tokens) != steps[-1] + 1 and not shape_given:
        notes.append(f"{NUM_DRAFT_TOKENS} = {max(draft_tokens):g} is not {NUM_STEPS} + 1: a tree draft (topk > 1); "
                     "without --topk and --num-draft-tokens alpha is the chain alpha of depth num_steps with the same "
                     "accepted length (give them for the tree inversion)")
    return int(steps[-1]) if steps[-1] == int(steps[-1]) else None


def _ngram_k(counts: SglangSnapshot, k: int | None, shape: TreeShape | None, origin: str, notes: list[str]) -> int:
    """k of an NGRAM server: num_draft_tokens - 1 (its trie holds that many drafts; SGLang sets
    num_steps = num_draft_tokens // topk for it, arg_groups/speculative_hook.py _handle_ngram, so the
    num_steps gauge is not its depth)."""
    gauge = sorted(set(_set(counts.num_draft_tokens)))
    stated = shape.num_draft_tokens if shape is not None else (int(gauge[-1]) if gauge else None)
    if gauge and stated is not None and gauge[-1] != stated:
        raise SpecplanError(f"{origin}: --num-draft-tokens {stated} but {NUM_DRAFT_TOKENS} says {gauge[-1]:g}")
    if k is None and stated is None:
        raise SpecplanError(f"{origin}: cannot tell the NGRAM draft size: pass --num-draft-tokens (the server's "
                            "--speculative-num-draft-tokens; 12 by default)")
    k = int(check_k(k if k is not None else stated - 1))  # type: ignore[operator]
    if stated is not None and k != stated - 1:
        raise SpecplanError(f"{origin}: --k {k} is not num_draft_tokens - 1 = {stated - 1} for NGRAM")
    notes.append(f"k = {k}: NGRAM verifies num_draft_tokens - 1 drafts per step (a trie, read as a chain of k: "
                 "its branches make the accepted length a little longer than a chain's at the same alpha)")
    return k


def _check_shape(counts: SglangSnapshot, shape: TreeShape, origin: str) -> None:
    """The tree calibrate was given must be the one the 0.5.23 gauges report, when they are set."""
    for name, given, gauge in ((NUM_STEPS, shape.num_steps, counts.num_steps),
                               (NUM_DRAFT_TOKENS, shape.num_draft_tokens, counts.num_draft_tokens)):
        values = sorted(set(_set(gauge)))
        if values and values[-1] != given:
            raise SpecplanError(f"{origin}: the tree shape says {given} but {name} says {values[-1]:g}: "
                                "give the server's own --speculative-num-steps / --speculative-num-draft-tokens")


def _resolve_k(counts: SglangSnapshot, k: int | None, origin: str, notes: list[str], shape_given: bool = False) -> int:
    from_gauge = _gauge_k(counts, notes, shape_given)
    if k is not None:
        k = int(check_k(k))
        if from_gauge is not None and from_gauge != k:
            raise SpecplanError(f"{origin}: k={k} was given but {NUM_STEPS} says the server drafts {from_gauge} "
                                "tokens per step (speculative-num-steps)")
        notes.append(f"k = {k} as given")
        return k
    if from_gauge is not None:
        k = int(check_k(from_gauge))
        notes.append(f"k = {k} from the {NUM_STEPS} gauge (the active speculative-num-steps at the after scrape)")
        return k
    raise SpecplanError(f"{origin}: cannot tell k (draft tokens per step) from the metrics: pass --k "
                        "(the server's --speculative-num-steps)")


def _window(counts: SglangSnapshot, k: int, origin: str, notes: list[str]) -> tuple[int, int, int] | None:
    """(verification steps V, proposed k V, accepted G - N - V) from the counters, or None without them."""
    v, g, n = counts.verify_calls, counts.generation_tokens, counts.num_requests
    if v is None or g is None or n is None:
        return None
    if v == 0:
        raise SpecplanError(f"{origin}: no verification step in the window ({VERIFY_CALLS}_total did not move): "
                            "send traffic between the scrapes and let the requests finish")
    accepted = g - n - v
    if accepted < 0 or accepted > k * v:
        raise SpecplanError(f"{origin}: {g} generated tokens of {n} requests do not fit {v} verification steps "
                            f"of k={k} (accepted would be {accepted}): check --k")
    notes.append(f"counter window: {v} verification steps ({VERIFY_CALLS}), {g} generated tokens, {n} finished "
                 "requests; counted when each request finishes, so the window holds the requests that ended in it "
                 "(a request cut short by max_tokens or a stop string can keep fewer tokens than its last step "
                 "accepted: A leans low by at most k per request)")
    notes.append(f"mean acceptance length (tokens per verification step, bonus token included, (G - N) / V, "
                 f"the prefill token of each request left out): {(g - n) / v:.4f}; SGLang's own "
                 f"completion_tokens / spec_verify_ct over the window: {g / v:.4f}")
    notes.append(f"draft tokens proposed: k x V = {k * v} (SGLang counts no draft tokens; full drafts assumed)")
    return v, k * v, accepted


def _gauge_notes(counts: SglangSnapshot, used: bool) -> list[str]:
    what = "used for alpha (no counter window)" if used else "cross-check only"
    notes = []
    lengths, rates = _set(counts.accept_length), _set(counts.accept_rate)
    if lengths:
        notes.append(f"gauge {ACCEPT_LENGTH} = {_mean(lengths):.4f} (after scrape, the scheduler's last logging "
                     f"interval, not the window; bonus token included; {what})"
                     + (f"; mean of {len(lengths)} series {min(lengths):.4f}..{max(lengths):.4f}" if len(lengths) > 1 else ""))
    if rates:
        notes.append(f"gauge {ACCEPT_RATE} = {_mean(rates):.4f} (accepted / (passes x (num_draft_tokens - 1)) over "
                     "the last logging interval, not the window)")
    return notes


def _fit_gauge(counts: SglangSnapshot, k: int, origin: str, notes: list[str]) -> RateFit:
    """alpha from the accept-length gauge tau: rate (tau - 1) / k; the interval assumes the fewest
    rounds a gauge averages (GAUGE_MIN_ROUNDS), as fractional counts."""
    lengths = _set(counts.accept_length)
    if not lengths:
        raise SpecplanError(f"{origin}: no counter window ({VERIFY_CALLS}_total is missing: SGLang before 0.5.23 "
                            f"has none) and {ACCEPT_LENGTH} is not set yet: send traffic for over 40 decode steps")
    tau = _mean(lengths)
    if not 1 <= tau <= k + 1 + 1e-9:
        raise SpecplanError(f"{origin}: {ACCEPT_LENGTH} = {tau:g} is outside 1..k+1 = {k + 1}: check --k")
    proposed = float(k * GAUGE_MIN_ROUNDS)
    accepted = min(tau - 1, k) / k * proposed
    notes.append(f"no counter window: alpha from the gauge; its {LEVEL:.0%} interval assumes the fewest rounds a "
                 f"gauge averages ({GAUGE_MIN_ROUNDS}, decode_log_interval at batch 1), so it is wide on purpose")
    return fit_from_rate(accepted, proposed, k, GAUGE_MIN_ROUNDS, None)  # type: ignore[arg-type]  # float counts


def sglang_calibration(
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
    shape: TreeShape | None = None,
) -> CalibrationFile:
    """A calibration file from SGLang ``/metrics`` scrapes taken around some traffic.

    With the 0.5.23 counters: a window (after - before; ``before_text`` None: cumulative since the
    server started), rate = A / (k V), alpha the per-token alpha whose draft acceptance rate at k
    equals it (``fit_from_rate``, Beta interval with the i.i.d. design effect). Without them
    (0.5.3): the after scrape's accept-length gauge, labelled as the last logging interval.

    The accept length is SGLang's for every algorithm (EAGLE, EAGLE3, NEXTN = ``mtp``, STANDALONE =
    ``draft``, NGRAM = ``ngram``). With a tree ``shape`` (topk > 1) alpha is the tree inversion of
    tau (``method_fits.tree_fit``); NGRAM's k is num_draft_tokens - 1 (``_ngram_k``).
    """
    origin = after_origin if before_text is None else f"{before_origin} -> {after_origin}"
    after = sglang_counters(after_text, model_name, origin=after_origin)
    before = (None if before_text is None
              else sglang_counters(before_text, model_name, origin=before_origin, required=False))
    counts = _delta(before, after, before_origin, after_origin)
    notes = [f"SGLang served model name: {', '.join(counts.model_names)}"] if counts.model_names else []
    if method != "draft":
        notes.append(method_note(method, head))
    if method == "ngram":
        k = _ngram_k(counts, k, shape, origin, notes)
    else:
        if shape is not None:
            _check_shape(counts, shape, origin)
        k = _resolve_k(counts, shape.num_steps if shape is not None else k, origin, notes, shape is not None)
    window = _window(counts, k, origin, notes)
    if window is None:
        scope = ("the after scrape's gauges only" + ("; the before scrape adds nothing (no counter to difference)"
                                                     if before is not None else ""))
    elif before is None:
        scope = ("one scrape only: counters are cumulative since the server started (warm-up and all earlier "
                 "traffic included); scrape before and after a workload for a window")
    else:
        scope = "counters are deltas between two scrapes of the same server"
    notes.insert(0, scope)
    counters = None
    if window is not None:
        rounds, proposed, accepted = window
        fit = fit_from_rate(accepted, proposed, k, rounds, None)
        notes.append(f"draft acceptance rate A / D = {fit.rate:.4f} = {accepted} / {proposed}")
        counters = AcceptanceCounters(num_drafts=rounds, num_draft_tokens=proposed, num_accepted_tokens=accepted,
                                      k=k, window_s=window_s)
        interval = (f"Beta interval on accepted of proposed, counts divided by the i.i.d. design effect "
                    f"{fit.design_effect:.2f}")
    else:
        fit, rounds = _fit_gauge(counts, k, origin, notes), None
        notes.append(f"draft acceptance rate (tau - 1) / k from the gauge: {fit.rate:.4f}")
        interval = "Beta interval on the gauge's rate at the assumed fewest rounds"
    notes += _gauge_notes(counts, used=window is None)
    tree = shape if shape is not None and shape.is_tree and method != "ngram" else None
    if tree is not None:
        fit, tau = tree_fit(fit, tree)
        notes.append(f"tree (num_steps {tree.num_steps}, topk {tree.topk}, num_draft_tokens {tree.num_draft_tokens}): "
                     f"per-depth top-1 alpha {fit.alpha:.4f} whose tree commits tau = {tau:.4f} "
                     f"(planner.trees.alpha_from_mean_accepted_length); {LEVEL:.0%} interval [{fit.alpha_low:.4f}, "
                     f"{fit.alpha_high:.4f}] from a {interval}, each end through the same inversion")
    else:
        notes.append(f"per-token alpha {fit.alpha:.4f}: the alpha whose acceptance rate at k={k} equals the rate above "
                     f"(alpha_from_acceptance_rate); {LEVEL:.0%} interval [{fit.alpha_low:.4f}, {fit.alpha_high:.4f}] "
                     f"from a {interval}")
    if window_s is not None:
        notes.append(f"window: {window_s:g} s")
    fitted = FittedAcceptance(mode="server", alpha=fit.alpha, alpha_low=fit.alpha_low, alpha_high=fit.alpha_high,
                              k=k, rounds=rounds, mean_accepted_length=1 + k * fit.rate, tree=tree)
    return CalibrationFile(source="sglang-metrics", engine="sglang", target=model_identity(target),  # type: ignore[arg-type]
                           draft=model_identity(draft), method=method, head=head, counters=counters,
                           fitted_acceptance=[fitted], notes=notes)

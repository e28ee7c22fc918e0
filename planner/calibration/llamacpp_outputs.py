"""llama.cpp outputs -> a calibration file: server responses, logs, /metrics, llama-speculative output.

The texts are read in ``llamacpp_texts``; this module sums them into accepted A, drafted D and
verification steps S (rounds that had a draft, as the server counts them), takes k and p-min
from the texts when they state them, and converts A / D into the per-token alpha.

Token accounting (tools/server/server-context.cpp, b11312): every target step commits one
token of its own plus the drafts it accepted, so committed = accepted + target steps; target
steps are the S rounds that had a draft plus the steps whose draft was empty (p-min, n-min)
plus the first token of each request (from the prompt pass). predicted_n - accepted therefore
over-counts S; the server's own S is in its log ('mean len', 'statistics') and its /metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from planner.calibration.acceptance_stats import LEVEL, ModelArg, RateFit, fit_from_rate, model_identity
from planner.calibration.llamacpp_settings import stated_k, stated_p_min
from planner.calibration.llamacpp_texts import LlamaCounts, llamacpp_counts, per_position_width
from planner.calibration.method_fits import LOOKUP_METHODS, lookup_fit, method_note
from planner.calibration.schema import AcceptanceCounters, CalibrationFile, FittedAcceptance
from planner.draftloop import alpha_from_loop_counts, engine_loop
from planner.draftloop.convert import loop_acceptance_rate, rate_floor
from planner.draftloop.data import LoopSpec
from planner.errors import SpecplanError
from planner.speedup import acceptance_rate_from_alpha, check_k

__all__ = ["llamacpp_calibration", "server_p_min"]

server_p_min = stated_p_min  # the name the CLI and older callers use


def _labels(source_label: str | Sequence[str], n: int) -> list[str]:
    if isinstance(source_label, str):
        return [source_label] if n == 1 else [f"{source_label} #{i}" for i in range(1, n + 1)]
    labels = list(source_label)
    if len(labels) != n:
        raise SpecplanError(f"{len(labels)} source labels for {n} llama.cpp texts")
    return labels


def _merge_same_requests(parts: list[tuple[str, LlamaCounts]], notes: list[str]) -> list[LlamaCounts]:
    """Parts of different kinds with equal (accepted, drafted) describe the same requests: count them once.

    A run's responses and its server log (or /metrics) state the same tokens; summing them would
    double every count. The merged part keeps the rounds (and per-position rates) of whichever states them.
    """
    merged: list[tuple[str, LlamaCounts]] = []
    for label, part in parts:
        twin = next((i for i, (_, m) in enumerate(merged)
                     if m.kind != part.kind and (m.accepted, m.drafted) == (part.accepted, part.drafted)), None)
        if twin is None:
            covering = _covering(merged, label, part, notes)
            if covering is not None:  # this part's requests are all in an earlier part, or the reverse
                merged[covering[0]] = covering[1]
            else:
                merged.append((label, part))
            continue
        first_label, first = merged[twin]
        merged[twin] = (first_label, replace(
            first, rounds=first.rounds if first.rounds is not None else part.rounds,
            per_position=first.per_position or part.per_position,
            rounds_bound=first.rounds_bound if first.rounds_bound is not None else part.rounds_bound,
            rounds_note=first.rounds_note or part.rounds_note))
        notes.append(f"{label} and {first_label} report the same {part.accepted} / {part.drafted} tokens: "
                     "read as the same requests, counted once")
    return [m for _, m in merged]


def _covering(merged: list[tuple[str, LlamaCounts]], label: str, part: LlamaCounts,
              notes: list[str]) -> tuple[int, tuple[str, LlamaCounts]] | None:
    """(index, the part to keep) when one of two texts holds every request of the other (responses in a log).

    A log may hold more requests than the saved responses (warm-up, other clients); its per-request
    (accepted, drafted) pairs then contain the responses' pairs, and the log alone is counted.
    """
    def contains(big: LlamaCounts, small: LlamaCounts) -> bool:
        pool = list(big.pairs)
        for pair in small.pairs:
            if pair not in pool:
                return False
            pool.remove(pair)
        return True

    for i, (other_label, other) in enumerate(merged):
        if other.kind == part.kind or not other.pairs or not part.pairs:
            continue
        if contains(other, part) or contains(part, other):
            big_label, big, small_label = ((other_label, other, label) if contains(other, part)
                                           else (label, part, other_label))
            notes.append(f"every request of {small_label} is in {big_label}: {big_label} alone is counted")
            return i, (big_label, big)
    return None


def _resolve_k(texts: Sequence[str], k: int | None, label: str, notes: list[str]) -> int:
    """k as the output states it (n_max / n_draft); --k only when no text states it."""
    stated, how, width = stated_k(texts), "speculative.n_max / n_max / n_draft", per_position_width(texts)
    if stated is not None and width is not None and width != stated:
        raise SpecplanError(f"{label}: the outputs state n_max {stated} but the server's per-position rates have "
                            f"{width} positions: calibrate one server setting at a time")
    if stated is None:
        stated, how = width, "the width of the server's per-position rates (sized to n_max)"
    if stated is None:
        if k is None:
            raise SpecplanError(
                f"{label}: the output does not state the draft maximum (no speculative.n_max, '- n_max=' or "
                "'n_draft =' line): pass --k (the server's --spec-draft-n-max / --draft-max)"
            )
        notes.append(f"k = {int(k)} as given (--k): no output states the draft maximum")
        return int(check_k(k))
    if k is not None and int(k) != stated:
        notes.append(f"the output printed n_draft = {stated} but k={int(k)} was given: the output's k={stated} is used")
    else:
        notes.append(f"k = {stated} as the output states it ({how})")
    return int(check_k(stated))


def _conditional(per_position: Sequence[float]) -> list[float]:
    """P(accept i | 0..i-1 accepted) from llama.cpp's P(first i+1 accepted); stops at a zero."""
    rates, previous = [], 1.0
    for u in per_position:
        if previous <= 0:
            break
        rates.append(min(u / previous, 1.0))
        previous = u
    return rates


def _totals(parts: list[LlamaCounts]) -> tuple[int, int, int | None, int | None, tuple[float, ...] | None]:
    """(accepted, drafted, rounds, rounds bound, pooled per-position rates) over the parts."""
    accepted = sum(p.accepted for p in parts)
    drafted = sum(p.drafted for p in parts)
    rounds = None if any(p.rounds is None for p in parts) else sum(p.rounds for p in parts)  # type: ignore[misc]
    bound = None
    if rounds is None and all(p.rounds is not None or p.rounds_bound is not None for p in parts):
        bound = sum(p.rounds if p.rounds is not None else p.rounds_bound for p in parts)  # type: ignore[misc]
    per_position = None
    if rounds and all(p.per_position and p.rounds for p in parts):
        width = max(len(p.per_position) for p in parts)  # type: ignore[arg-type]
        per_position = tuple(sum(round(p.per_position[i] * p.rounds) for p in parts  # type: ignore[index, operator]
                                 if i < len(p.per_position)) / rounds for i in range(width))  # type: ignore[arg-type]
    return accepted, drafted, rounds, bound, per_position


def _loop_alpha_at(loop: LoopSpec, rate: float, k: int, kappa: float) -> float:
    """Per-token alpha whose p-min loop at confidence ``kappa`` accepts ``rate`` of its drafts (bisection)."""
    lo, hi = 0.0, 1.0
    for _ in range(40):  # loop_acceptance_rate rises with alpha
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if loop_acceptance_rate(loop, mid, k, kappa) < rate else (lo, mid)
    return 0.5 * (lo + hi)


def _loop_alpha(fit: RateFit, k: int, dpr: float | None, p_min: float, stated: bool,
                notes: list[str]) -> tuple[float, float, float, float | None] | None:
    """(alpha, low, high, kappa) through llama.cpp's p-min loop; None when the server's own counts defy the loop.

    The loop model says drafted tokens are the confident ones, so A / D overstates the per-token
    alpha. A server that states its p-min yet accepts fewer drafts than that loop can yield (tiny
    or mismatched pairs whose confidences mean little) is reported as such and converted with the
    fixed-k relation: its counts are facts, and no --p-min could change the server's own setting.
    """
    loop = engine_loop("llamacpp", p_min=p_min)
    floor = rate_floor(loop, k)  # the interval's low end may fall below what the loop can yield
    try:
        conv = alpha_from_loop_counts(loop, fit.rate, k, min(dpr, k) if dpr else None)
    except SpecplanError as exc:
        if not stated:
            raise
        notes.append(f"p_min {p_min:g} stated by the server, but {exc}: alpha from the fixed-k relation instead")
        return None
    if stated and dpr and not conv.kappa_fitted and fit.rate < floor:
        notes.append(f"p_min {p_min:g} stated by the server, but accepted/drafted {fit.rate:.4g} is below the "
                     f"{floor:.3g} its loop yields and no confidence fits {dpr:.2f} drafted per round: "
                     "alpha from the fixed-k relation instead")
        return None
    # The interval ends go through the same loop, at the kappa the point estimate used.
    kappa = conv.kappa
    ends = [_loop_alpha_at(loop, max(float(acceptance_rate_from_alpha(x, k)), rate_floor(loop, k, kappa)), k, kappa)
            for x in (fit.alpha_low, fit.alpha_high)]
    notes.append(f"p_min {p_min:g} ({'stated by the server' if stated else '--p-min'}): {conv.detail}")
    return conv.alpha, min(ends[0], conv.alpha), max(ends[1], conv.alpha), conv.kappa if conv.kappa_fitted else None


def llamacpp_calibration(
    texts: Sequence[str],
    k: int | None,
    target: ModelArg,
    draft: ModelArg | None,
    source_label: str | Sequence[str] = "llama.cpp output",
    p_min: float | None = None,
    window_rounds: int | None = None,
    window_per_position: Sequence[int] | None = None,
    *,
    method: str = "draft",
    head: str | None = None,
) -> CalibrationFile:
    """A calibration file from llama.cpp outputs (responses, server log, /metrics, llama-speculative output).

    Each text is recognised on its own (``llamacpp_texts.llamacpp_counts``); texts of the same
    requests are counted once, others summed: A accepted, D drafted, S rounds (the server's
    verification steps, None when no text states them). drafted per round = D / S. ``k`` (the
    server's draft maximum) and p-min are read from the texts when stated; ``k`` is needed only
    when none states it. ``source_label`` names the texts: one label for all, or one per text.
    ``window_rounds``: the server's verification steps for exactly these requests, counted elsewhere
    (the difference of two /metrics scrapes around them, as probe --server takes); used when no text states S.
    ``window_per_position``: of those steps, how many accepted draft position i (the same difference of
    the per_pos series); used with ``window_rounds`` when no text gives per-position rates.
    ``method`` ngram / suffix (``--spec-type ngram-*``): the texts count drafts the same way, but a step
    whose lookup found nothing is a plain decode outside the rounds; with responses alone (their
    predicted_n - draft_n_accepted - 1 is every decode step) A is spread over every step (``lookup_fit``),
    and no p-min loop applies (p-min filters a draft model's tokens).
    """
    if not texts:
        raise SpecplanError("no llama.cpp outputs given")
    labels = _labels(source_label, len(texts))
    found = [(label, llamacpp_counts(text, label)) for text, label in zip(texts, labels)]
    read = [(label, p) for label, p in found if p is not None]
    if not read:
        raise SpecplanError(f"{', '.join(labels)}: only settings (speculative.n_max / p_min), no acceptance counts: "
                            "add the server's responses, log or /metrics")
    notes = [f"{label}: settings only (n_max / p-min)" for label, p in found if p is None]
    notes += [f"{label}: {p.kind}, {p.items} item(s), {p.accepted} accepted / {p.drafted} drafted"
             + (f", {p.rounds} rounds" if p.rounds is not None else "") + (f" ({p.rounds_note})" if p.rounds_note else "")
             for label, p in read]
    parts = _merge_same_requests(read, notes)
    k = _resolve_k(texts, k, labels[0], notes)
    accepted, drafted, rounds, bound, per_position = _totals(parts)
    if rounds is None and window_rounds:
        rounds = window_rounds
        notes.append(f"{rounds} verification steps from the server's /metrics window around these requests")
        if per_position is None and window_per_position and max(window_per_position) <= rounds:
            per_position = tuple(c / rounds for c in window_per_position)
            notes.append("per-position acceptance from the same /metrics window (per_pos differences)")
    if drafted == 0:
        raise SpecplanError(f"{', '.join(labels)}: no draft tokens were proposed")
    if rounds is not None and drafted > k * rounds:
        raise SpecplanError(f"{', '.join(labels)}: {drafted} drafted tokens in {rounds} rounds is more than k={k} "
                            "per round: check --k")

    fit = fit_from_rate(accepted, drafted, k, rounds, None)
    notes.append(f"draft acceptance rate (accepted / drafted tokens): {fit.rate:.4f} = {accepted} / {drafted}")
    if rounds:
        notes.append(
            f"mean acceptance length (tokens per verification step, 1 + accepted / rounds): {1 + accepted / rounds:.4f}; "
            f"drafted per round {drafted / rounds:.2f} of k={k} ({rounds} rounds as the server counts them; "
            "committed tokens = accepted + target steps, target steps = rounds + steps without a draft)"
        )
    elif bound is not None:
        notes.append(
            f"verification steps unknown: responses carry no step count (at most {bound}: predicted_n - "
            "draft_n_accepted - 1 per response, steps without a draft included); give the server log or its "
            "/metrics for the server's own count"
        )
    notes.append(
        f"per-token alpha {fit.alpha:.4f} = alpha_from_acceptance_rate(rate, k={k}); {LEVEL:.0%} interval "
        f"[{fit.alpha_low:.4f}, {fit.alpha_high:.4f}] from a Beta interval on accepted of drafted "
        f"(design effect {fit.design_effect:.2f}, i.i.d. model)"
    )
    conditional = _conditional(per_position) if per_position else []
    if per_position:
        notes.append("per-position rates as llama.cpp prints them, P(first i+1 drafts accepted): "
                     + ", ".join(f"{u:.3f}" for u in per_position)
                     + "; conditional P(accept i | before accepted): " + ", ".join(f"{c:.3f}" for c in conditional)
                     + " (a round that drafted fewer than i+1 tokens counts as stopped there: under p-min these "
                     "mix the draft stopping with rejection, so they are shown, not used)")
    lookup = method in LOOKUP_METHODS
    if lookup:
        notes.insert(0, method_note(method, head))
        if rounds is None and bound is not None and bound > 0:
            fit = lookup_fit(accepted, k, bound, None)
            notes.append(f"decode steps T = predicted_n - draft_n_accepted - 1 over the responses = {bound}; "
                         f"alpha over every step {fit.alpha:.4f} [{fit.alpha_low:.4f}, {fit.alpha_high:.4f}] "
                         f"from A / (k T), 1 + A / T = {1 + accepted / bound:.4f}")
        else:
            notes.append("the rounds count only steps whose lookup found a draft: alpha describes those steps (an "
                         "upper bound on the every-step alpha the plan uses); give the server's responses for T")
    elif method != "draft":
        notes.insert(0, method_note(method, head))
    stated = None if lookup else stated_p_min(texts)
    if lookup:
        p_min = None
    if stated is not None and p_min is not None and abs(stated - p_min) > 1e-6:
        notes.append(f"the server states p-min {stated:g}; --p-min {p_min:g} was given: the server's value is used")
    used_p_min = stated if stated is not None else p_min
    dpr = drafted / rounds if rounds else None
    loop_fit = None if used_p_min is None else _loop_alpha(fit, k, dpr, used_p_min, stated is not None, notes)
    if used_p_min is None and not lookup:
        cut = (f"; {dpr:.2f} drafted per round of k={k}: the server cut its drafts, so pass the --p-min it ran with"
               if dpr is not None and dpr < 0.95 * k else "")
        notes.append(f"p_min unknown (not in the texts, no --p-min): alpha is converted with the fixed-k relation{cut}")
    if loop_fit is None:
        alpha, low, high, kappa = fit.alpha, fit.alpha_low, fit.alpha_high, None
    else:
        alpha, low, high, kappa = loop_fit
    fitted = FittedAcceptance(
        mode="server", alpha=alpha, alpha_low=low, alpha_high=high, k=k, rounds=rounds, per_position=conditional,
        p_min=used_p_min, drafted_per_round=dpr, kappa=kappa,
        mean_accepted_length=1 + accepted / rounds if rounds else None,
    )
    per_pos_counts = [round(u * rounds) for u in per_position] if per_position and rounds else None
    counters = AcceptanceCounters(num_drafts=rounds, num_draft_tokens=drafted, num_accepted_tokens=accepted,
                                  accepted_per_position=per_pos_counts, k=k)
    return CalibrationFile(
        source="llamacpp",
        engine="llamacpp",
        target=model_identity(target),  # type: ignore[arg-type]
        draft=model_identity(draft),
        method=method,
        head=head,
        counters=counters,
        fitted_acceptance=[fitted],
        notes=notes,
    )

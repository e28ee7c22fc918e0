"""vLLM's Prometheus ``/metrics`` text: the speculative-decoding counters of one scrape.

V1 names: ``vllm:spec_decode_num_drafts`` (S, verification steps with a draft),
``..._num_draft_tokens`` (D), ``..._num_accepted_tokens`` (A, bonus token excluded) and
``..._num_accepted_tokens_per_pos{position="i"}`` (drafts whose first i+1 tokens were all
accepted). The V0 legacy set has no S and counts accepts differently (see server_metrics).
Counters are cumulative since the server started; ``snapshot_delta`` makes a window of two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from planner.calibration.prometheus_text import count_value, metric_samples
from planner.errors import SpecplanError
from planner.inputs import shown

__all__ = ["VllmSnapshot", "vllm_counters", "snapshot_delta", "vllm_step_totals", "GENERATION_TOKENS",
           "REQUEST_SUCCESS", "SPEC_PREFIX", "DRAFTS", "DRAFT_TOKENS", "ACCEPTED",
           "PER_POS", "EMITTED", "RATE_GAUGE", "EFFICIENCY_GAUGE"]

SPEC_PREFIX = "vllm:spec_decode_"
DRAFTS = "vllm:spec_decode_num_drafts"
DRAFT_TOKENS = "vllm:spec_decode_num_draft_tokens"
ACCEPTED = "vllm:spec_decode_num_accepted_tokens"
PER_POS = "vllm:spec_decode_num_accepted_tokens_per_pos"
EMITTED = "vllm:spec_decode_num_emitted_tokens"  # V0 only
RATE_GAUGE = "vllm:spec_decode_draft_acceptance_rate"  # V0 only
EFFICIENCY_GAUGE = "vllm:spec_decode_efficiency"  # V0 only
# Every output token, the first of each request (from its prefill) included: IterationStats.update_from_output
# adds len(output.new_token_ids) (vllm/v1/metrics/stats.py, 0.9.2 and 0.33.0); finished requests, one series
# per finished_reason (vllm/v1/metrics/loggers.py).
GENERATION_TOKENS = "vllm:generation_tokens"
REQUEST_SUCCESS = "vllm:request_success"


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


def vllm_counters(text: str, model_name: str | None = None, *, origin: str = "metrics text") -> VllmSnapshot:
    """Read the spec-decode counters from one vLLM ``/metrics`` scrape (Prometheus text).

    Series are summed over label sets (one per engine in data-parallel serving). With
    ``model_name`` only series with that ``model_name`` label count; without it a scrape
    holding several models is refused rather than mixed. ``origin`` names the text in errors.
    """
    samples = metric_samples(text, lambda name: name.startswith(SPEC_PREFIX), origin)
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
        if name == RATE_GAUGE:
            rate_gauges.append(value)
        elif name == PER_POS:
            raw = labels.get("position", "")
            if not re.fullmatch(r"[0-9]{1,3}", raw):  # str.isdigit() accepts "\u00b2", which int() refuses
                raise SpecplanError(f"{origin}: {PER_POS} has position label {shown(raw, 40)}; expected 0, 1, ...")
            per_pos[int(raw)] = per_pos.get(int(raw), 0) + count_value(value, name, origin)
        elif name in (DRAFTS, DRAFT_TOKENS, ACCEPTED, EMITTED):
            totals[name] = totals.get(name, 0) + count_value(value, name, origin)

    v0 = EMITTED in totals or bool(rate_gauges) or any(name == EFFICIENCY_GAUGE for name, _, _ in samples)
    for needed in (DRAFT_TOKENS, ACCEPTED):
        if needed not in totals:
            raise SpecplanError(f"{origin} has spec-decode metrics but no {needed}_total counter")
    positions = None
    if per_pos:
        if sorted(per_pos) != list(range(len(per_pos))):
            raise SpecplanError(
                f"{origin}: {PER_POS} positions {sorted(per_pos)} are not 0..k-1 without gaps"
            )
        positions = tuple(per_pos[i] for i in range(len(per_pos)))
    return VllmSnapshot(
        version="v0" if v0 else "v1",
        num_draft_tokens=totals[DRAFT_TOKENS],
        num_accepted_tokens=totals[ACCEPTED],
        num_drafts=totals.get(DRAFTS),
        accepted_per_position=positions,
        num_emitted_tokens=totals.get(EMITTED),
        # V0 ran one engine per server; several gauges would be different models, refused above.
        draft_acceptance_rate=rate_gauges[0] if len(rate_gauges) == 1 else None,
        model_names=(model_name,) if model_name is not None else models,
    )


def snapshot_delta(before: VllmSnapshot | None, after: VllmSnapshot, before_origin: str, after_origin: str) -> VllmSnapshot:
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
        per_pos = tuple(sub(f"{PER_POS}{{position=\"{i}\"}}", b, a) for i, (b, a) in enumerate(zip(b_pos, a_pos)))
    return VllmSnapshot(
        version=after.version,
        num_draft_tokens=sub(f"{DRAFT_TOKENS}_total", before.num_draft_tokens, after.num_draft_tokens),
        num_accepted_tokens=sub(f"{ACCEPTED}_total", before.num_accepted_tokens, after.num_accepted_tokens),
        num_drafts=sub(f"{DRAFTS}_total", before.num_drafts, after.num_drafts),
        accepted_per_position=per_pos,  # type: ignore[arg-type]  # ints: both sides were present
        num_emitted_tokens=sub(f"{EMITTED}_total", before.num_emitted_tokens, after.num_emitted_tokens),
        draft_acceptance_rate=after.draft_acceptance_rate,
        model_names=after.model_names,
    )


def vllm_step_totals(text: str, model_name: str | None = None, *,
                     origin: str = "metrics text") -> tuple[int, int] | None:
    """(generated tokens G, finished requests N) of one scrape, summed over series; None when either is absent.

    These count every decode step, with or without a draft: with the spec-decode counters they give
    the steps a lookup method found no match in (planner.calibration.method_fits.decode_steps).
    """
    samples = metric_samples(text, lambda name: name.startswith((GENERATION_TOKENS, REQUEST_SUCCESS)), origin)
    if model_name is not None:
        samples = [s for s in samples if s[1].get("model_name") == model_name]
    totals: dict[str, int] = {}
    for name, _, value in samples:
        if name in (GENERATION_TOKENS, REQUEST_SUCCESS):
            totals[name] = totals.get(name, 0) + count_value(value, name, origin)
    if GENERATION_TOKENS not in totals or REQUEST_SUCCESS not in totals:
        return None
    return totals[GENERATION_TOKENS], totals[REQUEST_SUCCESS]

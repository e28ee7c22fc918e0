"""Latency and rate statistics of streamed requests: per request, then per concurrency level.

Every figure is one named function; times are seconds on the probe's clock, rates tokens/s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from planner.calibration.server_probe.stream import StreamRecord

__all__ = ["RequestFigures", "LevelFigures", "ttft_s", "inter_token_s", "chunk_gaps_s", "quantile", "window_s",
           "total_tokens_per_s",
           "request_figures", "level_figures", "speedup"]


def ttft_s(rec: StreamRecord) -> float | None:
    """Time to first token: send -> first chunk that carried a token, s (None: no token came)."""
    return rec.content_times_s[0] - rec.sent_s if rec.content_times_s else None


def inter_token_s(rec: StreamRecord) -> float | None:
    """Mean inter-token latency after the first token, s/token: (last - first content chunk) / (tokens - 1).

    Tokens are the server's count, so a chunk holding several tokens (speculation) spreads its gap
    over them. None with fewer than two tokens or no time between the chunks.
    """
    if len(rec.content_times_s) < 2 or rec.output_tokens < 2:
        return None
    span = rec.content_times_s[-1] - rec.content_times_s[0]
    return span / (rec.output_tokens - 1) if span > 0 else None


def chunk_gaps_s(rec: StreamRecord) -> list[float]:
    """Gaps between consecutive content chunks, s (what a client sees between screen updates)."""
    t = rec.content_times_s
    return [b - a for a, b in zip(t, t[1:])]


def quantile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) with linear interpolation between order statistics; None for no values."""
    return float(np.quantile(np.asarray(values, dtype=float), q)) if len(values) else None


@dataclass(frozen=True)
class RequestFigures:
    """One request's figures (s, tokens, tokens/s per sequence)."""

    ttft_s: float | None
    itl_s: float | None
    output_tokens: int
    tokens_per_s: float | None  # decode rate of this sequence: 1 / itl_s


def request_figures(rec: StreamRecord) -> RequestFigures:
    """TTFT, ITL, tokens and the sequence's decode rate 1 / ITL (tokens/s)."""
    itl = inter_token_s(rec)
    return RequestFigures(ttft_s(rec), itl, rec.output_tokens, None if itl is None else 1.0 / itl)


@dataclass(frozen=True)
class LevelFigures:
    """A level's summary: medians and p90s over requests, total tokens/s over the window."""

    requests: int
    output_tokens: int
    window_s: float
    ttft_s_median: float | None
    ttft_s_p90: float | None
    itl_s_median: float | None
    itl_s_p90: float | None
    chunk_gap_s_median: float | None
    tokens_per_chunk: float | None
    tokens_per_s_per_sequence: float | None
    total_tokens_per_s: float | None
    token_source: str


def window_s(records: Sequence[StreamRecord]) -> float:
    """First send -> last content chunk of the level's completed requests, s."""
    return max(r.end_s for r in records) - min(r.sent_s for r in records) if records else 0.0


def total_tokens_per_s(records: Sequence[StreamRecord]) -> float | None:
    """All output tokens of the level over its window, tokens/s (None: no window)."""
    span = window_s(records)
    return sum(r.output_tokens for r in records) / span if span > 0 else None


def level_figures(records: Sequence[StreamRecord]) -> LevelFigures:
    """Summarise the completed requests of one level (medians, p90s, totals)."""
    figs = [request_figures(r) for r in records]
    ttfts = [f.ttft_s for f in figs if f.ttft_s is not None]
    itls = [f.itl_s for f in figs if f.itl_s is not None]
    rates = [f.tokens_per_s for f in figs if f.tokens_per_s is not None]
    gaps = [g for r in records for g in chunk_gaps_s(r)]
    chunks = sum(len(r.content_times_s) for r in records)
    tokens = sum(r.output_tokens for r in records)
    sources = sorted({r.token_source for r in records})
    return LevelFigures(
        requests=len(records), output_tokens=tokens, window_s=window_s(records),
        ttft_s_median=quantile(ttfts, 0.5), ttft_s_p90=quantile(ttfts, 0.9),
        itl_s_median=quantile(itls, 0.5), itl_s_p90=quantile(itls, 0.9),
        chunk_gap_s_median=quantile(gaps, 0.5), tokens_per_chunk=tokens / chunks if chunks else None,
        tokens_per_s_per_sequence=quantile(rates, 0.5), total_tokens_per_s=total_tokens_per_s(records),
        token_source=", ".join(sources) or "none",
    )


def speedup(spec: float | None, baseline: float | None) -> float | None:
    """Measured speedup: speculative rate / baseline rate (same units); None when either is missing."""
    return spec / baseline if spec is not None and baseline else None

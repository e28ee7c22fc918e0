"""Calibration records of a live-server probe: what one concurrency level measured (``probe --server``).

Kept beside ``schema`` so the calibration file stays one schema (version 1: these fields are new
and optional, so files written before them still read). Latencies are seconds, rates tokens per
second; "per sequence" is one request's decode rate, "total" the level's output over its window.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from planner.catalog.schemas import Frozen

__all__ = ["LoadLevel", "ServerRun"]

_Seconds = Annotated[float, Field(ge=0)]
_Rate = Annotated[float, Field(ge=0)]
_Count = Annotated[int, Field(ge=0)]


class _Record(Frozen):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class ServerRun(_Record):
    """Which server a probe talked to and how each request was bounded."""

    url: str = Field(description="base URL of the speculative server")
    baseline_url: str | None = Field(None, description="base URL of the same target served without speculation")
    endpoint: str = Field(description="request path, e.g. /v1/completions")
    model_name: str | None = Field(None, description="model name sent in each request (the server's served name)")
    max_tokens_per_request: int = Field(ge=1)
    temperature: float = Field(ge=0)
    ignore_eos: bool = True


class LoadLevel(_Record):
    """One concurrency level: N requests, at most ``concurrency`` in flight, on the speculative server.

    TTFT: send -> first chunk carrying a token ("content chunk"). ITL: (last - first content chunk) / (output tokens - 1), the
    mean time per token after the first, so a chunk carrying several drafted tokens counts them all.
    tokens_per_s_per_sequence: median over requests of 1 / ITL. total_tokens_per_s: all output tokens
    over the window (first send -> last chunk). Tokens are the server's own counts (usage or timings).
    """

    concurrency: int = Field(ge=1)
    requests_sent: _Count
    requests_completed: _Count
    output_tokens: _Count
    token_count_source: str = Field(description="usage.completion_tokens, timings.predicted_n, ... or chunks")
    window_s: _Seconds
    ttft_s_median: _Seconds | None = None
    ttft_s_p90: _Seconds | None = None
    itl_s_median: _Seconds | None = None
    itl_s_p90: _Seconds | None = None
    chunk_gap_s_median: _Seconds | None = None
    tokens_per_chunk: _Rate | None = Field(None, description="output tokens / content chunks (> 1: multi-token chunks)")
    tokens_per_s_per_sequence: _Rate | None = None
    total_tokens_per_s: _Rate | None = None
    drafted_tokens: _Count | None = Field(None, description="draft tokens proposed in this level's window")
    accepted_tokens: _Count | None = Field(None, description="draft tokens accepted in the window (bonus excluded)")
    verification_steps: _Count | None = Field(None, description="the server's own verification steps with a draft")
    accepted_per_position: list[_Count] | None = Field(
        None, description="verification steps of the window that accepted draft position i (llama.cpp /metrics per_pos)")
    baseline_requests_completed: _Count | None = None
    baseline_output_tokens: _Count | None = None
    baseline_ttft_s_median: _Seconds | None = None
    baseline_itl_s_median: _Seconds | None = None
    baseline_tokens_per_s_per_sequence: _Rate | None = None
    baseline_total_tokens_per_s: _Rate | None = None
    measured_speedup_per_sequence: _Rate | None = Field(None, description="spec / baseline tokens/s per sequence")
    measured_speedup_total: _Rate | None = Field(None, description="spec / baseline total tokens/s")
    errors: list[str] = Field(default_factory=list, description="first failures of this level, one line each")

    @model_validator(mode="after")
    def _consistent(self) -> LoadLevel:
        if self.requests_completed > self.requests_sent:
            raise ValueError("more requests completed than were sent")
        if None not in (self.drafted_tokens, self.accepted_tokens) and self.accepted_tokens > self.drafted_tokens:  # type: ignore[operator]
            raise ValueError("more draft tokens accepted than drafted")
        return self

"""Read one streamed completion: server-sent events with their arrival times -> what the request produced.

The three servers stream OpenAI-compatible chunks (``data: {json}`` events, ``data: [DONE]`` last):

* vLLM (vllm/entrypoints/openai/protocol.py, ``CompletionStreamResponse``): ``choices[i].text``
  per chunk; with ``stream_options: {"include_usage": true}`` a last chunk with ``choices: []``
  and ``usage.completion_tokens``.
* SGLang (sglang/srt/entrypoints/openai/protocol.py): the same classes and usage chunk.
* llama-server (tools/server/server-task.cpp, b11312): the same chunks, its final one carrying
  ``timings`` (``predicted_n``, ``draft_n``, ``draft_n_accepted``); its own ``/completion``
  streams ``content`` / ``stop`` / ``tokens_predicted`` with ``timings`` at the end.

A speculative server may put several tokens in one chunk, so tokens are counted from the
server's own figures (usage, then timings, then tokens_predicted) and only as a last resort by
chunks, which the record says. Chat chunks (``choices[i].delta.content``) are read too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StreamRecord", "StreamError", "parse_stream", "sse_events"]


class StreamError(ValueError):
    """The bytes are not a completion stream (one line saying why)."""


@dataclass(frozen=True)
class StreamRecord:
    """One streamed request: when it was sent, when content arrived, and the server's own counts.

    Times are seconds on the probe's clock. ``content_times_s`` has one entry per chunk that
    carried a token (see ``_chunk_text``). ``output_tokens`` is the server's count (``token_source`` names the field).
    """

    sent_s: float
    content_times_s: tuple[float, ...]
    output_tokens: int
    token_source: str
    text: str = ""
    finish_reason: str | None = None
    timings: dict[str, Any] | None = None  # llama.cpp's last timings object
    final: dict[str, Any] | None = None  # the last chunk with timings (llama.cpp), else with usage, as sent
    done: bool = False  # the stream ended with [DONE] (OpenAI) or stop: true (llama.cpp /completion)
    # vLLM >= 0.2x: the usage chunk's metrics.speculative_decoding (num_draft_tokens, num_accepted_draft_tokens,
    # num_spec_steps) for this request (vllm/entrypoints/generate/base/protocol.py SpeculativeDecodingMetrics)
    request_spec: tuple[int, int, int | None] | None = None
    chunks: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def end_s(self) -> float:
        """Arrival of the last content chunk (the send time when none came), s."""
        return self.content_times_s[-1] if self.content_times_s else self.sent_s


def sse_events(lines: Iterable[tuple[float, str]]) -> list[tuple[float, str]]:
    """(arrival of the event's last line, data) per server-sent event; comments and other fields skipped.

    Several ``data:`` lines of one event are joined with newlines (the SSE rule); an event ends at a
    blank line. A stream whose lines are bare JSON objects (JSON lines) is read one object per line.
    """
    events: list[tuple[float, str]] = []
    data: list[str] = []
    last = 0.0
    for t, line in lines:
        if line == "":
            if data:
                events.append((last, "\n".join(data)))
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
            last = t
        elif line.lstrip().startswith("{") and not data:
            events.append((t, line.strip()))
    if data:
        events.append((last, "\n".join(data)))
    return events


def _count(doc: dict[str, Any], *path: str) -> int | None:
    value: Any = doc
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value) if value >= 0 and value == int(value) else None


def _chunk_text(doc: dict[str, Any]) -> tuple[str, str | None, bool]:
    """(text, finish reason, whether the chunk carries a token) of one chunk: completion, chat delta, llama.cpp.

    A completion chunk with empty text and no finish reason still carries a token: llama-server sends
    one chunk per token and holds back the bytes of an unfinished UTF-8 character. A chat chunk counts
    only with content (vLLM's first chat chunk sets the role and carries none).
    """
    choices = doc.get("choices")
    if isinstance(choices, list):
        parts, finish, token = [], None, False
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            text = choice.get("text")
            delta = choice.get("delta")
            if isinstance(text, str):
                token = token or bool(text) or choice.get("finish_reason") is None
            elif isinstance(delta, dict):
                text = delta.get("content") or delta.get("reasoning_content")
                token = token or bool(text)
            parts.append(text if isinstance(text, str) else "")
            finish = choice.get("finish_reason") or finish
        return "".join(parts), finish if isinstance(finish, str) else None, token
    content = doc.get("content")
    stop = doc.get("stop_type") if doc.get("stop") else None
    text = content if isinstance(content, str) else ""
    return text, (str(stop) if stop else None), bool(text) or (isinstance(content, str) and not doc.get("stop"))


def _server_error(doc: dict[str, Any]) -> str | None:
    err = doc.get("error")
    if err is None:
        return None
    message = err.get("message", err) if isinstance(err, dict) else err
    return " ".join(str(message).split())[:200] or "error"


def parse_stream(sent_s: float, lines: Iterable[tuple[float, str]]) -> StreamRecord:
    """The request's record from its stream lines (arrival time, line); StreamError if it is no stream.

    Usage is taken from the last chunk that states it (vLLM's continuous usage repeats it), timings
    from the last chunk with a timings object (llama.cpp sends running timings on the way).
    """
    times: list[float] = []
    text: list[str] = []
    finish = None
    usage = timings_n = predicted = None
    timings: dict[str, Any] | None = None
    final: dict[str, Any] | None = None
    done = False
    chunks = 0
    request_spec = None
    for t, data in sse_events(lines):
        if data.strip() == "[DONE]":
            done = True
            break
        try:
            doc = json.loads(data)
        except ValueError:
            raise StreamError(f"a stream event is not JSON (starts {data[:40]!r})") from None
        if not isinstance(doc, dict):
            raise StreamError("a stream event is JSON but not an object")
        error = _server_error(doc)
        if error is not None:
            raise StreamError(f"the server sent an error in the stream: {error}")
        chunks += 1
        piece, reason, token = _chunk_text(doc)
        if token:
            times.append(t)
        text.append(piece)
        finish = reason or finish
        if (n := _count(doc, "usage", "completion_tokens")) is not None:
            usage = n
            final = final if timings is not None else doc  # llama.cpp's timings chunk stays the final one
        if isinstance(doc.get("timings"), dict):
            timings, final = doc["timings"], doc
            timings_n = _count(doc, "timings", "predicted_n")
        if (n := _count(doc, "tokens_predicted")) is not None:
            predicted = n
        drafted = _count(doc, "metrics", "speculative_decoding", "num_draft_tokens")
        if drafted is not None:
            accepted = _count(doc, "metrics", "speculative_decoding", "num_accepted_draft_tokens") or 0
            request_spec = (drafted, accepted, _count(doc, "metrics", "speculative_decoding", "num_spec_steps"))
        if doc.get("stop") is True and "choices" not in doc:
            done = True
    if chunks == 0:
        raise StreamError("no completion chunks in the answer: not a streamed completion")
    notes: list[str] = []
    # The server's own counts first: a speculative server may send several tokens in one chunk.
    for value, source in ((usage, "usage.completion_tokens"), (timings_n, "timings.predicted_n"),
                          (predicted, "tokens_predicted")):
        if value is not None:
            tokens, token_source = value, source
            break
    else:
        tokens, token_source = len(times), "chunks"
        notes.append("the server gave no token count (usage, timings): tokens counted as content chunks")
    if not done:
        notes.append("the stream ended without [DONE]")
    return StreamRecord(sent_s=sent_s, content_times_s=tuple(times), output_tokens=tokens, token_source=token_source,
                        text="".join(text), finish_reason=finish, timings=timings, final=final, done=done,
                        chunks=chunks, notes=tuple(notes), request_spec=request_spec)


def final_objects_json(records: Iterable[StreamRecord]) -> str:
    """The final chunks that carry llama.cpp timings, as one JSON list (what ``llamacpp_texts`` reads)."""
    return json.dumps([r.final for r in records if r.final is not None and r.timings is not None])


__all__ += ["final_objects_json"]

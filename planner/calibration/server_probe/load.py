"""Bounded load: N streamed requests with at most C in flight, stopped by the budget or Ctrl-C.

Threads, one per request in flight (the work is waiting on sockets). No request starts after the
deadline; one in flight when it passes ends at its next read (``transport.stream_lines``); Ctrl-C
closes every open stream at once, so the interrupted level returns within a read, not a timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from planner.calibration.server_probe.stream import StreamError, StreamRecord, parse_stream
from planner.calibration.server_probe.transport import BudgetSpent, Connections, TransportError, stream_lines

__all__ = ["LevelRequest", "LevelRun", "run_level"]

_POLL_S = 0.2  # how often the waiting main thread wakes (so Ctrl-C is seen promptly)
MAX_ERRORS_KEPT = 5


@dataclass
class LevelRequest:
    """One level's load: the same URL for every request, bodies sent in order (prompts cycled)."""

    url: str
    bodies: Sequence[dict[str, Any]]
    concurrency: int
    timeout_s: float  # every read of a stream waits at most this long
    deadline_s: float  # on ``clock``: no request starts after it, none reads past it
    clock: Callable[[], float]
    progress: Callable[[int, int], None] | None = None  # (finished, total)


@dataclass
class LevelRun:
    """What a level produced: completed requests in order of sending, and why the others failed."""

    records: list[StreamRecord]
    sent: int
    errors: list[str] = field(default_factory=list)
    failed: int = 0
    interrupted: bool = False
    out_of_budget: bool = False


def _one(req: LevelRequest, body: dict[str, Any], connections: Connections) -> StreamRecord:
    if connections.closed.is_set():
        raise TransportError("stopped before the request was sent")
    sent = req.clock()
    lines = stream_lines(req.url, body, req.timeout_s, req.clock, lambda: req.deadline_s - req.clock(), connections)
    try:
        return parse_stream(sent, lines)
    except StreamError as exc:
        raise TransportError(f"{req.url}: {exc}") from None


def run_level(req: LevelRequest) -> LevelRun:
    """Send ``req.bodies`` with at most ``req.concurrency`` in flight; returns even on Ctrl-C (interrupted)."""
    connections = Connections()
    results: dict[int, StreamRecord] = {}
    run = LevelRun(records=[], sent=0)
    lock = threading.Lock()
    total = len(req.bodies)
    pending: set[Future] = set()
    order: dict[Future, int] = {}
    next_body = 0

    def finished(fut: Future) -> None:
        i = order[fut]
        try:
            results[i] = fut.result()
        except TransportError as exc:
            with lock:
                run.failed += 1
                run.out_of_budget = run.out_of_budget or isinstance(exc, BudgetSpent)
                if len(run.errors) < MAX_ERRORS_KEPT and str(exc) not in run.errors:
                    run.errors.append(str(exc))
        if req.progress is not None:
            req.progress(len(results) + run.failed, total)

    pool = ThreadPoolExecutor(max_workers=max(1, req.concurrency), thread_name_prefix="specplan-load")
    try:
        while next_body < total or pending:
            # Keep C requests in flight: submit as slots free up, never past the deadline.
            while next_body < total and len(pending) < req.concurrency:
                if req.clock() >= req.deadline_s:
                    run.out_of_budget = True
                    break
                fut = pool.submit(_one, req, req.bodies[next_body], connections)
                order[fut] = next_body
                pending.add(fut)
                next_body += 1
                run.sent += 1
            if not pending:
                break
            done, pending = wait(pending, timeout=_POLL_S, return_when=FIRST_COMPLETED)
            for fut in done:
                finished(fut)
    except KeyboardInterrupt:
        run.interrupted = True
        connections.close_all()
        for fut in pending:
            fut.cancel()
    finally:
        pool.shutdown(wait=True)
        for fut in pending:
            if fut.done() and not fut.cancelled() and order[fut] not in results:
                finished(fut)
    if next_body < total and not run.interrupted:
        run.out_of_budget = True
    run.records = [results[i] for i in sorted(results)]
    return run

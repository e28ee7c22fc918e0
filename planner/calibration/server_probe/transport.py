"""HTTP for the server probe: http(s) URLs only, every call with a timeout, bounded reads.

Plain ``http.client`` (no new dependency). A streaming request yields each line with the time it
arrived on the injected clock, so what is measured is when bytes reached this process; the socket
timeout before each line is the smaller of the per-call timeout and the time left in the budget.
Every failure is a ``TransportError`` whose message is one line.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

from planner.errors import SpecplanError
from planner.inputs import MAX_INPUT_BYTES, shown
from planner.urls import check_http_url

__all__ = ["TransportError", "BudgetSpent", "check_base_url", "join", "get_text", "get_json", "stream_lines", "Connections",
           "MAX_LINE_BYTES", "MAX_BODY_BYTES"]

MAX_LINE_BYTES = 1 << 20  # one SSE line; a longer one is not a completion chunk
MAX_BODY_BYTES = MAX_INPUT_BYTES  # one non-streamed answer, as any input file (/metrics of a large server is a few MiB)
_MIN_TIMEOUT_S = 0.05  # a socket timeout of 0 would make it non-blocking


class TransportError(SpecplanError):
    """A request failed: refused, timed out, an HTTP error status, or a body over the limits."""


class BudgetSpent(TransportError):
    """The probe's time budget ended while the request was in flight."""


def check_base_url(url: str, flag: str) -> str:
    """The URL without a trailing slash; anything but http:// or https:// with a host is refused."""
    check_http_url(url, flag, base=True)
    return url.strip().rstrip("/")


def join(base: str, path: str) -> str:
    """base URL + absolute path; a base ending in /v1 and a path starting with /v1 are not doubled."""
    if base.endswith("/v1") and path.startswith("/v1/"):
        return base + path[3:]
    return base + path


def _connection(url: str, timeout_s: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme.lower() == "https" else http.client.HTTPConnection
    kwargs: dict[str, Any] = {"context": ssl.create_default_context()} if cls is http.client.HTTPSConnection else {}
    conn = cls(parts.hostname, parts.port, timeout=max(timeout_s, _MIN_TIMEOUT_S), **kwargs)
    return conn, (parts.path or "/")


def _failure(url: str, exc: BaseException, timeout_s: float) -> TransportError:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return TransportError(f"{url}: no answer within {timeout_s:.3g} s")
    if isinstance(exc, ConnectionRefusedError):
        return TransportError(f"{url}: connection refused (is the server running on that port?)")
    if isinstance(exc, socket.gaierror):
        return TransportError(f"{url}: unknown host ({exc.strerror or exc})")
    if isinstance(exc, ssl.SSLError):
        return TransportError(f"{url}: TLS error ({exc.reason or exc})")
    text = str(exc).strip().splitlines()
    return TransportError(f"{url}: {type(exc).__name__}{': ' + text[0][:200] if text else ''}")


def _status_error(url: str, response: http.client.HTTPResponse) -> TransportError:
    body = response.read(4096).decode("utf-8", errors="replace")
    try:
        doc = json.loads(body)
        detail = doc.get("error", doc) if isinstance(doc, dict) else doc
        detail = detail.get("message", detail) if isinstance(detail, dict) else detail
    except ValueError:
        detail = body
    first = " ".join(str(detail).split())[:200]
    return TransportError(f"{url}: HTTP {response.status} {response.reason}" + (f": {first}" if first else ""))


def get_text(url: str, timeout_s: float) -> str:
    """GET ``url``; the body as text (UTF-8, invalid bytes replaced). HTTP errors are TransportError."""
    conn, path = _connection(url, timeout_s)
    response: http.client.HTTPResponse | None = None
    try:
        conn.request("GET", path, headers={"Accept": "text/plain, application/json;q=0.9, */*;q=0.1"})
        response = conn.getresponse()
        if response.status != 200:
            raise _status_error(url, response)
        body = response.read(MAX_BODY_BYTES + 1)
    except TransportError:
        raise
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _failure(url, exc, timeout_s) from None
    finally:
        if response is not None:
            response.close()
        conn.close()
    if len(body) > MAX_BODY_BYTES:
        raise TransportError(f"{url}: the answer is over the {MAX_BODY_BYTES >> 20} MiB limit")
    return body.decode("utf-8", errors="replace")


def get_json(url: str, timeout_s: float) -> Any:
    """GET ``url`` and parse it as JSON; a body that is not JSON is a TransportError."""
    text = get_text(url, timeout_s)
    try:
        return json.loads(text)
    except ValueError:
        raise TransportError(f"{url}: the answer is not JSON (starts {shown(text[:40], 40)})") from None


class Connections:
    """The sockets of the streams open now, so a Ctrl-C or the end of the budget can stop them from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.closed = threading.Event()

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            if self.closed.is_set():
                raise TransportError("stopped before the request was sent")
            self._open.add(sock)

    def remove(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def close_all(self) -> None:
        """Stop every open stream: its reader gets an error at once instead of waiting out its timeout."""
        with self._lock:
            self.closed.set()
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def stream_lines(url: str, body: dict[str, Any], timeout_s: float, clock: Callable[[], float],
                 time_left_s: Callable[[], float], connections: Connections | None = None,
                 ) -> Iterator[tuple[float, str]]:
    """POST ``body`` as JSON and yield (arrival time on ``clock``, line without its newline) as lines arrive.

    Each read waits at most min(timeout_s, time_left_s()) seconds; when the budget is spent the
    stream ends with a TransportError saying so. Lines over MAX_LINE_BYTES are refused.
    """
    conn, path = _connection(url, min(timeout_s, time_left_s()))
    sock: socket.socket | None = None
    response: http.client.HTTPResponse | None = None
    try:
        conn.connect()
        # Kept apart from conn: a server that closes after the answer hands the socket to the response
        # (http.client sets conn.sock to None), and the timeouts below must still reach it.
        sock = conn.sock
        if connections is not None:
            connections.add(sock)
        payload = json.dumps(body).encode("utf-8")
        conn.request("POST", path, body=payload, headers={"Content-Type": "application/json",
                                                           "Accept": "text/event-stream"})
        response = conn.getresponse()
        if response.status != 200:
            raise _status_error(url, response)
        while True:
            if connections is not None and connections.closed.is_set():
                raise TransportError(f"{url}: stopped (interrupted or out of budget)")
            left = time_left_s()
            if left <= 0:
                raise BudgetSpent(f"{url}: the budget ended during the stream (raise --budget-s)")
            sock.settimeout(max(min(timeout_s, left), _MIN_TIMEOUT_S))
            raw = response.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            if len(raw) > MAX_LINE_BYTES:
                raise TransportError(f"{url}: a stream line is over {MAX_LINE_BYTES >> 20} MiB: not a completion stream")
            yield clock(), raw.decode("utf-8", errors="replace").rstrip("\r\n")
    except TransportError:
        raise
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if connections is not None and connections.closed.is_set():
            raise TransportError(f"{url}: stopped (interrupted or out of budget)") from None
        if isinstance(exc, (socket.timeout, TimeoutError)) and time_left_s() <= _MIN_TIMEOUT_S:
            raise BudgetSpent(f"{url}: the budget ended during the stream (raise --budget-s)") from None
        raise _failure(url, exc, timeout_s) from None
    finally:
        if connections is not None and sock is not None:
            connections.remove(sock)
        if response is not None:
            response.close()
        conn.close()

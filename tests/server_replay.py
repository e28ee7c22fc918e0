"""A local HTTP server that replays recorded server bytes, for the probe's transport and error paths.

It serves what real servers sent (tests/data/server: llama-server b11312 streams, /props, /v1/models,
recorded by tests/test_real_server_probe.py) over a real socket on 127.0.0.1, so the probe's HTTP
client, stream reader and load generator run unchanged; and what no real server sends on purpose
(HTTP 500, bytes that are not a stream) for the error paths. The real servers run in the
``real_llamacpp`` tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Route", "replay_server"]


@dataclass
class Route:
    """What one path answers: a status, a content type and the body (lines are sent and flushed one by one)."""

    status: int = 200
    content_type: str = "application/json"
    body: bytes = b""
    stream: bool = False  # send the body line by line, flushing after each (as a streaming server does)


@dataclass
class Replay:
    """The running server: its base URL and the request bodies it received, per path."""

    url: str
    received: dict[str, list[bytes]] = field(default_factory=dict)


def _handler(routes: dict[tuple[str, str], Route | Callable[[bytes], Route]], replay: Replay) -> type:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet: pytest shows failures, not access logs
            pass

        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            replay.received.setdefault(self.path, []).append(body)
            route = routes.get((method, self.path))
            if route is None:
                route = Route(404, "application/json", b'{"error": {"message": "File Not Found", "code": 404}}')
            elif callable(route):
                route = route(body)
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            if not route.stream:
                self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            if not route.stream:
                self.wfile.write(route.body)
                return
            try:
                for line in route.body.splitlines(keepends=True):
                    self.wfile.write(line)
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the probe stopped reading (its budget ended): what a real server sees too

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._answer("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._answer("POST")

    return Handler


@contextmanager
def replay_server(routes: dict[tuple[str, str], Route | Callable[[bytes], Route]]) -> Iterator[Replay]:
    """Serve ``routes`` ((method, path) -> Route) on 127.0.0.1 and a free port until the block ends."""
    replay = Replay(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(routes, replay))
    server.daemon_threads = True
    replay.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield replay
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

"""Real HTTP servers on 127.0.0.1 for tests: a recorder with switchable failure modes.

`HttpStub` runs `http.server.ThreadingHTTPServer` in a thread, records every request
(method, path, query, headers, body) and answers through a `respond(request)` callback.
`mode` makes it misbehave the way real outages do:

- "ok": call `respond` (default: 200 with `{}`),
- "503": answer 503 Service Unavailable without calling `respond`,
- "hang": hold the request for `hang_s` seconds, then drop the connection unanswered
  (a client with a shorter timeout gives up first; nothing is applied),
- "gate": hold the request until `gate` is set, then call `respond`.

`stop()` closes the listening socket (clients get "connection refused"); `start()` binds the
same port again, so a client configured with `url` reaches the server after the outage.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float = 0.0  # time.monotonic() when the request arrived
    served: bool = False  # True when `respond` ran (the request reached the "application")

    def json(self) -> Any:
        return json.loads(self.body.decode()) if self.body else None


@dataclass
class Response:
    status: int = 200
    body: Any = field(default_factory=dict)  # JSON-encoded unless bytes
    headers: dict[str, str] = field(default_factory=dict)


Responder = Callable[[Request], Response]


class HttpStub:
    def __init__(self, respond: Responder | None = None, port: int = 0) -> None:
        self.respond: Responder = respond or (lambda _req: Response())
        self.mode = "ok"
        self.hang_s = 2.0
        self.gate = threading.Event()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HttpStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def setup(self) -> None:
                super().setup()
                with stub._lock:
                    stub._connections.add(self.connection)

            def finish(self) -> None:
                with stub._lock:
                    stub._connections.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    at=time.monotonic(),
                )
                with stub._lock:
                    stub.requests.append(req)
                mode = stub.mode
                if mode == "503":
                    self._send(Response(503, {"message": "service unavailable"}))
                    return
                if mode == "hang":
                    time.sleep(stub.hang_s)
                    self.close_connection = True
                    return
                if mode == "gate":
                    stub.gate.wait(30)
                try:
                    resp = stub.respond(req)
                    req.served = True
                except Exception as exc:  # a bug in a test responder shows up as a 500
                    resp = Response(500, {"message": f"responder failed: {exc!r}"})
                self._send(resp)

            def _send(self, resp: Response) -> None:
                raw = resp.body if isinstance(resp.body, bytes) else json.dumps(resp.body).encode()
                try:
                    self.send_response(resp.status)
                    self.send_header("Content-Type", "application/json")
                    for k, v in resp.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:
                    pass  # the client gave up already

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"httpstub-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut open keep-alive connections: a real outage."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            open_connections = list(self._connections)
            self._connections.clear()
        for conn in open_connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def recorded(self, path_prefix: str = "") -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def __enter__(self) -> HttpStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(cond: Callable[[], bool], what: str, limit_s: float = 20.0,
               step: Callable[[], object] | None = None) -> None:
    """Poll cond (running step first) until true; fail with `what` after limit_s."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if step is not None:
            step()
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")

"""A keyed weather API on 127.0.0.1 (stdlib http.server): the non-LLM API the tests route.

Each key has a script of statuses to answer with (then 200s); every request is recorded with
the credential it carried, wherever it carried it (a header, `?key=`, `Authorization`).
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True, slots=True)
class Seen:
    host: str
    path: str
    credential: str | None
    headers: dict[str, str]
    query: dict[str, list[str]]
    at: float


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)


class WeatherAPI:
    """`with WeatherAPI(["k1", "k2"]) as api: api.url` -> http://127.0.0.1:PORT."""

    def __init__(self, keys: list[str], *, revoked: tuple[str, ...] = ()) -> None:
        self.keys = set(keys)
        self.revoked = set(revoked)
        self.seen: list[Seen] = []
        self.scripts: dict[str, deque[Answer]] = defaultdict(deque)
        self.redirect_to: str | None = None
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api._serve(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def script(self, key: str, *answers: Answer) -> None:
        with self._lock:
            self.scripts[key].extend(answers)

    def credentials(self, path: str | None = None) -> list[str | None]:
        return [s.credential for s in self.seen if path is None or s.path == path]

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        credential = (
            headers.get("x-api-key")
            or (query.get("key") or [None])[0]
            or headers.get("authorization", "").removeprefix("Token ").removeprefix("Bearer ")
            or None
        )
        host = headers.get("host", "").split(":")[0]
        with self._lock:
            self.seen.append(Seen(host, parts.path, credential, headers, query, time.monotonic()))
            scripted = self.scripts[credential].popleft() if self.scripts[credential] else None
        if parts.path == "/redirect" and self.redirect_to:
            self._send(handler, 302, {"location": self.redirect_to}, {})
        elif credential is None or credential not in self.keys or credential in self.revoked:
            self._send(handler, 401, {}, {"error": {"message": "invalid API key"}})
        elif scripted is not None:
            self._send(handler, scripted.status, scripted.headers, {"error": {"message": "no"}})
        else:
            limits = {
                "ratelimit-limit": "100",
                "ratelimit-remaining": "99",
                "ratelimit-reset": "60",
            }
            self._send(handler, 200, limits, {"city": "Lisbon", "temp_c": 21})

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: object
    ) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

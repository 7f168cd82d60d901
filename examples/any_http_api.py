"""Any HTTP API: keyrouter.route() spreads a geocoding API's calls over three keys.

python examples/any_http_api.py

The "geocoding API" is a tiny server on 127.0.0.1 (the standard library's http.server) that
wants its key in an `X-API-Key` header: one key is revoked (401), one allows 5 calls a minute
(then 429 with `retry-after`), one is fine. Your own `httpx.Client` never sees an error.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2  # or httpx: keyrouter routes both

import keyrouter

KEYS = {
    "revoked": "geo-key-revoked-0000000001",
    "small": "geo-key-small-000000000002",
    "big": "geo-key-big-00000000000003",
}
SERVED: Counter[str] = Counter()


class GeocodingAPI(BaseHTTPRequestHandler):
    """`GET /geocode?q=Lisbon` -> `{"lat": ..., "lon": ...}`, keyed by `X-API-Key`."""

    def do_GET(self) -> None:
        key = self.headers.get("x-api-key")
        if key not in KEYS.values() or key == KEYS["revoked"]:
            self.answer(401, {"error": {"message": "invalid API key"}})
        elif key == KEYS["small"] and SERVED[key] >= 5:
            self.answer(429, {"error": {"message": "5 per minute"}}, {"retry-after": "60"})
        else:
            SERVED[key] += 1
            remaining = {"ratelimit-limit": "100", "ratelimit-remaining": str(100 - SERVED[key])}
            self.answer(200, {"q": "Lisbon", "lat": 38.72, "lon": -9.14}, remaining)

    def answer(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"content-type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), GeocodingAPI)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
    try:
        with httpx2.Client(base_url=f"http://127.0.0.1:{server.server_port}") as client:
            pool = keyrouter.route(
                client,
                keys=[keyrouter.Key(secret, name=name) for name, secret in KEYS.items()],
                header="X-API-Key",
            )
            answers = [client.get("/geocode", params={"q": "Lisbon"}) for _ in range(20)]
        ok = sum(r.status_code == 200 for r in answers)
        print(f"{ok}/{len(answers)} lookups served; errors seen by the caller: {20 - ok}")
        for key in pool.snapshot():
            print(f"  {key.key:8} {key.state.value:10} served {key.successes}")
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()

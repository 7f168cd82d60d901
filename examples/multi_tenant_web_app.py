"""A multi-tenant web app: each request uses its tenant's own keys (`keyrouter.pool`), and the
app can say, per tenant, what the pool is doing (events and `keyrouter.snapshot()`).

A stdlib WSGI app (wsgiref, one thread per request) with two routes:
    POST /chat    header X-Tenant: acme, body {"prompt": "..."} -> {"reply": "...", "id": "..."}
    GET  /status  header X-Tenant: acme -> the tenant's keys, by fingerprint, and their state

It serves on 127.0.0.1 against the local fake provider, sends a few requests per tenant from
threads, and prints what happened. One of acme's keys is revoked: acme's callers never see it.

python examples/multi_tenant_web_app.py
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import openai

import keyrouter
from keyrouter.testing import FakeKey, FakeProvider

TENANT_KEYS = {
    "acme": ["sk-example-acme-revoked-00000000001", "sk-example-acme-good-0000000000002"],
    "globex": ["sk-example-globex-0000000000000003"],
}
REQUESTS_PER_TENANT = 12

tenant_var: ContextVar[str] = ContextVar("tenant", default="-")
failovers: Counter[str] = Counter()
_lock = threading.Lock()


def count_failovers(event: keyrouter.Event) -> None:
    """Events fire on the request's own thread, so the tenant is known from the context."""
    if isinstance(event, keyrouter.Failover):
        with _lock:
            failovers[tenant_var.get()] += 1


def make_app(client: openai.OpenAI) -> Callable[..., Iterable[bytes]]:
    """The WSGI app: one scoped pool per request, chosen by the X-Tenant header."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        tenant = environ.get("HTTP_X_TENANT", "")
        if tenant not in TENANT_KEYS:
            return _json(start_response, "404 Not Found", {"error": f"unknown tenant {tenant!r}"})
        tenant_var.set(tenant)
        with keyrouter.pool(openai=TENANT_KEYS[tenant]):
            if environ["PATH_INFO"] == "/status":
                return _json(start_response, "200 OK", _status())
            length = int(environ.get("CONTENT_LENGTH") or 0)
            prompt = json.loads(environ["wsgi.input"].read(length) or b"{}").get("prompt", "")
            reply = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
            )
        body = {"reply": reply.choices[0].message.content, "id": reply.id}
        return _json(start_response, "200 OK", body)

    return app


def _status() -> dict[str, Any]:
    """The tenant's pool as `keyrouter.snapshot()` sees it here (inside its scope)."""
    return {
        "keys": [
            {"key": k.key, "state": k.state.value, "reason": k.reason, "attempts": k.attempts}
            for k in keyrouter.snapshot("openai")["openai"]
        ]
    }


def _json(start_response: Callable[..., Any], status: str, body: object) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def call(base: str, tenant: str, path: str, body: dict[str, str] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - our own server
        base + path, data=data, headers={"X-Tenant": tenant}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our own server
        return json.load(response)


def main() -> None:
    fakes = [FakeKey(TENANT_KEYS["acme"][0], status="invalid")]
    fakes += [FakeKey(k, rpm=600) for k in TENANT_KEYS["acme"][1:] + TENANT_KEYS["globex"]]
    with FakeProvider(fakes) as fake:
        keyrouter.patch()  # no global keys: only the tenants' scoped pools route
        stop_listening = keyrouter.on_event(count_failovers)
        server = make_server(
            "127.0.0.1",
            0,
            make_app(openai.OpenAI(base_url=fake.base_url)),
            server_class=_ThreadingServer,
            handler_class=_QuietHandler,
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
        try:
            work = [t for t in TENANT_KEYS for _ in range(REQUESTS_PER_TENANT)]
            with ThreadPoolExecutor(max_workers=8) as pool:
                replies = list(pool.map(lambda t: call(base, t, "/chat", {"prompt": "hi"}), work))
            assert all(r["reply"] for r in replies)
            for tenant, keys in TENANT_KEYS.items():
                served = sum(fake.stats(k).count(200) for k in keys)
                print(
                    f"{tenant}: {served}/{REQUESTS_PER_TENANT} requests served on its own keys; "
                    f"failovers absorbed: {failovers[tenant]}"
                )
            print(
                "acme /status:",
                json.dumps(call(base, "acme", "/status")["keys"], ensure_ascii=False),
            )
        finally:
            server.shutdown()
            server.server_close()
            stop_listening()
            keyrouter.unpatch()


if __name__ == "__main__":
    main()

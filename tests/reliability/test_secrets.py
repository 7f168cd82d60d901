"""No secret ever shows: logs at every level, reprs, exceptions, traceback locals, the demo,
stores, `keyrouter status`.

A busy run puts every kind of answer through all three SDKs (good keys, a revoked one, a
spent one, a rate-limited one, 5xx and dropped connections, then a pool with no usable key so
the SDK raises), and everything keyrouter produced on the way is scanned for every secret of
the test pools: whole, and its middle (anything beyond a fingerprint's prefix and last four).
"""

from __future__ import annotations

import logging
import sqlite3
import traceback
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import openai
import pytest

import keyrouter
from keyrouter.core.registry import default_book
from keyrouter.testing import FakeKey, FakeProvider, Fault
from tests.reliability._sdks import ANTHROPIC, GEMINI, OPENAI, SDKS, Sdk, outcome

EXTRA = {
    "openai": [
        "sk-proj-rel-secret-revoked-000000000001",
        "sk-proj-rel-secret-spent-0000000000002",
        "sk-proj-rel-secret-limited-00000000003",
    ],
    "anthropic": [
        "sk-ant-api03-rel-secret-revoked-00001",
        "sk-ant-api03-rel-secret-spent-0000002",
        "sk-ant-api03-rel-secret-limited-00003",
    ],
    "gemini": [
        "AIzaSyRelSecretRevoked000000000000001",
        "AIzaSyRelSecretSpent00000000000000002",
        "AIzaSyRelSecretLimited000000000000003",
    ],
}
EVERY_SECRET = [s for sdk in SDKS for s in (*sdk.keys, *EXTRA[sdk.name])]


def leaks(text: str, secrets: Iterable[str] = EVERY_SECRET) -> list[str]:
    """The secrets `text` shows, whole or beyond what a fingerprint shows."""
    return [s for s in secrets if s in text or s[8:-4] in text]


def fake_keys(sdk: Sdk) -> list[FakeKey]:
    revoked, spent, limited = EXTRA[sdk.name]
    return [
        *(FakeKey(k, rpm=10_000, tpm=10**8) for k in sdk.keys),
        FakeKey(revoked, status="invalid"),
        FakeKey(spent, status="insufficient_quota"),
        FakeKey(limited, rpm=1),
    ]


def keyrouter_locals(tb: TracebackType | None) -> Iterator[tuple[str, str, Any]]:
    """(function, name, value) of every local in the traceback's keyrouter frames."""
    while tb is not None:
        code = tb.tb_frame.f_code
        if "/keyrouter/" in code.co_filename.replace("\\", "/"):
            for name, value in tb.tb_frame.f_locals.items():
                yield code.co_name, name, value
        tb = tb.tb_next


class Seen:
    """Everything a run produced that a person or a tool might read."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, value: object) -> None:
        self.texts.append((where, f"{value!r} {value}"))

    def error(self, where: str, error: BaseException) -> None:
        self.add(where, error)
        self.texts.append((where, "".join(traceback.format_exception(error))))
        for function, name, value in keyrouter_locals(error.__traceback__):
            self.add(f"{where}: local {name} of {function}", value)

    def leaks(self) -> list[tuple[str, list[str]]]:
        return [(where, found) for where, text in self.texts if (found := leaks(text))]


def busy_run(sdk: Sdk, fake: FakeProvider, seen: Seen) -> None:
    good, other = sdk.keys
    revoked, spent, limited = EXTRA[sdk.name]
    fake.inject(Fault.status(503), key=other, times=3)
    fake.inject(Fault.reset(), key=other, times=1)
    client = sdk.routed(fake, [revoked, spent, limited, other, good], 5.0)
    for stream in (False, True, False, False, True, False):
        assert outcome(lambda s=stream: sdk.call(client, s)) is None  # type: ignore[misc]
    seen.add(f"{sdk.name} snapshot", client.key_pool.snapshot())
    seen.add(f"{sdk.name} pool", client.key_pool)
    dead = sdk.routed(fake, [revoked, spent], 5.0)
    for stream in (False, True):
        try:
            sdk.call(dead, stream)
        except Exception as error:
            seen.error(f"{sdk.name} error with no usable key", error)
        else:
            pytest.fail("a pool with no usable key served")
    fake.inject(Fault.reset())
    default_book().reset()  # else the run's open circuit is waited for (up to the timeout)
    try:
        sdk.call(sdk.routed(fake, [good, other], 5.0), False)
    except Exception as error:
        seen.error(f"{sdk.name} connection error on every key", error)
    fake.clear_faults()


def test_a_busy_run_leaks_no_secret_anywhere(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level: the SDKs' and httpx's too
    seen = Seen()
    events: list[object] = []
    remove = keyrouter.on_event(events.append)
    try:
        for sdk in SDKS:
            with FakeProvider(fake_keys(sdk)) as fake:
                busy_run(sdk, fake, seen)
    finally:
        remove()
    assert events
    for event in events:
        seen.add("event", event)
    formatter = logging.Formatter()
    for record in caplog.records:
        seen.texts.append((f"log {record.name}", formatter.format(record)))
        for name, value in record.__dict__.items():
            seen.add(f"log {record.name} field {name}", value)
    assert len(caplog.records) > 50
    assert any(": local request of " in where for where, _ in seen.texts)  # frames were read
    assert seen.leaks() == []


def test_patched_clients_and_their_routes_show_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from keyrouter.entry._sdks import bindings_for, client_transports
    from keyrouter.transports import installed_route

    ambient = "sk-proj-rel-ambient-000000000000000001"
    monkeypatch.setenv("OPENAI_API_KEY", ambient)
    keyrouter.patch()
    ambient_client = openai.OpenAI()
    keyrouter.patch(openai=list(OPENAI.keys))
    explicit = openai.OpenAI(api_key=OPENAI.keys[0])
    (binding,) = [b for b in bindings_for("openai") if b.is_async is False]
    texts = []
    for client in (ambient_client, explicit):
        for transport, _ in client_transports(client, binding):
            route = installed_route(transport)
            assert route is not None
            texts += [repr(route), str(route), repr(transport.handle_request)]
    texts.append(repr(keyrouter.snapshot()))
    assert leaks(" ".join(texts), [*OPENAI.keys, ambient]) == []


def test_the_demo_prints_no_secret(capsys: pytest.CaptureFixture[str]) -> None:
    from keyrouter import cli
    from keyrouter.cli.demo import DEMO_KEYS

    assert cli.main(["demo", "--calls", "60"]) == 0
    out = capsys.readouterr()
    assert "sk-…0004" in out.out  # the revoked key, by fingerprint
    assert leaks(out.out + out.err, [k.secret for k in DEMO_KEYS]) == []


def test_a_sqlite_store_and_status_on_it_show_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from keyrouter import cli

    path = tmp_path / "state.db"
    keys = fake_keys(OPENAI)
    with FakeProvider(keys) as fake:
        keyrouter.patch(openai=[k.secret for k in keys], store=f"sqlite:///{path}")
        client = openai.OpenAI(base_url=fake.base_url, max_retries=0)
        for _ in range(6):
            OPENAI.call(client, False)
        assert fake.stats(EXTRA["openai"][0]).count(401) == 1
    keyrouter.unpatch()
    default_book().reset()
    dump = "\n".join(sqlite3.connect(path).iterdump())
    assert "key" in dump.lower()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert leaks(dump + raw.decode("latin-1"), [k.secret for k in keys]) == []
    monkeypatch.setenv("OPENAI_API_KEYS", ",".join(k.secret for k in keys))
    capsys.readouterr()
    for json_flag in ([], ["--json"]):
        assert cli.main(["status", "--store", f"sqlite:///{path}", *json_flag]) == 0
    out = capsys.readouterr()
    assert "invalid" in out.out
    assert leaks(out.out + out.err, [k.secret for k in keys]) == []


def test_a_redis_store_holds_no_secret() -> None:
    import uuid

    from tests.stores.conftest import REDIS_URL, need_redis

    need_redis()
    import redis

    prefix = f"keyrouter-test-{uuid.uuid4().hex[:12]}:"
    keys = fake_keys(ANTHROPIC)
    server = redis.Redis.from_url(REDIS_URL)
    try:
        with FakeProvider(keys) as fake:
            keyrouter.patch(
                anthropic=[k.secret for k in keys], store=f"{REDIS_URL}?prefix={prefix}"
            )
            client = ANTHROPIC.plain(fake, keys[0].secret, 5.0)
            for _ in range(6):
                ANTHROPIC.call(client, False)
            assert fake.stats(EXTRA["anthropic"][0]).count(401) == 1
        names = list(server.scan_iter(match=f"{prefix}*", count=1000))
        assert names
        dump = repr([(n, server.dump(n)) for n in names])
        assert leaks(dump, [k.secret for k in keys]) == []
    finally:
        keyrouter.unpatch()
        default_book().reset()
        names = list(server.scan_iter(match=f"{prefix}*", count=1000))
        if names:
            server.delete(*names)
        server.close()


def test_gemini_keys_in_the_query_form_never_reach_a_log(caplog: pytest.LogCaptureFixture) -> None:
    import httpx2

    caplog.set_level(logging.DEBUG)
    revoked = EXTRA["gemini"][0]
    with FakeProvider(fake_keys(GEMINI)) as fake:
        client = GEMINI.routed(fake, [revoked, GEMINI.keys[0]], 5.0)
        http = client._api_client._httpx_client
        assert isinstance(http, httpx2.Client)
        url = f"{fake.gemini_base_url}/v1beta/models/gemini-2.5-flash:generateContent"
        response = http.post(
            f"{url}?key=keyrouter-pool-placeholder",
            json={"contents": [{"parts": [{"text": "hi"}]}]},
            headers={"x-goog-api-key": "keyrouter-pool-placeholder"},
        )
        assert response.status_code == 200
        assert fake.stats(GEMINI.keys[0]).count(200) == 1
    assert leaks(caplog.text + str(response.request.url), [revoked, *GEMINI.keys]) == []

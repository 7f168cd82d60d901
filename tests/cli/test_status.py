"""`keyrouter status`: the configured keys' state as a table or JSON, fingerprints only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyrouter import cli
from keyrouter.core.keys import fingerprint
from tests.stores.conftest import REDIS_URL, redis_prefix  # noqa: F401 - the fixture

A = "sk-status-a-000000000000000000000001"
B = "sk-status-b-000000000000000000000002"


def test_status_lists_every_configured_key_as_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEYS", f"{A},{B}")
    monkeypatch.delenv("KEYROUTER_STORE", raising=False)
    assert cli.main(["status", "--json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    keys = data["providers"]["openai"]
    assert [k["key"] for k in keys] == [fingerprint(A), fingerprint(B)]
    assert {k["state"] for k in keys} == {"available"}
    assert A not in out
    assert B not in out


def test_status_table_says_where_its_state_comes_from(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEYS", A)
    monkeypatch.delenv("KEYROUTER_STORE", raising=False)
    assert cli.main(["status"]) == 0
    captured = capsys.readouterr()
    assert fingerprint(A) in captured.out
    assert "no store given" in captured.err


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    prefix = request.getfixturevalue("redis_prefix")  # a unique prefix, its keys deleted after
    return f"{REDIS_URL}?prefix={prefix}"


def test_status_reads_what_the_app_taught_the_shared_store(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], store_url: str
) -> None:
    import openai

    import keyrouter
    from tests.transports.mock_openai import INVALID, MockOpenAI, chat, ok

    url = store_url
    keyrouter.patch(openai=[A, B], store=url, objective="round_robin", usage=True)
    chat(openai.OpenAI(http_client=MockOpenAI({A: INVALID, B: ok()}).client(), max_retries=0))
    keyrouter.unpatch()  # the app stops; what it learned stays in the store
    monkeypatch.setenv("OPENAI_API_KEYS", f"{A},{B}")
    assert cli.main(["status", "--store", url, "--json"]) == 0
    states = {
        k["key"]: k["state"] for k in json.loads(capsys.readouterr().out)["providers"]["openai"]
    }
    assert states == {fingerprint(A): "invalid", fingerprint(B): "available"}

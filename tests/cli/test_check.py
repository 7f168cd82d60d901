"""`keyrouter check` against the fake provider: each key's verdict, secrets never printed."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyrouter import cli
from keyrouter.core.keys import fingerprint
from keyrouter.testing import FakeKey, FakeProvider

OK = "sk-check-ok-00000000000000000000001"
REVOKED = "sk-check-revoked-000000000000000002"
BROKE = "sk-check-broke-00000000000000000003"
BANNED = "sk-check-banned-0000000000000000004"
CLAUDE = "sk-ant-check-ok-000000000000000000005"
GEMINI = "AIzaCheckOk0000000000000000000000006"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    keys = [
        FakeKey(OK),
        FakeKey(REVOKED, status="invalid"),
        FakeKey(BROKE, status="insufficient_quota"),
        FakeKey(BANNED, status="forbidden"),
        FakeKey(CLAUDE),
        FakeKey(GEMINI),
    ]
    with FakeProvider(keys) as provider:
        yield provider


def run_check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["check", *args])
    return code, capsys.readouterr().out


def test_each_key_gets_its_verdict_by_fingerprint(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEYS", ",".join([OK, REVOKED, BROKE, BANNED]))
    monkeypatch.setenv("ANTHROPIC_API_KEYS", CLAUDE)
    monkeypatch.setenv("GEMINI_API_KEYS", GEMINI)
    code, out = run_check(capsys, "--base-url", fake.url, "--json")
    verdicts = {(r["provider"], r["fingerprint"]): r["result"] for r in json.loads(out)}
    assert verdicts == {
        ("openai", fingerprint(OK)): "ok",
        ("openai", fingerprint(REVOKED)): "invalid",
        ("openai", fingerprint(BROKE)): "exhausted",
        ("openai", fingerprint(BANNED)): "forbidden",
        ("anthropic", fingerprint(CLAUDE)): "ok",
        ("gemini", fingerprint(GEMINI)): "ok",
    }
    assert code == 1, "a bad key makes the exit status non-zero"
    for secret in (OK, REVOKED, BROKE, BANNED, CLAUDE, GEMINI):
        assert secret not in out


def test_all_good_keys_exit_zero_with_a_table(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEYS", OK)
    monkeypatch.setenv("GEMINI_API_KEYS", GEMINI)
    code, out = run_check(capsys, "--base-url", fake.url + "/v1", "--provider", "openai")
    assert code == 0
    assert fingerprint(OK) in out
    assert " ok " in out + " "
    assert fingerprint(GEMINI) not in out, "--provider limits the check"


def test_an_unreachable_server_is_reported_not_raised(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("OPENAI_API_KEYS", OK)
    code, out = run_check(
        capsys, "--base-url", f"http://127.0.0.1:{port}", "--json", "--timeout", "2"
    )
    assert code == 1
    assert json.loads(out)[0]["result"] == "unreachable"


def test_no_keys_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    monkeypatch.delenv("KEYROUTER_KEYFILE", raising=False)
    monkeypatch.delenv("KEYROUTER_CONFIG", raising=False)
    assert cli.main(["check"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("keyrouter check: no keys configured: add pools to keyrouter.toml")
    assert err.count("\n") == 1


def test_keys_of_the_config_file_are_checked(
    fake: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    (tmp_path / "keyrouter.toml").write_text(
        '[pools.openai]\nkeys = [{ env = "CHECK_TEAM_KEY" }, { env = "CHECK_OLD_KEY" }]\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHECK_TEAM_KEY", OK)
    monkeypatch.setenv("CHECK_OLD_KEY", REVOKED)
    code, out = run_check(capsys, "--base-url", fake.url, "--json")
    assert {r["fingerprint"]: r["result"] for r in json.loads(out)} == {
        fingerprint(OK): "ok",
        fingerprint(REVOKED): "invalid",
    }
    assert code == 1


def test_the_models_list_url_per_provider() -> None:
    from keyrouter import Key, azure_key
    from keyrouter.cli.check import _models_url

    key = Key(OK)
    assert _models_url("openai", key, None) == "https://api.openai.com/v1/models"
    assert _models_url("anthropic", key, None) == "https://api.anthropic.com/v1/models"
    assert _models_url("gemini", key, None) == (
        "https://generativelanguage.googleapis.com/v1beta/models"
    )
    compatible = Key(OK, base_url="https://llm.example.com/v1")
    assert _models_url("openai", compatible, None) == "https://llm.example.com/v1/models"
    azure = azure_key(OK, "https://eu.openai.azure.com")
    assert _models_url("azure", azure, None) == (
        "https://eu.openai.azure.com/openai/models?api-version=2024-10-21"
    )
    assert _models_url("azure", key, None) is None, "an Azure key needs its endpoint"

"""`keyrouter report`: usage and cost the app recorded in its shared store, grouped and
formatted; a missing store or a bad period is one clear line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import openai
import pytest

import keyrouter
from keyrouter import cli
from keyrouter.cli.report import parse_since
from keyrouter.core.keys import fingerprint
from keyrouter.errors import ConfigError
from tests.transports.mock_openai import MockOpenAI, chat, ok

A = "sk-report-a-000000000000000000000001"
B = "sk-report-b-000000000000000000000002"


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A SQLite store after an app made 3 calls on each of two keys (usage 3 in, 1 out each)."""
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    keyrouter.patch(openai=[A, B], store=url, objective="round_robin", usage=True)
    client = openai.OpenAI(http_client=MockOpenAI({A: ok(), B: ok()}).client(), max_retries=0)
    for _ in range(6):
        chat(client)
    keyrouter.unpatch()
    return url


def report(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert cli.main(["report", *args]) == 0
    return capsys.readouterr().out


def test_report_by_key_as_json(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(report(capsys, "--store", store, "--format", "json", "--since", "1h"))
    groups = {g["key"]: g for g in data["groups"]}
    assert set(groups) == {fingerprint(A), fingerprint(B)}
    assert {(g["calls"], g["input_tokens"], g["output_tokens"]) for g in groups.values()} == {
        (3, 9, 3)
    }
    assert all(g["cost_usd"] is not None and g["cost_usd"] > 0 for g in groups.values())


def test_report_by_model_as_csv_and_table(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    rows = list(
        csv.DictReader(
            io.StringIO(report(capsys, "--store", store, "--by", "model", "--format", "csv"))
        )
    )
    assert [(r["model"], r["calls"]) for r in rows] == [("gpt-4o-mini", "6")]
    table = report(capsys, "--store", store, "--by", "scope")
    assert fingerprint(A) in table, "a key's own scope is shown by its fingerprint"
    assert "6 calls" in table
    assert A not in table


def test_a_period_with_nothing_says_so(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = report(capsys, "--store", store, "--since", "2000-01-01", "--until", "2000-01-02")
    assert out.startswith("no usage recorded")


def test_without_a_store_report_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KEYROUTER_STORE", raising=False)
    assert cli.main(["report"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("keyrouter report: usage is kept by the store your app shares")
    assert err.count("\n") == 1


def test_periods() -> None:
    assert parse_since("7d", 1_000_000.0, field="--since") == 1_000_000.0 - 7 * 86400
    assert parse_since("90m", 10_000.0, field="--since") == 10_000.0 - 5400
    assert parse_since("2026-11-01", 0.0, field="--since") == 1_793_491_200.0
    with pytest.raises(ConfigError, match="--since: 'last week' is neither a duration"):
        parse_since("last week", 0.0, field="--since")


def test_an_unreachable_store_is_an_error_not_an_empty_report(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    monkeypatch.setenv("OPENAI_API_KEYS", A)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for command in (["report"], ["status"]):
        assert cli.main([*command, "--store", f"redis://127.0.0.1:{port}/0"]) == 1
        err = capsys.readouterr().err
        assert f"cannot reach redis://127.0.0.1:{port}/0" in err
        assert err.count("\n") == 1

"""The `keyrouter` command: every subcommand registers from one list; errors are one line."""

from __future__ import annotations

import argparse

import pytest

from keyrouter import cli


def test_every_listed_subcommand_registers() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(cli.COMMANDS) <= set(sub.choices)


def test_a_failing_subcommand_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(args: argparse.Namespace) -> int:
        raise RuntimeError("no pool configured")

    import keyrouter.cli.demo as demo

    monkeypatch.setattr(demo, "run_demo", lambda **kw: boom(argparse.Namespace()))
    assert cli.main(["demo", "--calls", "1"]) == 1
    err = capsys.readouterr().err
    assert err == "keyrouter demo: no pool configured\n"


def test_the_demo_redraws_its_live_table_in_place(capsys: pytest.CaptureFixture[str]) -> None:
    from types import SimpleNamespace

    from keyrouter.cli.demo import _burst

    def create(**kwargs: object) -> None:
        import time

        time.sleep(0.3)

    client = SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=create)))
    frames = iter(range(1000))
    errors, _ = _burst(client, 4, 2, live=lambda: f"table {next(frames)}\nrow")
    assert errors == []
    out = capsys.readouterr().out
    assert "\x1b[4F\x1b[J" in out, "each frame goes back over the previous one (4 lines)"
    last = out.split("\x1b[J")[-1]
    assert last.startswith("table ")
    assert "4/4 done, 0 errors" in last

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

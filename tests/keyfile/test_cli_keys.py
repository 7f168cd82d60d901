"""`keyrouter keys ...` through `keyrouter.cli.main([...])`: no subprocess, no secret printed."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from keyrouter import keyfile
from keyrouter.cli import main
from tests.keyfile.conftest import SECRETS, snapshot_dir


class Terminal(io.StringIO):
    """A stdin that says it is a terminal, so the CLI prompts."""

    def isatty(self) -> bool:
        return True


class Run:
    """Runs CLI commands and keeps everything they printed, for the no-secret scan."""

    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
        self.capsys = capsys
        self.monkeypatch = monkeypatch
        self.printed: list[str] = []

    def __call__(self, *argv: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            self.monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(["keys", *argv])
        out, err = self.capsys.readouterr()
        self.printed += [out, err]
        return code, out, err


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    return Run(capsys, monkeypatch)


@pytest.fixture
def ready(run: Run, tmp_path: Path) -> Path:
    """`keys init` done (default master key under XDG_CONFIG_HOME) and three keys added."""
    assert run("init")[0] == 0
    run("add", "openai-1", "--provider", "openai", stdin=SECRETS["openai-1"] + "\n")
    run("add", "openai-2", "--provider", "openai", "--scope", "org-a", stdin=SECRETS["openai-2"])
    run("add", "claude", "--provider", "anthropic", stdin=SECRETS["claude"])
    return tmp_path / "keyrouter.keys"


def test_init_writes_a_master_key_and_an_empty_file(run: Run, tmp_path: Path) -> None:
    code, out, _ = run("init")
    master = tmp_path / "config" / "keyrouter" / "master.key"
    assert code == 0
    assert f"wrote a new master key to {master}" in out
    assert stat.S_IMODE(master.stat().st_mode) == 0o600
    assert keyfile.load(master_key=master) == []
    assert run("init")[0] == 1, "a second init refuses to overwrite"


def test_add_list_remove(run: Run, ready: Path) -> None:
    code, out, _ = run("list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["name", "provider", "fingerprint", "scope", "weight", "added"]
    assert lines[2].split()[:5] == ["openai-1", "openai", "sk-…0001", "-", "1"]
    assert lines[3].split()[:4] == ["openai-2", "openai", "sk-…0002", "org-a"]
    assert "3 keys in keyrouter.keys" in out
    code, out, _ = run("list", "--provider", "anthropic")
    assert "claude" in out
    assert "openai-1" not in out
    code, out, _ = run("remove", "openai-1")
    assert (code, out.strip()) == (0, "removed openai-1 (openai, sk-…0001) from keyrouter.keys")
    assert [e.name for e in keyfile.load()] == ["openai-2", "claude"]


def test_add_prompts_without_echo_on_a_terminal(
    run: Run, ready: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts: list[str] = []
    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setattr(
        "getpass.getpass", lambda p: prompts.append(p) or "sk-typed-000000000000042"
    )
    code, _, _ = run("add", "typed", "--provider", "openai")
    assert code == 0
    assert prompts == ["secret for typed: "]
    assert keyfile.lookup("typed").key.secret == "sk-typed-000000000000042"


def test_secret_on_the_command_line_works_with_a_warning(run: Run, ready: Path) -> None:
    code, _, err = run("add", "argv", "--provider", "gemini", "--secret", "AIza-argv-0000000000007")
    assert code == 0
    assert "shell history" in err
    assert keyfile.lookup("argv").provider == "gemini"


def test_empty_secret_changes_nothing(run: Run, ready: Path) -> None:
    before = ready.read_bytes()
    code, _, err = run("add", "empty", "--provider", "openai", stdin="\n")
    assert code == 1
    assert "no secret given" in err
    assert ready.read_bytes() == before


def test_rotate_one_secret(run: Run, ready: Path) -> None:
    new = "sk-proj-rotated-secret-00000000000099"
    code, out, _ = run("rotate", "openai-2", stdin=new)
    assert code == 0
    assert "sk-…0002 -> sk-…0099" in out
    assert keyfile.lookup("openai-2").key.secret == new
    assert keyfile.lookup("openai-2").key.scope == "org-a"


def test_rotate_the_master_key(run: Run, ready: Path, tmp_path: Path) -> None:
    new_master = tmp_path / "new.key"
    code, out, _ = run("rotate", "--new-master-key-file", str(new_master))
    assert code == 0
    assert "re-encrypted 3 keys" in out
    assert "(new, mode 0600)" in out
    assert stat.S_IMODE(new_master.stat().st_mode) == 0o600
    assert len(keyfile.load(master_key=new_master)) == 3
    code, _, err = run("list")  # the old (default) master key no longer opens it
    assert code == 1
    assert "master key does not open this key file" in err
    assert run("list", "--master-key-file", str(new_master))[0] == 0


def test_rotate_needs_one_thing_to_rotate(run: Run, ready: Path) -> None:
    code, _, err = run("rotate")
    assert code == 1
    assert "say what to rotate" in err


def test_wrong_master_key_fails_every_command_and_touches_nothing(
    run: Run, ready: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(keyfile.ENV_MASTER_KEY, Fernet.generate_key().decode())
    prompted: list[str] = []
    monkeypatch.setattr("getpass.getpass", lambda p: prompted.append(p) or "sk-x-00000000000000001")
    before = snapshot_dir(tmp_path)
    commands: list[tuple[str, ...]] = [
        ("list",),
        ("remove", "claude"),
        ("rotate", "claude"),
        ("rotate", "--new-master-key-file", str(tmp_path / "never.key")),
    ]
    for argv in commands:
        code, out, err = run(*argv, stdin="sk-ant-never-written-000000000001")
        assert code == 1, argv
        assert "master key does not open this key file" in err, argv
        assert out == ""
    monkeypatch.setattr("sys.stdin", Terminal())
    code, _, err = run("add", "new", "--provider", "openai")
    assert code == 1
    assert prompted == [], "the master key is checked before the secret is asked for"
    assert snapshot_dir(tmp_path) == before


def test_master_key_file_open_to_others_is_refused(run: Run, ready: Path, tmp_path: Path) -> None:
    master = tmp_path / "config" / "keyrouter" / "master.key"
    master.chmod(0o644)
    code, _, err = run("list")
    assert code == 1
    assert "open to group/others (mode 0644)" in err
    assert f"chmod 600 {master}" in err


def test_no_secret_or_master_key_in_any_output(
    run: Run, ready: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command above, successful or not, and a scan of everything they printed."""
    new_secret = "sk-proj-rotated-scan-000000000000077"
    run("list")
    run("list", "--provider", "openai")
    run("rotate", "openai-1", stdin=new_secret)
    run("add", "dup", "--provider", "openai", stdin=SECRETS["claude"])  # duplicate: refused
    run("add", "bad", "--provider", "openai", stdin="sk-has a space-000000000")
    run("remove", "nope")
    run("rotate", "--new-master-key-file", str(tmp_path / "m2.key"))
    run("list", "--master-key-file", str(tmp_path / "m2.key"))
    monkeypatch.setenv(keyfile.ENV_MASTER_KEY, "not-a-valid-master-key-at-all")
    run("list")
    masters = [
        (tmp_path / "config" / "keyrouter" / "master.key").read_text().strip(),
        (tmp_path / "m2.key").read_text().strip(),
        "not-a-valid-master-key-at-all",
    ]
    printed = "\n".join(run.printed)
    assert "sk-…0077" in printed, "the scan sees the commands' output"
    for secret in [*SECRETS.values(), new_secret, "sk-has a space-000000000", *masters]:
        assert secret not in printed
        assert secret[:-4] not in printed

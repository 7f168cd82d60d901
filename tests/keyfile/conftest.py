"""A key file and a master key in a temporary directory, none taken from the real environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyrouter import keyfile

SECRETS = {
    "openai-1": "sk-proj-keyfile-test-secret-0000000001",
    "openai-2": "sk-proj-keyfile-test-secret-0000000002",
    "claude": "sk-ant-keyfile-test-secret-000000000003",
}


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read a master key or key file from the developer's machine."""
    for name in (keyfile.ENV_KEYFILE, keyfile.ENV_MASTER_KEY, keyfile.ENV_MASTER_KEY_FILE):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def master(tmp_path: Path) -> Path:
    return keyfile.write_master_key_file(tmp_path / "master.key")


@pytest.fixture
def filled(tmp_path: Path, master: Path) -> Path:
    """A key file holding SECRETS (two openai keys, one anthropic)."""
    path = tmp_path / "keyrouter.keys"
    keyfile.add("openai-1", SECRETS["openai-1"], provider="openai", path=path, master_key=master)
    keyfile.add(
        "openai-2",
        SECRETS["openai-2"],
        provider="openai",
        scope="org-a",
        weight=2.0,
        path=path,
        master_key=master,
    )
    keyfile.add("claude", SECRETS["claude"], provider="anthropic", path=path, master_key=master)
    return path


def snapshot_dir(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` with its bytes: to prove a failed command wrote nothing."""
    return {str(p): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}

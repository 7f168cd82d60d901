"""The encrypted key file: round trip, wrong master key, permissions, tampering, rotation."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

import keyrouter
from keyrouter import keyfile
from keyrouter.errors import KeyFileError
from tests.keyfile.conftest import SECRETS, snapshot_dir


def test_round_trip_keeps_every_field(filled: Path, master: Path) -> None:
    entries = keyfile.load(filled, master_key=master)
    assert [(e.name, e.provider) for e in entries] == [
        ("openai-1", "openai"),
        ("openai-2", "openai"),
        ("claude", "anthropic"),
    ]
    assert [e.key.secret for e in entries] == list(SECRETS.values())
    second = entries[1].key
    assert (second.name, second.scope, second.weight) == ("openai-2", "org-a", 2.0)


def test_the_file_holds_no_secret_in_clear(filled: Path) -> None:
    text = filled.read_text()
    for secret in SECRETS.values():
        assert secret not in text
        assert secret[-8:] not in text
    assert "openai-1" not in text, "names and providers are encrypted too"


def test_files_are_written_owner_only(filled: Path, master: Path) -> None:
    assert stat.S_IMODE(filled.stat().st_mode) == 0o600
    assert stat.S_IMODE(master.stat().st_mode) == 0o600
    assert not [p for p in filled.parent.iterdir() if p.name.endswith(".tmp")]


def test_keys_from_file_feeds_patch(filled: Path, master: Path) -> None:
    keys = keyrouter.keys_from_file("openai", path=filled, master_key=master)
    assert [k.secret for k in keys] == [SECRETS["openai-1"], SECRETS["openai-2"]]
    assert [k.label for k in keys] == ["openai-1", "openai-2"]
    assert len(keyrouter.keys_from_file(path=filled, master_key=master)) == 3


def test_environment_supplies_file_and_master_key(
    filled: Path, master: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(keyfile.ENV_KEYFILE, str(filled))
    monkeypatch.setenv(keyfile.ENV_MASTER_KEY, master.read_text().strip())
    assert keyfile.lookup("claude").key.secret == SECRETS["claude"]
    monkeypatch.delenv(keyfile.ENV_MASTER_KEY)
    monkeypatch.setenv(keyfile.ENV_MASTER_KEY_FILE, str(master))
    assert keyfile.lookup("claude").provider == "anthropic"


def test_default_master_key_file_under_xdg_config(tmp_path: Path) -> None:
    created = keyfile.write_master_key_file()
    assert created == tmp_path / "config" / "keyrouter" / "master.key"
    keyfile.add("k", SECRETS["claude"], provider="anthropic")
    assert keyfile.lookup("k").key.secret == SECRETS["claude"]
    assert (tmp_path / "keyrouter.keys").exists()


def test_no_key_for_a_provider_is_an_error_not_an_empty_pool(filled: Path, master: Path) -> None:
    with pytest.raises(KeyFileError, match=r"holds no gemini keys \(it has keys for: anthropic"):
        keyfile.keys_from_file("gemini", path=filled, master_key=master)


def test_lookup_of_an_unknown_name_lists_the_names(filled: Path, master: Path) -> None:
    with pytest.raises(KeyFileError, match=r"no key named 'nope'.*openai-1, openai-2, claude"):
        keyfile.lookup("nope", path=filled, master_key=master)


def test_wrong_master_key_is_clear_and_touches_nothing(filled: Path, tmp_path: Path) -> None:
    wrong = Fernet.generate_key()
    before = snapshot_dir(tmp_path)
    attempts = [
        lambda: keyfile.load(filled, master_key=wrong),
        lambda: keyfile.add("x", "sk-another-secret-000000000009", provider="openai",
                            path=filled, master_key=wrong),
        lambda: keyfile.remove("claude", path=filled, master_key=wrong),
        lambda: keyfile.replace_secret("claude", "sk-ant-new-000000000000009",
                                       path=filled, master_key=wrong),
        lambda: keyfile.rotate_master_key(Fernet.generate_key(), path=filled, master_key=wrong),
    ]  # fmt: skip
    for attempt in attempts:
        with pytest.raises(KeyFileError, match="master key does not open this key file"):
            attempt()
    assert snapshot_dir(tmp_path) == before


@pytest.mark.parametrize(
    "bad", ["not-a-key", "", Fernet.generate_key().decode()[:-4], "x" * 44], ids=repr
)
def test_malformed_master_key_is_named_not_echoed(filled: Path, bad: str) -> None:
    with pytest.raises(KeyFileError) as caught:
        keyfile.load(filled, master_key=bad)
    assert "not a valid master key" in str(caught.value)
    assert not bad or bad not in str(caught.value)


def test_master_key_file_open_to_others_is_refused(filled: Path, master: Path) -> None:
    master.chmod(0o640)
    with pytest.raises(KeyFileError, match=r"open to group/others \(mode 0640\).*chmod 600"):
        keyfile.load(filled, master_key=master)
    master.chmod(0o604)
    with pytest.raises(KeyFileError, match="open to group/others"):
        keyfile.load(filled, master_key=master)


def test_missing_master_key_says_how_to_make_one(filled: Path) -> None:
    with pytest.raises(KeyFileError, match="no master key: set KEYROUTER_MASTER_KEY"):
        keyfile.load(filled)


def test_master_key_file_is_never_overwritten(master: Path) -> None:
    before = master.read_bytes()
    with pytest.raises(KeyFileError, match="never overwrites a master key"):
        keyfile.write_master_key_file(master)
    assert master.read_bytes() == before


def test_tampered_file_fails_its_integrity_check(filled: Path, master: Path) -> None:
    envelope = json.loads(filled.read_text())
    token = envelope["token"]
    middle = len(token) // 2
    envelope["token"] = (
        token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
    )
    filled.write_text(json.dumps(envelope))
    with pytest.raises(KeyFileError, match="fails its integrity check"):
        keyfile.load(filled, master_key=master)


@pytest.mark.parametrize("content", ["", "{}", "[1]", "garbage", '{"format": "other"}'])
def test_not_a_key_file(tmp_path: Path, master: Path, content: str) -> None:
    path = tmp_path / "broken.keys"
    path.write_text(content)
    with pytest.raises(KeyFileError, match="is not a keyrouter key file"):
        keyfile.load(path, master_key=master)
    assert path.read_text() == content


def test_missing_file_says_how_to_create_one(tmp_path: Path, master: Path) -> None:
    with pytest.raises(KeyFileError, match="no key file here; create one with `keyrouter keys"):
        keyfile.load(tmp_path / "absent.keys", master_key=master)


def test_add_refuses_duplicates_and_bad_input(filled: Path, master: Path) -> None:
    before = filled.read_bytes()
    with pytest.raises(KeyFileError, match="already has a key named 'claude'"):
        keyfile.add("claude", "sk-ant-other-000000000000000000", provider="anthropic",
                    path=filled, master_key=master)  # fmt: skip
    with pytest.raises(KeyFileError, match=r"already holds key sk-…0001 \(as 'openai-1'\)"):
        keyfile.add("again", SECRETS["openai-1"], provider="openai", path=filled, master_key=master)
    with pytest.raises(KeyFileError, match="name 'has space'"):
        keyfile.add("has space", "sk-x-0000000000000000000", provider="openai",
                    path=filled, master_key=master)  # fmt: skip
    with pytest.raises(KeyFileError, match="contains whitespace") as caught:
        keyfile.add("ws", "sk-bad secret-00000000000", provider="openai",
                    path=filled, master_key=master)  # fmt: skip
    assert "sk-bad secret" not in str(caught.value)
    assert filled.read_bytes() == before


def test_remove(filled: Path, master: Path) -> None:
    removed = keyfile.remove("openai-1", path=filled, master_key=master)
    assert removed.key.secret == SECRETS["openai-1"]
    assert [e.name for e in keyfile.load(filled, master_key=master)] == ["openai-2", "claude"]
    with pytest.raises(KeyFileError, match="no key named 'openai-1'"):
        keyfile.remove("openai-1", path=filled, master_key=master)


def test_replace_secret_keeps_the_settings(filled: Path, master: Path) -> None:
    new_secret = "sk-proj-keyfile-rotated-0000000000000042"
    keyfile.replace_secret("openai-2", new_secret, path=filled, master_key=master)
    entry = keyfile.lookup("openai-2", path=filled, master_key=master)
    assert entry.key.secret == new_secret
    assert (entry.provider, entry.key.scope, entry.key.weight) == ("openai", "org-a", 2.0)
    assert [e.name for e in keyfile.load(filled, master_key=master)][1] == "openai-2"


def test_rotate_master_key(filled: Path, master: Path, tmp_path: Path) -> None:
    new_master = keyfile.write_master_key_file(tmp_path / "new.key")
    before = keyfile.load(filled, master_key=master)
    keyfile.rotate_master_key(new_master, path=filled, master_key=master)
    assert keyfile.load(filled, master_key=new_master) == before
    assert [e.key.secret for e in keyfile.load(filled, master_key=new_master)] == [
        e.key.secret for e in before
    ]
    with pytest.raises(KeyFileError, match="master key does not open"):
        keyfile.load(filled, master_key=master)


def test_rotate_to_a_bad_new_master_key_touches_nothing(filled: Path, master: Path) -> None:
    before = filled.read_bytes()
    with pytest.raises(KeyFileError, match="not a valid master key"):
        keyfile.rotate_master_key("short", path=filled, master_key=master)
    assert filled.read_bytes() == before


def test_failed_write_leaves_the_old_file_and_no_temp(
    filled: Path, master: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = filled.read_bytes()

    def broken_replace(src: str, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        keyfile.remove("claude", path=filled, master_key=master)
    monkeypatch.undo()
    assert filled.read_bytes() == before
    assert sorted(p.name for p in filled.parent.iterdir() if p.suffix == ".tmp") == []


def test_create_refuses_an_existing_file(filled: Path, master: Path) -> None:
    with pytest.raises(KeyFileError, match="already exists"):
        keyfile.create(filled, master_key=master)


def test_import_keyrouter_does_not_import_cryptography() -> None:
    import subprocess
    import sys

    code = "import sys, keyrouter; keyrouter.keys_from_file; print('cryptography' in sys.modules)"
    result = subprocess.run(  # noqa: S603 - our interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_concurrent_writers_lose_nothing(tmp_path: Path, master: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "shared.keys"

    def add_five(worker: int) -> None:
        for i in range(5):
            name = f"w{worker}-k{i}"
            keyfile.add(name, f"sk-concurrent-{worker}-{i:020d}", provider="openai",
                        path=path, master_key=master)  # fmt: skip

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(add_five, range(4)))
    names = {e.name for e in keyfile.load(path, master_key=master)}
    assert names == {f"w{w}-k{i}" for w in range(4) for i in range(5)}

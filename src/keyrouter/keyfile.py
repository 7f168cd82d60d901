"""API keys at rest: one encrypted file, unlocked by a master key that never sits beside it.

    keyrouter.patch(openai=keyrouter.keys_from_file("openai"))

The file (`keyrouter.keys`, or `KEYROUTER_KEYFILE`) is JSON around a single Fernet token
(AES-128-CBC + HMAC-SHA256, from `cryptography`): the whole key list is encrypted and
authenticated at once, so a wrong master key or a changed byte is detected before anything is
used. The master key comes from `KEYROUTER_MASTER_KEY`, or a file named by
`KEYROUTER_MASTER_KEY_FILE` (default `~/.config/keyrouter/master.key`) that only its owner
may read. Every write goes to a temporary file that replaces the old one (`os.replace`), mode
0600, only after the old content decrypted: a failed command leaves every file as it was.

`cryptography` is imported only when a file is read or written, so `import keyrouter` stays light.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from keyrouter.core.keys import Key
from keyrouter.errors import KeyFileError, KeyFormatError

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

__all__ = [
    "ENV_KEYFILE",
    "ENV_MASTER_KEY",
    "ENV_MASTER_KEY_FILE",
    "MasterKey",
    "StoredKey",
    "add",
    "create",
    "default_master_key_file",
    "keyfile_path",
    "keys_from_file",
    "load",
    "lookup",
    "remove",
    "replace_secret",
    "rotate_master_key",
    "write_master_key_file",
]

ENV_KEYFILE: Final = "KEYROUTER_KEYFILE"
ENV_MASTER_KEY: Final = "KEYROUTER_MASTER_KEY"
ENV_MASTER_KEY_FILE: Final = "KEYROUTER_MASTER_KEY_FILE"
DEFAULT_KEYFILE: Final = "keyrouter.keys"

MasterKey = str | bytes | Path
"""A master key itself (`str`/`bytes`, as `Fernet.generate_key()` makes) or a `Path` to a file
holding one. None everywhere means: from the environment, else the default master-key file."""

_FORMAT: Final = "keyrouter-keyfile"
_VERSION: Final = 1
_CHECK_LABEL: Final = b"keyrouter keyfile master-key check"
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_FIELDS: Final = ("scope", "weight", "base_url", "deployment")


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One entry of the key file: the key (named), the provider it is for, when it was added."""

    provider: str
    key: Key
    added: float = field(default=0.0, compare=False)

    @property
    def name(self) -> str:
        return self.key.name or self.key.fingerprint


# -- reading ---------------------------------------------------------------------------------


def keyfile_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The key file in use: `path`, else `KEYROUTER_KEYFILE`, else `./keyrouter.keys`."""
    if path is not None:
        return Path(path)
    return Path(os.environ.get(ENV_KEYFILE) or DEFAULT_KEYFILE)


def load(
    path: str | os.PathLike[str] | None = None, *, master_key: MasterKey | None = None
) -> list[StoredKey]:
    """Every entry of the key file, decrypted. Raises `KeyFileError` saying what to fix."""
    return _open(keyfile_path(path), master_key)[1]


def keys_from_file(
    provider: str | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    master_key: MasterKey | None = None,
) -> list[Key]:
    """The keys stored for `provider` (all keys when None), ready for `patch()` or `route()`.

    `keyrouter.patch(openai=keyrouter.keys_from_file("openai"))`. Raises `KeyFileError` when the
    file holds no key for the provider, rather than handing back an empty pool.
    """
    file = keyfile_path(path)
    entries = _open(file, master_key)[1]
    keys = [e.key for e in entries if provider is None or e.provider == provider]
    if not keys:
        held = sorted({e.provider for e in entries})
        what = f"{provider} keys" if provider else "keys"
        has = f"it has keys for: {', '.join(held)}" if held else "it is empty"
        raise KeyFileError(
            f"holds no {what} ({has}); add one with "
            f"`keyrouter keys add NAME --provider {provider or 'PROVIDER'}`",
            path=str(file),
        )
    return keys


def lookup(
    name: str,
    *,
    path: str | os.PathLike[str] | None = None,
    master_key: MasterKey | None = None,
) -> StoredKey:
    """The entry called `name` (what a config file's `{ keyfile = "name" }` refers to)."""
    file = keyfile_path(path)
    return _find(file, _open(file, master_key)[1], name)


# -- writing ---------------------------------------------------------------------------------


def create(
    path: str | os.PathLike[str] | None = None, *, master_key: MasterKey | None = None
) -> Path:
    """Write an empty key file (refuses to overwrite one that exists)."""
    file = keyfile_path(path)
    cipher = _cipher(master_key)
    with _one_writer(file):
        if file.exists():
            raise KeyFileError("already exists; nothing was changed", path=str(file))
        _save(file, cipher, [])
    return file


def add(
    name: str,
    secret: str,
    *,
    provider: str,
    scope: str | None = None,
    weight: float = 1.0,
    base_url: str | None = None,
    deployment: str | None = None,
    path: str | os.PathLike[str] | None = None,
    master_key: MasterKey | None = None,
) -> StoredKey:
    """Store a new key under `name` (the file is created if missing)."""
    file = keyfile_path(path)
    _check_name(name, "name")
    _check_name(provider, "provider")
    key = _make_key(secret, name, scope=scope, weight=weight, base_url=base_url, dep=deployment)
    stored = StoredKey(provider, key, time.time())

    def change(entries: list[StoredKey]) -> list[StoredKey]:
        for entry in entries:
            if entry.name == name:
                raise KeyFileError(
                    f"already has a key named {name!r}; remove it first or use "
                    f"`keyrouter keys rotate {name}` to replace its secret",
                    path=str(file),
                )
            if entry.key == key:
                raise KeyFileError(
                    f"already holds key {key.fingerprint} (as {entry.name!r})", path=str(file)
                )
        return [*entries, stored]

    _rewrite(file, master_key, change, missing_ok=True)
    return stored


def remove(
    name: str,
    *,
    path: str | os.PathLike[str] | None = None,
    master_key: MasterKey | None = None,
) -> StoredKey:
    """Delete the key called `name`; returns what was removed."""
    file = keyfile_path(path)
    removed: list[StoredKey] = []

    def change(entries: list[StoredKey]) -> list[StoredKey]:
        removed.append(_find(file, entries, name))
        return [e for e in entries if e is not removed[0]]

    _rewrite(file, master_key, change)
    return removed[0]


def replace_secret(
    name: str,
    secret: str,
    *,
    path: str | os.PathLike[str] | None = None,
    master_key: MasterKey | None = None,
) -> StoredKey:
    """Give the key called `name` a new secret (a rotated API key), keeping its settings."""
    file = keyfile_path(path)
    replaced: list[StoredKey] = []

    def change(entries: list[StoredKey]) -> list[StoredKey]:
        old = _find(file, entries, name)
        k = old.key
        key = _make_key(
            secret, name, scope=k.scope, weight=k.weight, base_url=k.base_url, dep=k.deployment
        )
        if any(e.key == key for e in entries):
            raise KeyFileError(f"already holds key {key.fingerprint}", path=str(file))
        replaced.append(StoredKey(old.provider, key, time.time()))
        return [replaced[0] if e is old else e for e in entries]

    _rewrite(file, master_key, change)
    return replaced[0]


def rotate_master_key(
    new_master_key: MasterKey,
    *,
    path: str | os.PathLike[str] | None = None,
    master_key: MasterKey | None = None,
) -> None:
    """Re-encrypt the key file under `new_master_key` (the old one must still open it)."""
    _rewrite(keyfile_path(path), master_key, list, new_master_key=new_master_key)


def _rewrite(
    file: Path,
    master_key: MasterKey | None,
    change: Callable[[list[StoredKey]], list[StoredKey]],
    *,
    missing_ok: bool = False,
    new_master_key: MasterKey | None = None,
) -> None:
    """Decrypt, change and write back, holding the writer lock: concurrent commands never
    lose each other's changes, and a failure before the write leaves the file as it was."""
    with _one_writer(file):
        cipher, entries = _open(file, master_key, missing_ok=missing_ok)
        changed = change(entries)
        _save(file, cipher if new_master_key is None else _cipher(new_master_key), changed)


@contextlib.contextmanager
def _one_writer(file: Path) -> Iterator[None]:
    """An exclusive lock on `.<name>.lock` beside the file (POSIX `flock`; elsewhere none)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock = file.with_name(f".{file.name}.lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        message = f"cannot write beside the key file ({exc.strerror})"
        raise KeyFileError(message, path=str(file)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- master keys -----------------------------------------------------------------------------


def default_master_key_file() -> Path:
    """`$KEYROUTER_MASTER_KEY_FILE`, else `$XDG_CONFIG_HOME/keyrouter/master.key`."""
    named = os.environ.get(ENV_MASTER_KEY_FILE)
    if named:
        return Path(named)
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "keyrouter" / "master.key"


def write_master_key_file(path: str | os.PathLike[str] | None = None) -> Path:
    """Generate a new master key into a new file, mode 0600 (never overwrites a file)."""
    from cryptography.fernet import Fernet

    file = Path(path) if path is not None else default_master_key_file()
    file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(
            "already exists; keyrouter never overwrites a master key", path=str(file)
        ) from None
    with os.fdopen(fd, "wb") as out:
        out.write(Fernet.generate_key() + b"\n")
        out.flush()
        os.fsync(out.fileno())
    return file


def _master_key_bytes(master_key: MasterKey | None) -> tuple[bytes, str]:
    """The master key and where it came from (for error messages; never the key itself)."""
    if isinstance(master_key, bytes):
        return master_key.strip(), "the master key given"
    if isinstance(master_key, str):
        return master_key.strip().encode("ascii", "replace"), "the master key given"
    if master_key is None:
        env = os.environ.get(ENV_MASTER_KEY)
        if env:
            return env.strip().encode("ascii", "replace"), ENV_MASTER_KEY
        master_key = default_master_key_file()
        if not master_key.exists():
            raise KeyFileError(
                f"no master key: set {ENV_MASTER_KEY}, or {ENV_MASTER_KEY_FILE} to a file "
                f"holding one, or create {master_key} with `keyrouter keys init`"
            )
    return _read_master_file(master_key), str(master_key)


def _read_master_file(file: Path) -> bytes:
    try:
        info = file.stat()
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError("the master key file is not a regular file", path=str(file))
        if os.name == "posix" and info.st_mode & 0o077:
            mode = stat.S_IMODE(info.st_mode)
            raise KeyFileError(
                f"the master key file is open to group/others (mode {mode:04o}); "
                f"run `chmod 600 {file}` and consider who could have read it",
                path=str(file),
            )
        return file.read_bytes().strip()
    except OSError as exc:
        message = f"cannot read the master key file ({exc.strerror})"
    raise KeyFileError(message, path=str(file))


@dataclass(frozen=True, slots=True)
class _Cipher:
    """A master key ready to use: the Fernet instance and a tag that names the key."""

    fernet: Fernet
    tag: str
    """An HMAC of a fixed label under the master key: it tells "wrong master key" apart from
    "tampered file" without revealing anything of the key."""


def _cipher(master_key: MasterKey | None) -> _Cipher:
    from cryptography.fernet import Fernet

    raw, source = _master_key_bytes(master_key)
    try:
        fernet = Fernet(raw)
    except ValueError:
        raise KeyFileError(
            f"{source} is not a valid master key (expected 44 characters of url-safe base64, "
            "as `keyrouter keys init` writes)"
        ) from None
    digest = hmac.new(base64.urlsafe_b64decode(raw), _CHECK_LABEL, hashlib.sha256)
    return _Cipher(fernet, digest.hexdigest()[:16])


# -- the file itself -------------------------------------------------------------------------


def _open(
    file: Path, master_key: MasterKey | None, *, missing_ok: bool = False
) -> tuple[_Cipher, list[StoredKey]]:
    from cryptography.fernet import InvalidToken

    cipher = _cipher(master_key)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return cipher, []
        raise KeyFileError(
            f"no key file here; create one with `keyrouter keys init` or point "
            f"{ENV_KEYFILE} at yours",
            path=str(file),
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read the key file ({exc})", path=str(file)) from None
    envelope = _envelope(file, text)
    if envelope.get("master") != cipher.tag:
        raise KeyFileError(
            "the master key does not open this key file (wrong "
            f"{ENV_MASTER_KEY} or master key file?); nothing was changed",
            path=str(file),
        )
    try:
        plain = cipher.fernet.decrypt(str(envelope["token"]).encode("ascii", "replace"))
    except InvalidToken:
        raise KeyFileError(
            "the key file fails its integrity check: it was changed or damaged after it was "
            "written; restore it from a backup",
            path=str(file),
        ) from None
    return cipher, _entries(file, plain)


def _envelope(file: Path, text: str) -> dict[str, Any]:
    try:
        envelope = json.loads(text)
    except ValueError:
        envelope = None
    if (
        not isinstance(envelope, dict)
        or envelope.get("format") != _FORMAT
        or not isinstance(envelope.get("token"), str)
    ):
        raise KeyFileError(
            "is not a keyrouter key file (damaged, or another kind of file)", path=str(file)
        )
    if envelope.get("version") != _VERSION:
        raise KeyFileError(
            f"key file version {envelope.get('version')!r} is not one this keyrouter reads "
            f"({_VERSION}); upgrade keyrouter",
            path=str(file),
        )
    return envelope


def _entries(file: Path, plain: bytes) -> list[StoredKey]:
    try:
        payload = json.loads(plain)
        entries = []
        for item in payload["keys"]:
            key = Key(
                item["secret"],
                name=item["name"],
                **{k: item[k] for k in _FIELDS if item.get(k) is not None},
            )
            entries.append(StoredKey(item["provider"], key, float(item.get("added", 0.0))))
    except (ValueError, KeyError, TypeError, KeyFormatError):
        raise KeyFileError(
            "decrypted, but its content is not a key list this keyrouter understands",
            path=str(file),
        ) from None
    return entries


def _save(file: Path, cipher: _Cipher, entries: Iterable[StoredKey]) -> None:
    items = []
    for entry in entries:
        item: dict[str, object] = {
            "name": entry.name,
            "provider": entry.provider,
            "secret": entry.key.secret,
            "added": entry.added,
        }
        item.update({k: v for k in _FIELDS if (v := getattr(entry.key, k)) is not None})
        items.append(item)
    token = cipher.fernet.encrypt(json.dumps({"keys": items}).encode())
    envelope = {
        "format": _FORMAT,
        "version": _VERSION,
        "master": cipher.tag,
        "token": token.decode("ascii"),
    }
    _atomic_write(file, (json.dumps(envelope, indent=1) + "\n").encode())


def _atomic_write(file: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `file`, mode 0600, then rename it over `file`."""
    directory = file.parent if str(file.parent) else Path(".")
    try:
        fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{file.name}.", suffix=".tmp")
    except OSError as exc:
        message = f"cannot write beside the key file ({exc.strerror})"
        raise KeyFileError(message, path=str(file)) from None
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, file)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a crash
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _find(file: Path, entries: list[StoredKey], name: str) -> StoredKey:
    for entry in entries:
        if entry.name == name:
            return entry
    known = ", ".join(e.name for e in entries) or "none"
    raise KeyFileError(f"has no key named {name!r} (names: {known})", path=str(file))


def _check_name(value: str, what: str) -> None:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise KeyFileError(
            f"{what} {value!r} must be 1-64 letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit)"
        )


def _make_key(
    secret: str,
    name: str,
    *,
    scope: str | None,
    weight: float,
    base_url: str | None,
    dep: str | None,
) -> Key:
    try:
        return Key(secret, name=name, scope=scope, weight=weight, base_url=base_url, deployment=dep)
    except KeyFormatError as exc:
        raise KeyFileError(f"key {name!r}: {exc}") from None

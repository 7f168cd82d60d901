"""The config file: pools, keys (from the environment or the key file), policies, store.

    # keyrouter.toml
    [pools.openai]
    keys = [
      { env = "OPENAI_KEY_FREE", tier = 0, allow_models = ["gpt-4o-mini"] },
      { keyfile = "openai-paid", tier = 1, max_in_flight = 8 },
    ]

It is `keyrouter.toml` in the working directory, or `[tool.keyrouter]` in its `pyproject.toml`,
or the file named by `KEYROUTER_CONFIG`. `load_config()` validates it (pydantic, imported only
here) and resolves every key, so what it returns is ready to build pools from. Every error is a
`ConfigFileError` naming the file, then the line (syntax) or the field (content).
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from keyrouter.core.keys import Key, normalize_keys
from keyrouter.core.objectives import resolve
from keyrouter.core.policy import PolicyGate, PoolPolicy
from keyrouter.core.rules import Schedule
from keyrouter.errors import ConfigError, ConfigFileError, KeyrouterError, PlaintextSecretWarning

if TYPE_CHECKING:
    from keyrouter.config._schema import FileModel, KeyModel, PoolModel

__all__ = ["ENV_CONFIG", "Config", "KeySource", "PoolConfig", "find_config", "load_config"]

ENV_CONFIG: Final = "KEYROUTER_CONFIG"
_FILE: Final = "keyrouter.toml"
_PYPROJECT: Final = "pyproject.toml"
_TOML_LINE: Final = re.compile(r"\(at line (\d+), column (\d+)\)")


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where a configured key's secret came from (`env:VAR`, `keyfile:name`, `plaintext`)."""

    key: Key
    source: str


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """One pool of the file, resolved: its provider, keys, objective and policy."""

    name: str
    provider: str
    keys: tuple[KeySource, ...]
    objective: str | Mapping[str, float]
    policy: PoolPolicy

    @property
    def key_list(self) -> tuple[Key, ...]:
        return tuple(k.key for k in self.keys)


@dataclass(frozen=True, slots=True)
class Config:
    """The effective configuration: what `patch()` and `keyrouter config check` use."""

    path: Path
    pools: Mapping[str, PoolConfig]
    objective: str | Mapping[str, float] = "headroom"
    store: str | None = None
    max_wait: float | None = None
    max_attempts: int | None = None

    def provider_pools(self) -> dict[str, PoolConfig]:
        """The pools named after a provider: what `patch()` installs."""
        return {name: pool for name, pool in self.pools.items() if name == pool.provider}


def find_config(cwd: Path | None = None) -> tuple[Path, bool] | None:
    """(the file, whether it is a pyproject.toml) keyrouter would read, or None.

    `KEYROUTER_CONFIG` wins and must name a file that exists; then `keyrouter.toml`, then a
    `pyproject.toml` that has a `[tool.keyrouter]` table.
    """
    named = os.environ.get(ENV_CONFIG, "").strip()
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigFileError(f"{ENV_CONFIG} names a file that does not exist", path=named)
        return path, path.name == _PYPROJECT
    here = cwd or Path.cwd()
    if (here / _FILE).is_file():
        return here / _FILE, False
    pyproject = here / _PYPROJECT
    if pyproject.is_file() and "[tool.keyrouter" in pyproject.read_text("utf-8", "replace"):
        return pyproject, True
    return None


def load_config(path: str | os.PathLike[str] | None = None) -> Config | None:
    """The validated, resolved config (None when there is no file and none was named)."""
    if path is not None:
        file, is_pyproject = Path(path), Path(path).name == _PYPROJECT
    else:
        found = find_config()
        if found is None:
            return None
        file, is_pyproject = found
    data = _read_toml(file)
    if is_pyproject:
        tool = data.get("tool", {})
        table = tool.get("keyrouter") if isinstance(tool, dict) else None
        if not isinstance(table, dict):
            raise ConfigFileError("has no [tool.keyrouter] table", path=str(file))
        data = table
    model = _validate(file, data)
    return _resolve(file, model)


def _read_toml(file: Path) -> dict[str, Any]:
    import tomllib

    try:
        with file.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigFileError(f"cannot be read ({exc.strerror or exc})", path=str(file)) from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = _TOML_LINE.search(message)
        line = int(where.group(1)) if where else None
        reason = _TOML_LINE.sub("", message).strip()
        raise ConfigFileError(f"not valid TOML: {reason}", path=str(file), line=line) from None


def _validate(file: Path, data: dict[str, Any]) -> FileModel:
    from pydantic import ValidationError

    from keyrouter.config._schema import FileModel

    try:
        return FileModel.model_validate(data)
    except ValidationError as exc:
        problems = [f"{_location(e['loc'])}: {_message(e)}" for e in exc.errors()]
        raise ConfigFileError("; ".join(problems), path=str(file)) from None


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("str", "list[str]", "function-after[_one_source(), KeyModel]"):
            continue  # pydantic's name for a union branch, not a field
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _message(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    if error.get("type") == "extra_forbidden":
        return "unknown field (check its spelling)"
    return message.removeprefix("Value error, ")


def _resolve(file: Path, model: FileModel) -> Config:
    _check_objective(file, "objective", model.objective)
    pools = {}
    for name, pool in model.pools.items():
        pools[name] = _resolve_pool(file, model, name, pool)
    return Config(
        path=file,
        pools=pools,
        objective=model.objective,
        store=model.store,
        max_wait=model.max_wait,
        max_attempts=model.max_attempts,
    )


def _resolve_pool(file: Path, model: FileModel, name: str, pool: PoolModel) -> PoolConfig:
    where = f"pools.{name}"
    provider = pool.provider or name
    if provider not in ("openai", "anthropic", "gemini", "azure"):
        raise ConfigFileError(
            "a pool not named after a provider (openai, anthropic, gemini, azure) must say "
            'which one it is for: provider = "openai"',
            path=str(file),
            field=f"{where}.provider",
        )
    objective = pool.objective or model.objective
    _check_objective(file, f"{where}.objective", objective)
    keys: list[KeySource] = []
    for index, entry in enumerate(pool.keys):
        keys.extend(_resolve_key(file, model, provider, f"{where}.keys[{index}]", entry))
    try:
        normalize_keys([k.key for k in keys], field_name=f"{where}.keys")
        policy = PoolPolicy(
            frozenset(pool.labels),
            max_wait=pool.max_wait,
            max_attempts=pool.max_attempts,
            budgets=tuple(pool.budgets),
        )
        PolicyGate([k.key for k in keys], policy, pool=where)  # labels no key carries
    except ConfigError as exc:
        raise ConfigFileError(str(exc), path=str(file)) from None
    _check_budgets(file, where, pool.budgets)
    return PoolConfig(name, provider, tuple(keys), objective, policy)


def _resolve_key(
    file: Path, model: FileModel, provider: str, where: str, entry: KeyModel
) -> list[KeySource]:
    secrets, source, base = _secrets(file, model, provider, where, entry)
    schedule = entry.schedule
    policies: dict[str, Any] = {
        "labels": entry.labels,
        "tier": entry.tier,
        "allow_models": entry.allow_models,
        "deny_models": entry.deny_models,
        "max_in_flight": entry.max_in_flight,
    }
    overrides: dict[str, Any] = {
        "name": entry.name,
        "scope": entry.scope,
        "weight": entry.weight,
        "base_url": entry.base_url or entry.endpoint,
        "deployment": entry.deployment,
        "price_multiplier": entry.price_multiplier,
        "credits_usd": entry.credits_usd,
    }
    try:
        if schedule is not None:
            policies["schedule"] = Schedule(hours=schedule.hours, days=schedule.days)
        given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
        if base is not None:
            return [KeySource(dataclasses.replace(base, **given, **policies), source)]
        named = given.pop("name", None)
        return [
            KeySource(Key(secret, name=_nth(named, i, len(secrets)), **given, **policies), source)
            for i, secret in enumerate(secrets)
        ]
    except ConfigError as exc:
        raise _within(exc, file, where) from None


def _within(exc: ConfigError, file: Path, where: str) -> ConfigFileError:
    """`exc` (about a key or schedule) as an error about the config entry at `where`."""
    field = exc.field or ""
    message = str(exc).removeprefix(f"{field}: ") if field else str(exc)
    if field.startswith("key "):
        field = field.partition(".")[2]
    return ConfigFileError(message, path=str(file), field=f"{where}.{field}" if field else where)


def _nth(name: str | None, index: int, count: int) -> str | None:
    return name if name is None or count == 1 else f"{name}-{index + 1}"


_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _secrets(
    file: Path, model: FileModel, provider: str, where: str, entry: KeyModel
) -> tuple[list[str], str, Key | None]:
    """(secrets, where they came from, the key-file entry's key if that is the source)."""
    if entry.env is not None:
        if not _ENV_NAME.fullmatch(entry.env):
            # Most likely the key itself pasted where its variable's name belongs: never echo it.
            raise ConfigFileError(
                "is not an environment variable name (letters, digits, _); put the key in a "
                "variable and name the variable here",
                path=str(file),
                field=f"{where}.env",
            )
        value = os.environ.get(entry.env, "")
        secrets = [part.strip() for part in value.split(",") if part.strip()]
        if not secrets:
            raise ConfigFileError(
                f"the environment variable {entry.env} is not set (or blank)",
                path=str(file),
                field=f"{where}.env",
            )
        return secrets, f"env:{entry.env}", None
    if entry.keyfile is not None:
        return [], f"keyfile:{entry.keyfile}", _from_keyfile(file, model, provider, where, entry)
    assert entry.secret is not None
    if not model.allow_plaintext_secrets:
        raise ConfigFileError(
            "a secret in plain text in the config file is refused: use "
            '{ env = "VAR" } or { keyfile = "name" }, or set allow_plaintext_secrets = true '
            "at the top of the file to insist",
            path=str(file),
            field=f"{where}.secret",
        )
    warnings.warn(
        f"{file}: {where} holds a secret in plain text (allow_plaintext_secrets = true); "
        "anyone who can read the file can use the key",
        PlaintextSecretWarning,
        stacklevel=4,
    )
    return [entry.secret.get_secret_value()], "plaintext", None


def _from_keyfile(file: Path, model: FileModel, provider: str, where: str, entry: KeyModel) -> Key:
    from keyrouter import keyfile

    assert entry.keyfile is not None
    path = (file.parent / model.keyfile) if model.keyfile else None
    try:
        stored = keyfile.lookup(entry.keyfile, path=path)
    except KeyrouterError as exc:
        raise ConfigFileError(str(exc), path=str(file), field=f"{where}.keyfile") from None
    if stored.provider != provider:
        raise ConfigFileError(
            f"key file entry {entry.keyfile!r} is a {stored.provider} key, not {provider}",
            path=str(file),
            field=f"{where}.keyfile",
        )
    return stored.key


def _check_budgets(file: Path, where: str, budgets: list[dict[str, Any]]) -> None:
    """Each budget table builds a `keyrouter.Budget` (what the pool will make of it)."""
    from keyrouter.entry._pools import configured_budgets

    try:
        configured_budgets(budgets)  # its errors name `budgets[i].field`
    except ConfigError as exc:
        message = str(exc).removeprefix(f"{exc.field}: ") if exc.field else str(exc)
        field = f"{where}.{exc.field}" if exc.field else f"{where}.budgets"
        raise ConfigFileError(message, path=str(file), field=field) from None


def _check_objective(file: Path, field: str, objective: str | Mapping[str, float]) -> None:
    try:
        resolve(objective)
    except ConfigError as exc:
        message = str(exc).removeprefix(f"{exc.field}: ") if exc.field else str(exc)
        raise ConfigFileError(message, path=str(file), field=field) from None

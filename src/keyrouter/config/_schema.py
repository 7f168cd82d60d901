"""The config file's shape, validated by pydantic (imported only when a file is read).

Every model forbids unknown fields, so a typo (`max_inflight`) is an error naming the field,
not a setting silently ignored. Values are checked strictly: TOML has real types, and `"3"`
where a number belongs is a mistake worth hearing about.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

__all__ = ["FileModel", "KeyModel", "PoolModel", "ScheduleModel"]

Provider = Literal["openai", "anthropic", "gemini", "azure"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ScheduleModel(_Strict):
    hours: str | list[str] = ""
    days: str | list[str] = ""


class KeyModel(_Strict):
    """One key entry: where its secret comes from, and its policies."""

    env: str | None = None
    """The environment variable holding the secret (or several, comma-separated)."""
    keyfile: str | None = None
    """The name of an entry of the encrypted key file (`keyrouter keys add NAME`)."""
    secret: SecretStr | None = None
    """The secret itself: refused unless `allow_plaintext_secrets = true`."""
    name: str | None = None
    scope: str | None = None
    weight: float | None = Field(default=None, gt=0)
    base_url: str | None = None
    endpoint: str | None = None
    """Azure: the resource endpoint (`https://name.openai.azure.com`), same as `base_url`."""
    deployment: str | None = None
    labels: list[str] = []
    tier: int = 0
    allow_models: list[str] | None = None
    deny_models: list[str] = []
    max_in_flight: int | None = Field(default=None, ge=1)
    schedule: ScheduleModel | None = None
    price_multiplier: float | None = Field(default=None, ge=0)
    credits_usd: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_source(self) -> KeyModel:
        given = [name for name in ("env", "keyfile", "secret") if getattr(self, name) is not None]
        if len(given) != 1:
            found = f"got {' and '.join(given)}" if given else "got none"
            raise ValueError(
                "give the key's secret exactly one way: "
                '{ env = "VAR" } or { keyfile = "name" } (' + found + ")"
            )
        if self.base_url is not None and self.endpoint is not None:
            raise ValueError("give base_url or endpoint, not both")
        return self


class PoolModel(_Strict):
    """A pool: its keys and policies. Named after a provider, it is that provider's pool for
    `patch()`; any other name is a scoped pool (`keyrouter.pool("name")`) and says `provider`."""

    provider: Provider | None = None
    objective: str | dict[str, float] | None = None
    labels: list[str] = []
    max_wait: float | None = Field(default=None, ge=0)
    max_attempts: int | None = Field(default=None, ge=1)
    budgets: list[dict[str, Any]] = []
    """Spending limits: tables of `keyrouter.Budget`'s fields (`usd`, `period`, `per`, ...)."""
    keys: list[KeyModel] = Field(min_length=1)


class FileModel(_Strict):
    """The whole file (`keyrouter.toml`, or `[tool.keyrouter]` of `pyproject.toml`)."""

    store: str | None = None
    """Where pools share state (`sqlite:///path`, `redis://host`), as `patch(store=...)` takes."""
    objective: str | dict[str, float] = "headroom"
    max_wait: float | None = Field(default=None, ge=0)
    max_attempts: int | None = Field(default=None, ge=1)
    keyfile: str | None = None
    """The encrypted key file `{ keyfile = "name" }` entries come from (relative to this file;
    default: `$KEYROUTER_KEYFILE`, else `./keyrouter.keys`)."""
    allow_plaintext_secrets: bool = False
    pools: dict[str, PoolModel] = {}

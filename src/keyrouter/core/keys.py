"""Keys as the rest of keyrouter sees them: a secret that never shows itself.

A `Key` carries its secret in a private slot. Its repr, str, equality and hash use the
fingerprint, never the secret, so a key can sit in logs, decisions and exceptions safely.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Final

from keyrouter.core.rules import Schedule, patterns
from keyrouter.errors import KeyFormatError

__all__ = ["Key", "azure_key", "fingerprint", "foreign_issuer", "key_id", "normalize_keys"]

_VISIBLE_TAIL: Final = 4
_NO_LABELS: Final[frozenset[str]] = frozenset()


def fingerprint(secret: str) -> str:
    """A short, stable, human-readable name for a secret: its prefix and last 4 characters.

    `sk-proj-abc…wxyz` -> `sk-…wxyz`. Short secrets show only their tail's hash so that a
    fingerprint never reveals most of a key.
    """
    prefix = secret.split("-", 1)[0] + "-" if "-" in secret[:8] else ""
    if len(secret) < 16:
        return f"{prefix}…#{key_id(secret)[:6]}"
    return f"{prefix}…{secret[-_VISIBLE_TAIL:]}"


_ISSUERS: Final = (("sk-ant-", "Anthropic"), ("AIza", "Google (Gemini)"), ("sk-", "OpenAI"))
_ISSUER_OF: Final = {
    "openai": "OpenAI",
    "azure": "Azure OpenAI",
    "anthropic": "Anthropic",
    "gemini": "Google (Gemini)",
}


def foreign_issuer(secret: str, provider: str) -> str | None:
    """The issuer a key's prefix names if it is not `provider` (`sk-ant-` given as openai).

    Only the three prefixes that say who issued a key count; anything else is never flagged.
    """
    issuer = next((who for prefix, who in _ISSUERS if secret.startswith(prefix)), None)
    return issuer if issuer is not None and issuer != _ISSUER_OF.get(provider, issuer) else None


def key_id(secret: str) -> str:
    """A stable identifier for a secret that reveals nothing of it (used in stores)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:24]


@dataclass(frozen=True, eq=False, slots=True)
class Key:
    """One API key of a pool.

    `scope` names the organisation/project whose rate limits the key shares: keys of one scope
    share one budget and one cooldown. Without a scope each key is its own scope.
    `weight` biases selection toward a key (2.0 takes about twice the share of 1.0).
    `base_url` (optional) sends this key's requests to another host of the same API shape;
    a URL with no path (an Azure resource endpoint) replaces only the host.
    `deployment` (Azure OpenAI) is the name this key's resource serves the model under.

    Policies (docs/policies.md): `labels` a pool can select keys by; `tier` (lower tiers are
    drained first: a higher tier serves only when no lower-tier key can); `allow_models` /
    `deny_models`, glob patterns (`"gpt-4o*"`) a request's model must / must not match;
    `max_in_flight`, the most requests the key may have outstanding; `schedule`, the UTC hours
    and days the key may serve (`keyrouter.Schedule(hours="22-06")`).
    `price_multiplier` scales list prices for this key (0.8: a 20% discount); `credits_usd`
    is a free-credit balance the `cost` objective spends first (see docs/cost.md).
    """

    secret: str = field(repr=False)
    name: str | None = None
    scope: str | None = None
    weight: float = 1.0
    base_url: str | None = None
    deployment: str | None = None
    labels: Collection[str] = frozenset()
    tier: int = 0
    allow_models: Collection[str] | None = None
    deny_models: Collection[str] = ()
    max_in_flight: int | None = None
    schedule: Schedule | None = None
    price_multiplier: float = 1.0
    credits_usd: float | None = None
    id: str = field(init=False, repr=False)
    fingerprint: str = field(init=False, repr=False)
    _scope_id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_secret(self.secret)
        if not (self.weight > 0 and self.weight < float("inf")):
            raise KeyFormatError(
                f"weight must be a positive finite number, got {self.weight!r}",
                field=f"key {fingerprint(self.secret)}.weight",
            )
        _check_money(self)
        object.__setattr__(self, "id", key_id(self.secret))
        object.__setattr__(self, "fingerprint", fingerprint(self.secret))
        # Built once: routing reads it on every attempt, and a pool keeps it per key.
        scope_id = f"scope:{self.scope}" if self.scope else f"key:{self.id}"
        object.__setattr__(self, "_scope_id", scope_id)
        self._check_policies()

    def _check_policies(self) -> None:
        where = f"key {self.fingerprint}"
        labels = [self.labels] if isinstance(self.labels, str) else list(self.labels)
        if not all(isinstance(label, str) and label for label in labels):
            raise KeyFormatError("labels must be non-empty strings", field=f"{where}.labels")
        object.__setattr__(self, "labels", frozenset(labels) if labels else _NO_LABELS)
        if isinstance(self.tier, bool) or not isinstance(self.tier, int):
            raise KeyFormatError(
                f"must be a whole number, got {self.tier!r}", field=f"{where}.tier"
            )
        object.__setattr__(
            self, "allow_models", patterns(self.allow_models, f"{where}.allow_models")
        )
        object.__setattr__(self, "deny_models", patterns(self.deny_models, f"{where}.deny_models"))
        limit = self.max_in_flight
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise KeyFormatError(
                f"must be a whole number, at least 1, got {limit!r}", field=f"{where}.max_in_flight"
            )
        if self.schedule is not None and not isinstance(self.schedule, Schedule):
            raise KeyFormatError(
                "must be a keyrouter.Schedule(hours=..., days=...)", field=f"{where}.schedule"
            )

    @property
    def scope_id(self) -> str:
        """The quota scope this key draws from (its own id when it has no named scope)."""
        return self._scope_id

    @property
    def scope_label(self) -> str:
        """How the key's quota scope is shown to people: its name, else the key's label."""
        return self.scope or self.label

    @property
    def label(self) -> str:
        """How the key is shown to people: its name if given, else its fingerprint."""
        return self.name or self.fingerprint

    def __repr__(self) -> str:
        extras = "".join(
            f", {k}={v!r}"
            for k, v in (
                ("name", self.name),
                ("scope", self.scope),
                ("base_url", self.base_url),
                ("deployment", self.deployment),
            )
            if v is not None
        )
        weight = f", weight={self.weight!r}" if self.weight != 1.0 else ""
        if self.price_multiplier != 1.0:
            weight += f", price_multiplier={self.price_multiplier!r}"
        if self.credits_usd is not None:
            weight += f", credits_usd={self.credits_usd!r}"
        rules = "".join(
            f", {k}={v!r}"
            for k, v in (
                ("labels", sorted(self.labels) or None),
                ("tier", self.tier or None),
                ("allow_models", self.allow_models),
                ("deny_models", self.deny_models or None),
                ("max_in_flight", self.max_in_flight),
                ("schedule", self.schedule),
            )
            if v is not None
        )
        return f"Key({self.fingerprint!r}{extras}{weight}{rules})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


def azure_key(
    secret: str,
    endpoint: str,
    *,
    deployment: str | None = None,
    name: str | None = None,
    scope: str | None = None,
    weight: float = 1.0,
) -> Key:
    """An Azure OpenAI pool entry: a key, the resource endpoint it belongs to, and optionally
    the deployment name that resource serves the model under.

    Requests sent with it go to `endpoint` (path and `api-version` kept), so one client can
    spread its calls over several Azure resources. Each resource is its own quota scope
    unless `scope` says otherwise.
    """
    if not endpoint.startswith(("https://", "http://")):
        raise KeyFormatError("must be an https:// URL", field=f"key {fingerprint(secret)}.endpoint")
    return Key(
        secret,
        name=name,
        scope=scope,
        weight=weight,
        base_url=endpoint.rstrip("/"),
        deployment=deployment,
    )


def _check_money(key: Key) -> None:
    for name in ("price_multiplier", "credits_usd"):
        value = getattr(key, name)
        if value is None and name == "credits_usd":
            continue
        if not (isinstance(value, int | float) and 0 <= value < float("inf")):
            raise KeyFormatError(
                f"{name} must be a finite number >= 0, got {value!r}",
                field=f"key {fingerprint(key.secret)}.{name}",
            )


def _check_secret(secret: object) -> None:
    if not isinstance(secret, str):
        raise KeyFormatError(f"a key must be a string, got {type(secret).__name__}", field="key")
    if not secret:
        raise KeyFormatError("a key is empty", field="key")
    if secret != secret.strip() or any(ch.isspace() for ch in secret):
        raise KeyFormatError(
            f"key {fingerprint(secret.strip() or 'blank')} contains whitespace; "
            "strip it before passing it to keyrouter",
            field="key",
        )
    if not secret.isprintable() or not secret.isascii():
        raise KeyFormatError("a key contains non-printable or non-ASCII characters", field="key")


def normalize_keys(keys: object, *, field_name: str) -> tuple[Key, ...]:
    """Turn what a user passed (strings, `Key`s, a comma-separated string) into unique `Key`s.

    Raises `KeyFormatError` naming the field for an empty pool, a bad key or a duplicate.
    """
    if isinstance(keys, str):
        items: list[object] = [part.strip() for part in keys.split(",") if part.strip()]
    elif isinstance(keys, Key):
        items = [keys]
    else:
        try:
            items = list(keys)  # type: ignore[call-overload]
        except TypeError:
            raise KeyFormatError(
                f"expected a list of keys, got {type(keys).__name__}", field=field_name
            ) from None
    if not items:
        raise KeyFormatError("the pool has no keys", field=field_name)
    result: list[Key] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        try:
            key = item if isinstance(item, Key) else Key(item)  # type: ignore[arg-type]
        except KeyFormatError as exc:
            raise KeyFormatError(
                str(exc).removeprefix("key: "), field=f"{field_name}[{index}]"
            ) from None
        if key.id in seen:
            raise KeyFormatError(
                f"key {key.fingerprint} appears twice in the pool", field=f"{field_name}[{index}]"
            )
        seen.add(key.id)
        result.append(key)
    return tuple(result)

"""Bad configuration is refused when it is given, with the problem and the field named and
never the secret; keys that look like another provider's are warned about.

Every way in is tried (patch, pool, the KeyRouted clients, route), so no entry point forgets a
check. Store URLs and the price table are covered too; the config file's own checks live in
tests/config (its secret-echo case is here).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

import keyrouter
from keyrouter.errors import ConfigError, KeyPrefixWarning

SECRET = "sk-proj-rel-badinput-0000000000000001"
ANT = "sk-ant-api03-rel-badinput-000000000002"
GOOGLE = "AIzaSyRelBadInput0000000000000000003"


def via_patch(keys: object, **options: Any) -> object:
    return keyrouter.patch(openai=keys, **options)


def via_pool(keys: object, **options: Any) -> object:
    return keyrouter.pool(openai=keys, **options)


def via_client(keys: object, **options: Any) -> object:
    return keyrouter.KeyRoutedOpenAI(keys=keys, **options)


def via_route(keys: object, **options: Any) -> object:
    client = httpx2.Client(base_url="http://127.0.0.1:9")
    return keyrouter.route(client, keys=keys, header="x-api-key", **options)


WAYS_IN = [via_patch, via_pool, via_client, via_route]
BAD_KEYS = [
    ([], "has no keys"),
    ("", "has no keys"),
    ([SECRET, SECRET], "appears twice"),
    ([SECRET, f" {SECRET}"], "whitespace"),
    ([f"{SECRET}\n"], "whitespace"),
    ([f"{SECRET[:10]} {SECRET[10:]}"], "whitespace"),
    ([""], "empty"),
    ([None], "must be a string"),
    ([f"{SECRET}\u00e9"], "non-ASCII"),
    (42, "expected a list"),
]


def refused(call: Callable[[], object]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        call()
    text = f"{caught.value} {caught.value!r} {caught.value.field}"
    assert SECRET not in text
    assert SECRET[8:-4] not in text
    return caught.value


@pytest.mark.parametrize(("keys", "problem"), BAD_KEYS)
@pytest.mark.parametrize("way_in", WAYS_IN, ids=lambda f: f.__name__)
def test_bad_keys_are_refused_naming_the_field(
    way_in: Callable[..., object], keys: object, problem: str
) -> None:
    error = refused(lambda: way_in(keys))
    assert problem in str(error)
    assert error.field is not None
    assert str(error).startswith(error.field)
    assert keyrouter.snapshot() == {}  # nothing half-configured


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"objective": "fastest"}, "objective"),
        ({"objective": {"headroom": -1}}, "objective"),
        ({"objective": {"speed": 1}}, "objective"),
        ({"max_wait": -1}, "max_wait"),
        ({"max_wait": float("nan")}, "max_wait"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
@pytest.mark.parametrize("way_in", [via_patch, via_client, via_route], ids=lambda f: f.__name__)
def test_bad_options_are_refused_naming_the_option(
    way_in: Callable[..., object], options: dict[str, object], field: str
) -> None:
    assert field in refused(lambda: way_in([SECRET], **options)).field  # type: ignore[operator]


@pytest.mark.parametrize("way_in", WAYS_IN, ids=lambda f: f.__name__)
def test_an_unknown_option_is_a_type_error_naming_it(way_in: Callable[..., object]) -> None:
    with pytest.raises(TypeError, match="objectve"):
        way_in([SECRET], objectve="round_robin")


def test_a_bad_key_weight_or_endpoint_names_the_key_by_fingerprint() -> None:
    for call in (
        lambda: keyrouter.Key(SECRET, weight=0),
        lambda: keyrouter.Key(SECRET, weight=float("inf")),
        lambda: keyrouter.azure_key(SECRET, "ftp://example"),
    ):
        assert keyrouter.Key(SECRET).fingerprint in refused(call).field  # type: ignore[operator]


@pytest.mark.parametrize(
    ("provider", "secret", "issuer"),
    [
        ("openai", ANT, "Anthropic"),
        ("openai", GOOGLE, "Google (Gemini)"),
        ("anthropic", GOOGLE, "Google (Gemini)"),
        ("anthropic", SECRET, "OpenAI"),
        ("gemini", SECRET, "OpenAI"),
        ("gemini", ANT, "Anthropic"),
        ("azure", SECRET, "OpenAI"),
    ],
)
def test_a_key_with_another_providers_prefix_is_warned_about(
    provider: str, secret: str, issuer: str
) -> None:
    with pytest.warns(KeyPrefixWarning) as caught:
        keyrouter.patch(**{provider: ["plain-key-0000000000000000000000", secret]})
    (warning,) = caught
    assert warning.filename == __file__  # points at the caller's line, not keyrouter's
    message = str(warning.message)
    assert message.startswith(f"{provider}[1]: key {keyrouter.Key(secret).fingerprint}")
    assert f"prefix of {issuer} keys" in message
    assert secret not in message
    assert secret[8:-4] not in message


@pytest.mark.parametrize("way_in", WAYS_IN[1:3], ids=lambda f: f.__name__)
def test_the_warning_points_at_the_callers_line(way_in: Callable[..., object]) -> None:
    with pytest.warns(KeyPrefixWarning) as caught:
        way_in([ANT])
    assert [w.filename for w in caught] == [__file__]


def test_matching_prefixes_and_keys_with_their_own_base_url_are_not_warned_about() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", KeyPrefixWarning)
        keyrouter.patch(
            openai=[SECRET, keyrouter.Key(ANT, base_url="https://api.anthropic.com/v1")],
            anthropic=[ANT],
            gemini=[GOOGLE],
            azure=["0123456789abcdef0123456789abcdef"],
        )


@pytest.mark.parametrize(
    ("store", "problem"),
    [
        ("mysql://db/keys", "unknown store"),
        ("not a url", "unknown store"),
        ("sqlite:///no/such/directory/state.db", "cannot be opened"),
    ],
)
def test_a_bad_store_url_is_refused_at_patch_time(store: str, problem: str) -> None:
    error = refused(lambda: keyrouter.patch(openai=[SECRET], store=store))
    assert problem in str(error)
    assert error.field == "store"


@pytest.mark.parametrize(
    ("prices", "field"),
    [
        ({"m": {"input": -1, "output": 1}}, "prices.m"),
        ({"m": {"input": "cheap", "output": 1}}, "prices.m"),
        ({"m": {"input": float("nan"), "output": 1}}, "prices.m"),
        ({"m": {"inputt": 1, "output": 1}}, "prices.m"),
        ({"m": 5}, "prices.m"),
        ({"": {"input": 1, "output": 1}}, "prices"),
        ([("m", 1)], "prices"),
    ],
)
def test_a_bad_price_table_is_refused_naming_the_model(prices: Any, field: str) -> None:
    try:
        assert refused(lambda: keyrouter.set_prices(prices)).field == field
    finally:
        from keyrouter._pricing import reset_prices

        reset_prices()


def test_a_key_pasted_as_a_config_files_variable_name_is_not_echoed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyrouter.config import load_config

    path = tmp_path / "keyrouter.toml"
    path.write_text(f'[pools.openai]\nkeys = [{{ env = "{SECRET}" }}]\n', "utf-8")
    error = refused(lambda: load_config(path))
    assert "pools.openai.keys[0].env" in str(error)

from __future__ import annotations

import pytest

from keyrouter import Key, KeyFormatError
from keyrouter.core.keys import fingerprint, normalize_keys

SECRET = "sk-proj-Zq8xW3vN5tY7uI9oP1aS2dF4gH6jK8lQ0wE"


def test_repr_str_and_fingerprint_never_show_the_secret() -> None:
    key = Key(SECRET, name=None, scope="org-1")
    for text in (repr(key), str(key), key.fingerprint, key.label, key.scope_id):
        assert SECRET not in text
        assert SECRET[3:-4] not in text
    assert key.fingerprint == "sk-…" + SECRET[-4:]


def test_short_secrets_show_no_characters_beyond_the_prefix() -> None:
    assert "abc" not in fingerprint("sk-abc")
    assert fingerprint("sk-abc").startswith("sk-…#")


def test_keys_compare_by_secret_not_by_metadata() -> None:
    assert Key(SECRET, name="a") == Key(SECRET, name="b")
    assert len({Key(SECRET), Key(SECRET, weight=2)}) == 1


def test_scope_defaults_to_the_key_itself() -> None:
    a, b = Key(SECRET + "a"), Key(SECRET + "b")
    assert a.scope_id != b.scope_id
    assert Key(SECRET + "a", scope="p").scope_id == Key(SECRET + "b", scope="p").scope_id


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([], "has no keys"),
        ("", "has no keys"),
        ([SECRET, SECRET], "appears twice"),
        ([" " + SECRET], "whitespace"),
        ([SECRET + "\n"], "whitespace"),
        ([""], "empty"),
        ([42], "must be a string"),
        (42, "expected a list"),
        (["sk-é" + SECRET], "non-ASCII"),
    ],
)
def test_bad_pools_are_refused_with_the_field_named_and_no_secret(
    keys: object, message: str
) -> None:
    with pytest.raises(KeyFormatError) as info:
        normalize_keys(keys, field_name="openai")
    assert message in str(info.value)
    assert str(info.value).startswith("openai")
    assert SECRET not in str(info.value)


def test_comma_separated_string_is_split_and_stripped() -> None:
    keys = normalize_keys(f"{SECRET}a, {SECRET}b ,", field_name="openai")
    assert [k.secret for k in keys] == [SECRET + "a", SECRET + "b"]


def test_weight_must_be_positive() -> None:
    with pytest.raises(KeyFormatError, match="weight"):
        Key(SECRET, weight=0)

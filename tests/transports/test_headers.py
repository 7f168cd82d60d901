"""The raw header readers agree with httpx's and httpx2's own `Headers` API."""

from __future__ import annotations

import httpx
import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyrouter.transports._headers import as_built, lookup, plain, put_back

LIBRARIES = [httpx.Headers, httpx2.Headers]

names = st.sampled_from(["Authorization", "authorization", "x-api-key", "X-Goog-Api-Key", "a"])
values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30)


@pytest.mark.parametrize("library", LIBRARIES)
@given(pairs=st.lists(st.tuples(names, values), max_size=6), name=names)
def test_a_lookup_reads_what_the_library_reads(
    library: type[httpx2.Headers], pairs: list[tuple[str, str]], name: str
) -> None:
    headers = library(pairs)
    view = lookup(headers)
    assert view.get(name) == headers.get(name)
    assert len(view) == len(headers.raw)


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_lookup_works_out_no_encoding(library: type[httpx2.Headers]) -> None:
    headers = library({"authorization": "Bearer sk-x", "x-other": "1"})
    assert lookup(headers)["Authorization"] == "Bearer sk-x"
    assert headers._encoding is None, "the library's encoding scan was not triggered"
    with pytest.raises(KeyError):
        lookup(headers)["x-missing"]


def test_a_lookup_of_a_utf8_value_decodes_it() -> None:
    headers = httpx2.Headers([(b"x-name", "caf\u00e9".encode())])
    assert lookup(headers).get("x-name") == "caf\u00e9"


def test_headers_without_a_triple_list_are_looked_up_as_they_are() -> None:
    given_headers = {"authorization": "Bearer sk-y"}
    assert lookup(given_headers) is given_headers


@pytest.mark.parametrize("library", LIBRARIES)
def test_plain_headers_match_the_librarys_items(library: type[httpx2.Headers]) -> None:
    headers = library([("X-RateLimit-Remaining-Requests", "9"), ("Content-Type", "a/b")])
    assert plain(headers) == dict(headers.multi_items())


def test_the_headers_as_built_are_put_back_whole() -> None:
    request = httpx2.Request("POST", "https://api.openai.com/v1/x", headers={"a": "1"})
    built = as_built(request)
    assert built is not None
    request.headers["authorization"] = "Bearer sk-secret"
    request.headers["a"] = "2"
    put_back(request, built)
    assert "authorization" not in request.headers
    assert request.headers["a"] == "1"

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from keyrouter.providers._resources import created_resource, creates_resource, named_resources


def test_ids_in_paths_and_bodies_are_found() -> None:
    assert named_resources("/v1/files/file-abc123XYZ/content", b"") == ["file-abc123XYZ"]
    body = b'{"model":"m","previous_response_id":"resp_0123456789","input":"x"}'
    assert named_resources("/v1/responses", body) == ["resp_0123456789"]
    assert named_resources("/v1beta/cachedContents/abc123def", b"") == ["cachedContents/abc123def"]
    assert named_resources("/v1/chat/completions", b'{"messages":[]}') == []


def test_created_ids_are_read_from_json_answers_only() -> None:
    assert created_resource(b'{"id":"batch_abc123def","object":"batch"}') == "batch_abc123def"
    assert created_resource(b'{"name":"cachedContents/xyz987abc"}') == "cachedContents/xyz987abc"
    assert created_resource(b'{"id":"chatcmpl-123456"}') is None
    assert created_resource(b"not json") is None
    assert creates_resource("POST", "/v1/files")
    assert creates_resource("POST", "/v1/responses")
    assert not creates_resource("GET", "/v1/files")
    assert not creates_resource("POST", "/v1/chat/completions")


@given(st.text(max_size=300), st.binary(max_size=300))
def test_nothing_raises(path: str, body: bytes) -> None:
    named_resources(path, body)
    created_resource(body)

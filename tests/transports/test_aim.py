"""Re-aiming a request at a key's own server keeps the path below the client's base URL."""

from __future__ import annotations

import httpx2

from keyrouter import Key
from keyrouter.transports._aim import aim

SECRET = "sk-aim-0000000000000000000000001"


def test_key_base_url_replaces_scheme_host_port_and_base_path() -> None:
    original = httpx2.URL("https://api.openai.com/v1/chat/completions?x=1")
    request = httpx2.Request("POST", original)
    aim(request, Key(SECRET, base_url="http://127.0.0.1:8080/proxy/openai/v1"), original, "/v1")
    assert str(request.url) == "http://127.0.0.1:8080/proxy/openai/v1/chat/completions?x=1"
    assert request.headers["host"] == "127.0.0.1:8080"
    aim(request, Key(SECRET), original, "/v1")
    assert request.url == original
    assert request.headers["host"] == "api.openai.com"


def test_a_base_url_without_a_path_changes_only_the_host_and_a_deployment_is_renamed() -> None:
    original = httpx2.URL("https://us.openai.azure.com/openai/deployments/gpt-4o/chat/completions")
    request = httpx2.Request("POST", original)
    key = Key(SECRET, base_url="https://eu.openai.azure.com", deployment="eu-gpt4o")
    aim(request, key, original, "/openai")
    assert request.url.host == "eu.openai.azure.com"
    assert request.url.path == "/openai/deployments/eu-gpt4o/chat/completions"

"""Re-record the cassettes under cassettes/openai/ from the fake provider.

    python cassettes/record.py

Each scenario runs the real `openai` SDK through keyrouter against `keyrouter.testing`'s fake
provider, with vcrpy recording every upstream attempt (failed ones included). Before anything
is written the request host is rewritten to api.openai.com and credentials are removed, so
the cassettes replay against the SDK's default base URL and hold no key of any kind.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import vcr

import keyrouter
from keyrouter.core.registry import default_book
from keyrouter.testing import FakeKey, FakeProvider, Fault

ROOT = Path(__file__).parent
HERE = ROOT / "openai"
PUBLIC_BASE = "https://api.openai.com"
PUBLIC = {
    "openai": "https://api.openai.com",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "azure": "https://example-resource.openai.azure.com",
}
MESSAGES = [{"role": "user", "content": "Say hello"}]
SECRET_HEADERS = [
    "authorization",
    "api-key",
    "x-api-key",
    "x-goog-api-key",
    "openai-organization",
    "openai-project",
]

KEY_A = "sk-cassette-key-a-0000000000000001"
KEY_B = "sk-cassette-key-b-0000000000000002"
KEY_REVOKED = "sk-cassette-revoked-00000000000003"


def _publicise(fake: FakeProvider, public: str = PUBLIC_BASE) -> Callable[[Any], Any]:
    def before_record_request(request: Any) -> Any:
        request.uri = request.uri.replace(fake.url, public)
        if "host" in request.headers:
            request.headers["host"] = public.removeprefix("https://")
        return request

    return before_record_request


def _drop_response_secrets(response: dict[str, Any]) -> dict[str, Any]:
    for name in ("openai-organization", "anthropic-organization-id"):
        response["headers"].pop(name, None)
    return response


def _recorder(fake: FakeProvider, provider: str) -> vcr.VCR:
    return vcr.VCR(
        record_mode="all",
        filter_headers=SECRET_HEADERS,
        before_record_request=_publicise(fake, PUBLIC[provider]),
        before_record_response=_drop_response_secrets,
        decode_compressed_response=True,
    )


def record_other(
    provider: str, name: str, fake: FakeProvider, scenario: Callable[[], None]
) -> None:
    """Record a scenario that builds its own client inside the cassette."""
    folder = ROOT / provider
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.unlink(missing_ok=True)
    default_book().reset()
    with _recorder(fake, provider).use_cassette(str(path)):
        scenario()
    print(f"recorded {provider}/{name}.yaml")


def record(
    name: str, fake: FakeProvider, scenario: Callable[[openai.OpenAI], None], keys: list[str]
) -> None:
    path = HERE / f"{name}.yaml"
    path.unlink(missing_ok=True)
    recorder = vcr.VCR(
        record_mode="all",
        filter_headers=SECRET_HEADERS,
        before_record_request=_publicise(fake),
        before_record_response=_drop_response_secrets,
        decode_compressed_response=True,
    )
    default_book().reset()
    with recorder.use_cassette(str(path)):
        client = keyrouter.KeyRoutedOpenAI(
            keys=keys, base_url=fake.base_url, objective="round_robin", max_retries=0
        )
        scenario(client)
    print(f"recorded {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    keys = [
        FakeKey(KEY_A, rpm=500, tpm=100_000),
        FakeKey(KEY_B, rpm=500, tpm=100_000),
        FakeKey(KEY_REVOKED, status="invalid"),
    ]
    with FakeProvider(keys) as fake:
        record(
            "chat_completion",
            fake,
            lambda c: c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
            [KEY_A],
        )
        record(
            "chat_stream",
            fake,
            lambda c: list(
                c.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=MESSAGES,
                    stream=True,
                    stream_options={"include_usage": True},
                )
            ),
            [KEY_A],
        )
        record(
            "embeddings",
            fake,
            lambda c: c.embeddings.create(model="text-embedding-3-small", input="hello"),
            [KEY_A],
        )
        record(
            "responses",
            fake,
            lambda c: c.responses.create(model="gpt-4o-mini", input="Say hello"),
            [KEY_A],
        )

        def rate_limited_then_ok(client: openai.OpenAI) -> None:
            fake.inject(Fault.status(429), key=KEY_A, times=1)
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

        record("failover_429_then_200", fake, rate_limited_then_ok, [KEY_A, KEY_B])
        record(
            "failover_401_then_200",
            fake,
            lambda c: c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
            [KEY_REVOKED, KEY_A],
        )
    _record_anthropic_and_gemini()


ANT_GOOD = "sk-ant-cassette-good-00000000000001"
ANT_REVOKED = "sk-ant-cassette-revoked-000000000002"
GEM_GOOD = "AIzaSyCassetteGood0000000000000000001"
GEM_REVOKED = "AIzaSyCassetteRevoked000000000000002"
AZ_GOOD = "azcassettegoodkey00000000000000001"
AZ_REVOKED = "azcassetterevokedkey0000000000002"


def _record_anthropic_and_gemini() -> None:
    from google.genai import types

    keys = [
        FakeKey(ANT_GOOD, rpm=500),
        FakeKey(ANT_REVOKED, status="invalid"),
        FakeKey(GEM_GOOD, rpm=500),
        FakeKey(GEM_REVOKED, status="invalid"),
    ]
    prompt = "Say hello"
    with FakeProvider(keys) as fake:
        gemini_options = types.HttpOptions(base_url=fake.gemini_base_url)

        def messages_failover() -> None:
            client = keyrouter.KeyRoutedAnthropic(
                keys=[ANT_REVOKED, ANT_GOOD], base_url=fake.anthropic_base_url, max_retries=0
            )
            client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES)

        def messages_stream() -> None:
            client = keyrouter.KeyRoutedAnthropic(
                keys=[ANT_GOOD], base_url=fake.anthropic_base_url, max_retries=0
            )
            with client.messages.stream(
                model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES
            ) as stream:
                stream.get_final_message()

        def generate_failover() -> None:
            client = keyrouter.KeyRoutedGenAIClient(
                keys=[GEM_REVOKED, GEM_GOOD], http_options=gemini_options
            )
            client.models.generate_content(model="gemini-2.5-flash", contents=prompt)

        def generate_stream() -> None:
            client = keyrouter.KeyRoutedGenAIClient(keys=[GEM_GOOD], http_options=gemini_options)
            list(client.models.generate_content_stream(model="gemini-2.5-flash", contents=prompt))

        record_other("anthropic", "failover_401_then_200", fake, messages_failover)
        record_other("anthropic", "messages_stream", fake, messages_stream)
        record_other("gemini", "failover_400_then_200", fake, generate_failover)
        record_other("gemini", "generate_stream", fake, generate_stream)

    azure_keys = [FakeKey(AZ_GOOD), FakeKey(AZ_REVOKED, status="invalid")]
    with FakeProvider(azure_keys) as fake:

        def azure_failover() -> None:
            client = keyrouter.KeyRoutedAzureOpenAI(
                keys=[AZ_REVOKED, AZ_GOOD],
                azure_endpoint=fake.url,
                api_version="2024-10-21",
                max_retries=0,
            )
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

        record_other("azure", "failover_401_then_200", fake, azure_failover)


if __name__ == "__main__":
    main()

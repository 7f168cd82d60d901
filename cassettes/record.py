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

HERE = Path(__file__).parent / "openai"
PUBLIC_BASE = "https://api.openai.com"
MESSAGES = [{"role": "user", "content": "Say hello"}]
SECRET_HEADERS = ["authorization", "api-key", "x-api-key", "openai-organization", "openai-project"]

KEY_A = "sk-cassette-key-a-0000000000000001"
KEY_B = "sk-cassette-key-b-0000000000000002"
KEY_REVOKED = "sk-cassette-revoked-00000000000003"


def _publicise(fake: FakeProvider) -> Callable[[Any], Any]:
    def before_record_request(request: Any) -> Any:
        request.uri = request.uri.replace(fake.url, PUBLIC_BASE)
        if "host" in request.headers:
            request.headers["host"] = PUBLIC_BASE.removeprefix("https://")
        return request

    return before_record_request


def _drop_response_secrets(response: dict[str, Any]) -> dict[str, Any]:
    response["headers"].pop("openai-organization", None)
    return response


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


if __name__ == "__main__":
    main()

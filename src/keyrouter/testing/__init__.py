"""A fake LLM provider on 127.0.0.1 for testing key pools without the internet.

:class:`FakeProvider` is a real HTTP server that speaks OpenAI's wire format
(chat completions, responses, embeddings, models; JSON and SSE), Anthropic's
Messages API and Gemini's generateContent, each with the rate-limit headers and
error bodies the real API sends and per-key limits, so the unmodified SDKs, and
keyrouter on top of them, can be tested end to end::

    import openai
    from keyrouter.testing import FakeKey, FakeProvider, Fault

    keys = [FakeKey("sk-a", rpm=60, tpm=40_000, scope="org-1"), FakeKey("sk-bad", status="invalid")]
    with FakeProvider(keys=keys, time_scale=10) as fake:
        client = openai.OpenAI(api_key="sk-a", base_url=fake.base_url, max_retries=0)
        messages = [{"role": "user", "content": "hi"}]
        client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        fake.inject(Fault.status(503), key="sk-a", times=2)
        assert fake.stats("sk-a").count(200) == 1

It needs only the standard library and ``h11``; the SDK is not imported.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Self

from ._anthropic import AnthropicEmulator
from ._dispatch import Dispatcher
from ._gemini import GeminiEmulator
from ._limits import Clock, FakeKey, KeyStats, KeyStatus, Ledger, RequestRecord
from ._openai import DEFAULT_MODELS, OpenAIEmulator
from ._server import Fault, FaultBook, ServerThread

__all__ = ["FakeKey", "FakeProvider", "Fault", "KeyStats", "KeyStatus", "RequestRecord"]

_HOST = "127.0.0.1"


class FakeProvider:
    """An OpenAI-compatible server on loopback with per-key limits, faults and statistics.

    ``time_scale`` compresses time (10 makes a rate-limit "minute" last six real
    seconds); ``latency`` delays every response; ``completion_tokens`` is the
    length of plain-text answers; ``now`` replaces the clock the buckets use
    (tests drive it by hand); ``log_size`` bounds :attr:`requests`.
    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        keys: Iterable[FakeKey] = (),
        *,
        time_scale: float = 1.0,
        latency: float = 0.0,
        completion_tokens: int = 16,
        port: int = 0,
        now: Clock = time.monotonic,
        models: Sequence[str] = DEFAULT_MODELS,
        log_size: int = 1000,
        daily_requests: Mapping[str, int] | None = None,
    ) -> None:
        if latency < 0:
            raise ValueError(f"latency must be non-negative, got {latency}")
        self._ledger = Ledger(keys, time_scale=time_scale, now=now, log_size=log_size)
        self._faults = FaultBook()
        self._gemini = GeminiEmulator(
            self._ledger,
            self._faults,
            latency=latency,
            completion_tokens=completion_tokens,
            daily_requests=daily_requests,
        )
        handler = Dispatcher(
            openai=OpenAIEmulator(
                self._ledger,
                self._faults,
                latency=latency,
                completion_tokens=completion_tokens,
                models=models,
            ),
            anthropic=AnthropicEmulator(
                self._ledger, self._faults, latency=latency, completion_tokens=completion_tokens
            ),
            gemini=self._gemini,
        )
        self._server = ServerThread(handler, host=_HOST, port=port)

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve from a background thread; returns once connections are accepted."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Close every connection and the listener (safe to call twice)."""
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses --------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self._server.port

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the authority clients send in the ``Host`` header."""
        return f"{_HOST}:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}"

    @property
    def anthropic_base_url(self) -> str:
        """What to pass as the anthropic SDK's ``base_url`` (it adds ``/v1`` itself)."""
        return self.url

    @property
    def gemini_base_url(self) -> str:
        """What to pass as google-genai's ``HttpOptions(base_url=...)``."""
        return self.url

    def set_daily_limit(self, scope: str, requests: int | None) -> None:
        """Give a Gemini scope (or key) a per-day request quota (429 ``...PerDay...``)."""
        self._gemini.set_daily_limit(scope, requests)

    def reset_daily(self) -> None:
        """Start a new Gemini quota day."""
        self._gemini.reset_daily()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: what to pass as the SDK's ``base_url``."""
        return f"{self.url}/v1"

    # -- keys -------------------------------------------------------------------

    def add_key(self, key: FakeKey) -> None:
        """Register another key, also while serving (it joins its scope's buckets)."""
        self._ledger.add_key(key)

    def set_key_status(self, secret: str, status: KeyStatus) -> None:
        """Change a key's status while serving, e.g. revoke it (``"invalid"``)."""
        self._ledger.set_status(secret, status)

    @property
    def keys(self) -> list[FakeKey]:
        """The registered keys, with their current status."""
        return self._ledger.keys()

    def reset_limits(self) -> None:
        """Refill every bucket at once."""
        self._ledger.fill()

    # -- faults -----------------------------------------------------------------

    def inject(self, fault: Fault, *, key: str | None = None, times: int | None = None) -> None:
        """Make the next ``times`` matching requests misbehave (``None``: until cleared).

        ``key=None`` matches requests with any key (or none).  Faults fire in the
        order injected; a stall fault only matches streaming requests.
        """
        self._faults.inject(fault, key=key, times=times)

    def clear_faults(self) -> None:
        """Remove every pending fault."""
        self._faults.clear()

    # -- observability ----------------------------------------------------------

    def stats(self, secret: str) -> KeyStats:
        """Exact counts for requests that carried ``secret`` (known to the fake or not)."""
        return self._ledger.stats(secret)

    def scope_stats(self, scope: str) -> KeyStats:
        """Counts summed over the keys registered in ``scope``."""
        return self._ledger.scope_stats(scope)

    @property
    def requests(self) -> list[RequestRecord]:
        """The most recent requests (method, path, key, status, host), oldest first."""
        return self._ledger.requests()

    def reset_stats(self) -> None:
        """Forget all counts and the request log."""
        self._ledger.reset_stats()

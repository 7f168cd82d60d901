"""`KeyRoutedGenAIClient`: a real `google.genai.Client` (sync and `.aio`) with a key pool."""

from __future__ import annotations

from typing import Any

from google import genai

from keyrouter.core.pool import KeyPool
from keyrouter.entry._routed import route_own_pool
from keyrouter.entry._sdks import bindings_for
from keyrouter.transports import RouteSettings
from keyrouter.transports.route import PLACEHOLDER_CREDENTIAL

__all__ = ["KeyRoutedGenAIClient"]


class KeyRoutedGenAIClient(genai.Client):
    """`google.genai.Client` for the Gemini API whose requests are spread over `keys`.

    Both `client.models...` and `client.aio.models...` route: they share one API client whose
    sync and async HTTP clients both carry the interceptor. Vertex AI (OAuth credentials) is
    not routed: pass `keys` for the Gemini Developer API only.
    """

    _keyrouter_routed = True

    def __init__(
        self,
        *,
        keys: object | None = None,
        objective: str = "headroom",
        max_attempts: int | None = None,
        max_wait: float | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs["api_key"] = PLACEHOLDER_CREDENTIAL
        binding = next(b for b in bindings_for("gemini") if b.prepare is not None)
        binding.prepare(kwargs)  # type: ignore[misc]
        super().__init__(**kwargs)
        self.key_pool: KeyPool = route_own_pool(
            self._api_client,
            "gemini",
            None,
            keys,
            objective,
            RouteSettings(max_attempts, max_wait),
        )
        """This client's pool: `client.key_pool.snapshot()` shows what it learned."""

"""`KeyRoutedGenAIClient`: a real `google.genai.Client` (sync and `.aio`) with a key pool."""

from __future__ import annotations

from typing import Any

from google import genai

from keyrouter.entry._routed import KeyRouted
from keyrouter.entry._sdks import genai_async_through_one_transport

__all__ = ["KeyRoutedGenAIClient"]


class KeyRoutedGenAIClient(KeyRouted, genai.Client):
    """`google.genai.Client` for the Gemini API whose requests are spread over `keys`.

    Both `client.models...` and `client.aio.models...` route: they share one API client whose
    sync and async HTTP clients both carry the interceptor. Vertex AI (OAuth credentials) is
    not routed: pass `keys` for the Gemini Developer API only.
    """

    _keyrouter_provider = "gemini"
    _keyrouter_async = None

    def _keyrouter_prepare(self, kwargs: dict[str, Any]) -> None:
        genai_async_through_one_transport(kwargs)

    def _keyrouter_http_owner(self) -> Any:
        return self._api_client

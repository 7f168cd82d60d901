"""One server, three APIs: send each request to the emulation whose wire format it speaks.

The three APIs overlap on ``/v1/models`` (and google-genai 3.x uses ``/v1/...`` too, not only
``/v1beta/...``), so the path alone cannot decide; the credential header can, because each
SDK sends its own: ``x-goog-api-key`` (Gemini), ``x-api-key`` / ``anthropic-version``
(Anthropic), ``Authorization: Bearer`` (OpenAI, and Anthropic 2.x, which also always sends
``anthropic-version``).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Literal

from ._server import Handler, Request, Response

__all__ = ["Dispatcher", "Provider", "provider_of"]

Provider = Literal["openai", "anthropic", "gemini", "azure"]

_GEMINI_METHOD = re.compile(
    r"^/v1(?:beta)?/(?:models|tunedModels)/[^/]+:(?:generateContent|streamGenerateContent|"
    r"countTokens|embedContent|batchEmbedContents|batchGenerateContent)$"
)


def provider_of(request: Request) -> Provider:
    """Which API a request is for (OpenAI when nothing says otherwise)."""
    path = request.path
    if path.startswith("/openai/"):
        return "azure"
    if path.startswith(("/v1beta/", "/upload/")) or request.header("x-goog-api-key") is not None:
        return "gemini"
    if _GEMINI_METHOD.match(path):  # a keyless Gemini call (OpenAI's ft: model ids have ":")
        return "gemini"
    if any(part == "key" or part.startswith("key=") for part in request.query.split("&")):
        return "gemini"
    if path.startswith("/v1/messages"):
        return "anthropic"
    if request.header("anthropic-version") is not None or request.header("x-api-key") is not None:
        return "anthropic"
    return "openai"


class Dispatcher:
    """A ``Handler`` that forwards each request to the OpenAI, Anthropic or Gemini emulation."""

    def __init__(self, *, openai: Handler, anthropic: Handler, gemini: Handler) -> None:
        self._handlers: dict[Provider, Handler] = {
            "openai": openai,
            "anthropic": anthropic,
            "gemini": gemini,
        }

    async def __call__(self, request: Request) -> Response:
        provider = provider_of(request)
        if provider == "azure":
            return await self._handlers["openai"](as_openai(request))
        return await self._handlers[provider](request)


_AZURE_PATH = re.compile(r"^/openai(?:/deployments/[^/]+)?(/.*)$")


def as_openai(request: Request) -> Request:
    """An Azure OpenAI request as the OpenAI emulation reads it.

    Azure serves OpenAI's API under ``/openai[/deployments/{name}]/...?api-version=...`` with the
    key in ``api-key``; the bodies and errors are OpenAI's.
    """
    match = _AZURE_PATH.match(request.path)
    path = "/v1" + (match.group(1) if match else request.path)
    headers = {k: v for k, v in request.headers.items() if k != "api-key"}
    key = request.header("api-key")
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    return replace(request, path=path, headers=headers)

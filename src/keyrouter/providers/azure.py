"""Azure OpenAI's wire format: OpenAI's API on a per-resource host, the key in `api-key`.

Bodies, rate-limit headers (`x-ratelimit-remaining-*`, `retry-after`) and error shapes are
OpenAI's, so everything but the credential comes from `OpenAIWire`. An Entra ID (AAD) token
travels in `Authorization` and is the user's own: it is never read or replaced here.
"""

from __future__ import annotations

from typing import Final

from keyrouter.providers.base import Headers, MutableHeaders
from keyrouter.providers.openai import OpenAIWire

__all__ = ["WIRE", "AzureWire"]


class AzureWire(OpenAIWire):
    """OpenAI's wire with the key in `api-key`; any `*.openai.azure.com` resource host."""

    name = "azure"
    default_hosts: frozenset[str] = frozenset()
    auth_header = "api-key"

    def credential(self, headers: Headers) -> str | None:
        value = headers.get(self.auth_header)
        return value.strip() if value is not None else None

    def write_credential(self, headers: MutableHeaders, secret: str) -> None:
        headers[self.auth_header] = secret


WIRE: Final = AzureWire()

"""Azure OpenAI's wire format: OpenAI's API on a per-resource host, the key in `api-key`.

Bodies, rate-limit headers (`x-ratelimit-remaining-*`, `retry-after`) and error shapes are
OpenAI's, so everything but the credential comes from `OpenAIWire`. An Entra ID (AAD) token
travels in `Authorization` and is the user's own: it is never read or replaced here. The model
is the deployment named in the path (`/openai/deployments/{deployment}/...`), else the body's
`model` (the v1 API).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final
from urllib.parse import unquote

from keyrouter.core.quota import Demand
from keyrouter.providers._estimate import model_name
from keyrouter.providers.base import Headers, MutableHeaders
from keyrouter.providers.openai import OpenAIWire

__all__ = ["WIRE", "AzureWire", "deployment_in_path"]


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

    def estimate_demand(self, method: str, path: str, body: bytes) -> Demand:
        return _deployed(path, super().estimate_demand(method, path, body))

    def demand_bound(self, method: str, path: str, body: bytes) -> Demand | None:
        bound = super().demand_bound(method, path, body)
        return None if bound is None else _deployed(path, bound)


def _deployed(path: str, demand: Demand) -> Demand:
    """`demand` for the deployment the path names (its model), if it names one."""
    deployment = deployment_in_path(path)
    return demand if deployment is None else replace(demand, model=deployment)


_DEPLOYMENTS = "/deployments/"


def deployment_in_path(path: str) -> str | None:
    """The `{deployment}` of `.../deployments/{deployment}/...`, if the path names one."""
    start = path.find(_DEPLOYMENTS)
    if start < 0:
        return None
    name = path[start + len(_DEPLOYMENTS) :].partition("/")[0]
    return model_name(unquote(name))


WIRE: Final = AzureWire()

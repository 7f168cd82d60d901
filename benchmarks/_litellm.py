"""LiteLLM's Router over the same keys, for the optional `--vs litellm` columns.

Never a dependency of keyrouter: install it into your own venv to compare.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

UNREACHABLE_BASE = "http://127.0.0.1:9/v1"
"""For benchmarks that only build or consult the router and never send."""


def litellm_router(keys: Iterable[str], base_url: str = UNREACHABLE_BASE) -> Any:
    """One deployment of `gpt-4o-mini` per key, no retries, no network at import."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm  # type: ignore[import-not-found,unused-ignore]

    litellm.suppress_debug_info = True
    deployments = [
        {
            "model_name": "gpt-4o-mini",
            "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": k, "api_base": base_url},
        }
        for k in keys
    ]
    return litellm.Router(model_list=deployments, num_retries=0)

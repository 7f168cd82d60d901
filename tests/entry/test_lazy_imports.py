"""`import keyrouter` and `patch()` import nothing the app does not use."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import sys
import keyrouter
heavy = {"openai", "anthropic", "google.genai", "pydantic", "httpx", "httpx2", "wrapt", "tomllib"}
assert not heavy & set(sys.modules), sorted(heavy & set(sys.modules))
assert not [m for m in sys.modules if m.startswith("keyrouter.core")], "router loaded eagerly"

keyrouter.patch(openai=["sk-lazy-aaaaaaaaaaaaaaaaaaaa"])
assert "anthropic" not in sys.modules and "google.genai" not in sys.modules

import anthropic  # imported after patch(): its client class is hooked now
import wrapt

assert isinstance(anthropic.Anthropic.__dict__["__init__"], wrapt.FunctionWrapper)
keyrouter.unpatch()
assert not isinstance(anthropic.Anthropic.__dict__["__init__"], wrapt.FunctionWrapper)
print("ok")
"""


def test_import_and_patch_load_no_unused_sdk() -> None:
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


PLAIN_POOL = r"""
import sys
import keyrouter
keyrouter.patch(openai=["sk-lazy-%020d" % i for i in range(8)])
assert "keyrouter.transports.interceptor" not in sys.modules  # loads with the first client
import openai
openai.OpenAI()  # a patched client: the transport is installed too
unused = [
    "keyrouter.core.budget", "keyrouter.core.pricing", "keyrouter.core.usage",
    "keyrouter.core.store", "keyrouter.core.policy", "keyrouter.stores._base",
    "keyrouter.providers._usage", "keyrouter.transports._metering", "keyrouter.config",
]
loaded = [m for m in unused if m in sys.modules]
assert not loaded, loaded
keyrouter.patch(openai=["sk-lazy-%020d" % i for i in range(8)], usage=True)
assert "keyrouter.core.budget" in sys.modules  # loaded once a pool keeps usage
print("ok")
"""


def test_a_plain_pool_loads_no_budget_usage_store_or_policy_code() -> None:
    """A pool with no budget, store, usage tracking or policy does not load their modules
    (they are most of what the first `patch()` would cost)."""
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", PLAIN_POOL], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"

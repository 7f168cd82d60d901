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

"""Every example runs as a user would run it, and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXPECTED = {
    "budgets.py": "free: 2 calls, 0.0100 USD",
    "any_http_api.py": "20/20 lookups served; errors seen by the caller: 0",
    "patch_everything.py": "ChatCompletion",
    "key_routed_client.py": "80 replies; upstream 429s: 0",
    "scoped_pools.py": "acme: 10 calls on its own keys",
    "multi_tenant_web_app.py": "acme: 12/12 requests served on its own keys; failovers absorbed: 1",
    "shared_pool_workers.py": "the revoked key was sent 1 request(s) in all",
    "observe_the_pool.py": "event: failover revoked -> main (invalid_key)",
    "policies.py": "refused before sending: keyrouter: a policy forbids every key",
    "config_file.py": "keyrouter.toml: valid",
}


def run_python(*args: str) -> subprocess.CompletedProcess[str]:
    """Run our interpreter as a user would, without any provider key from this environment."""
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_API_KEYS"))}
    return subprocess.run(  # noqa: S603 - our own interpreter and files
        [sys.executable, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str) -> None:
    result = run_python(str(EXAMPLES / name))
    assert result.returncode == 0, result.stderr[-2000:]
    assert EXPECTED[name] in result.stdout


def test_every_example_is_tested() -> None:
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(EXPECTED)


def test_the_demo_serves_every_call() -> None:
    result = run_python("-m", "keyrouter", "demo", "--calls", "120")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "120/120 calls succeeded" in result.stdout
    assert "errors surfaced to the caller: 0" in result.stdout
    assert "sk-demo-" not in result.stdout, "no key is printed in full"

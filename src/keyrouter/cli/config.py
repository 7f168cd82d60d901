"""`keyrouter config check`: validate the config file and print the effective configuration.

Secrets are shown as fingerprints only, with where each came from (`env:VAR`, `keyfile:name`,
`plaintext`). Exit code 0 when the file is valid, 1 (and the error, naming the file and the
line or field) when not, 2 when there is no file to check.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from keyrouter.cli._table import render_table
from keyrouter.config import Config, PoolConfig, load_config
from keyrouter.core.objectives import resolve

__all__ = ["register", "render_config"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "config",
        help="validate keyrouter.toml and print the effective configuration",
        description="Work with the config file (keyrouter.toml, [tool.keyrouter] in "
        "pyproject.toml, or $KEYROUTER_CONFIG).",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check", help="validate the file; print pools, keys (as fingerprints) and policies"
    )
    check.add_argument("--file", metavar="PATH", help="the file to check (default: as patch())")
    check.set_defaults(run=_run_check)


def _run_check(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    if config is None:
        print(
            "keyrouter config: no config file here (keyrouter.toml, [tool.keyrouter] in "
            "pyproject.toml) and KEYROUTER_CONFIG is not set",
            file=sys.stderr,
        )
        return 2
    print(render_config(config))
    return 0


def render_config(config: Config) -> str:
    """The effective configuration as text: defaults, then each pool's policies and keys."""
    lines = [
        f"{config.path}: valid",
        f"store: {_without_password(config.store) if config.store else '(in-process memory)'}",
        f"objective: {_objective(config.objective)}",
        f"max_wait: {_or_default(config.max_wait, 's')}",
        f"max_attempts: {_or_default(config.max_attempts)}",
    ]
    if not config.pools:
        lines.append("pools: none (patch() falls back to *_API_KEYS)")
    for pool in config.pools.values():
        lines += ["", *_pool_lines(config, pool)]
    return "\n".join(lines)


def _pool_lines(config: Config, pool: PoolConfig) -> list[str]:
    role = "patch()" if pool.name == pool.provider else f'keyrouter.pool("{pool.name}")'
    policy = pool.policy
    head = [
        f"pool {pool.name} ({pool.provider}, used by {role})",
        f"  objective: {_objective(pool.objective)}",
        f"  labels: {', '.join(sorted(policy.labels)) or 'any'}",
        f"  max_wait: {_or_default(policy.max_wait, 's', config.max_wait)}",
        f"  max_attempts: {_or_default(policy.max_attempts, '', config.max_attempts)}",
    ]
    for budget in policy.budgets:
        assert isinstance(budget, Mapping)
        per = budget.get("per", "pool")
        head.append(
            f"  budget: {budget.get('usd')} USD per {budget.get('period', 'month')}, per {per}"
        )
    rows = []
    for entry in pool.keys:
        key = entry.key
        models = []
        if key.allow_models is not None:
            models.append("allow " + ",".join(key.allow_models))
        if key.deny_models:
            models.append("deny " + ",".join(key.deny_models))
        rows.append(
            [
                key.fingerprint,
                key.name or "-",
                entry.source,
                key.tier,
                ",".join(sorted(key.labels)) or "-",
                "; ".join(models) or "any",
                key.max_in_flight if key.max_in_flight is not None else "-",
                key.schedule.describe() if key.schedule is not None else "always",
                f"{key.weight:g}",
                key.scope or "-",
            ]
        )
    table = render_table(
        [
            "key",
            "name",
            "from",
            "tier",
            "labels",
            "models",
            "max in flight",
            "schedule",
            "weight",
            "scope",
        ],
        rows,
    )
    return head + ["  " + line for line in table.splitlines()]


def _objective(objective: str | Mapping[str, float]) -> str:
    return resolve(objective)[0]


def _without_password(url: str) -> str:
    """A store URL with any password replaced (`redis://:***@host`)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _or_default(value: float | None, unit: str = "", inherited: float | None = None) -> str:
    if value is None:
        value = inherited
    if value is None:
        return "default"
    return f"{value:g}{unit}"

"""The config file: finding it, validating it, resolving keys, and using it from patch()."""

from __future__ import annotations

import warnings
from pathlib import Path

import openai
import pytest
from cryptography.fernet import Fernet

import keyrouter
from keyrouter import keyfile
from keyrouter.cli import main
from keyrouter.config import find_config, load_config
from keyrouter.errors import ConfigFileError, PlaintextSecretWarning
from keyrouter.testing import FakeKey, FakeProvider

FREE = "sk-cfg-free-0000000000000000000001"
PAID = "sk-cfg-paid-0000000000000000000002"
PAID_2 = "sk-cfg-paid-0000000000000000000003"
CLAUDE = "sk-ant-cfg-000000000000000000000004"

CONFIG = """
objective = "round_robin"
max_wait = 5

[pools.openai]
keys = [
  { env = "CFG_FREE", name = "free", tier = 0, allow_models = ["gpt-4o-mini"], labels = ["free"] },
  { env = "CFG_PAID", name = "paid", tier = 1, max_in_flight = 2, schedule = { days = "mon-sun" } },
]

[pools.team-a]
provider = "anthropic"
labels = ["team-a"]
max_attempts = 2
keys = [{ env = "CFG_CLAUDE", labels = ["team-a"], deny_models = ["*-opus-*"] }]
"""


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("CFG_FREE", FREE)
    monkeypatch.setenv("CFG_PAID", f"{PAID},{PAID_2}")
    monkeypatch.setenv("CFG_CLAUDE", CLAUDE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(text, "utf-8")
    return path


def fails(path: Path) -> ConfigFileError:
    with pytest.raises(ConfigFileError) as caught:
        load_config(path)
    assert str(path) in str(caught.value)
    return caught.value


# -- finding -----------------------------------------------------------------------------------


def test_found_in_the_working_directory_then_pyproject_then_the_variable(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert find_config() is None
    write(env / "pyproject.toml", "[project]\nname = 'x'\n")
    assert find_config() is None  # a pyproject.toml without [tool.keyrouter] is not a config
    write(env / "pyproject.toml", "[tool.keyrouter.pools.openai]\nkeys = [{ env = 'CFG_FREE' }]\n")
    assert find_config() == (env / "pyproject.toml", True)
    config = load_config()
    assert config is not None
    assert [k.secret for k in config.pools["openai"].key_list] == [FREE]
    write(env / "keyrouter.toml", CONFIG)
    assert find_config() == (env / "keyrouter.toml", False)
    other = write(env / "other.toml", CONFIG)
    monkeypatch.setenv("KEYROUTER_CONFIG", str(other))
    assert find_config() == (other, False)
    monkeypatch.setenv("KEYROUTER_CONFIG", str(env / "missing.toml"))
    with pytest.raises(ConfigFileError, match="KEYROUTER_CONFIG names a file that does not exist"):
        find_config()


# -- resolving ---------------------------------------------------------------------------------


def test_keys_come_resolved_with_their_policies(env: Path) -> None:
    config = load_config(write(env / "keyrouter.toml", CONFIG))
    assert config is not None
    assert config.objective == "round_robin"
    assert config.max_wait == 5
    pool = config.pools["openai"]
    free, paid, paid_2 = pool.key_list
    assert free.secret == FREE
    assert free.allow_models == ("gpt-4o-mini",)
    assert free.labels == frozenset({"free"})
    assert (paid.name, paid_2.name) == ("paid-1", "paid-2")  # one entry, two keys
    assert paid.tier == 1
    assert paid.max_in_flight == 2
    assert paid.schedule is not None
    assert [k.source for k in pool.keys] == ["env:CFG_FREE", "env:CFG_PAID", "env:CFG_PAID"]
    team = config.pools["team-a"]
    assert team.provider == "anthropic"
    assert team.policy.labels == frozenset({"team-a"})
    assert team.policy.max_attempts == 2
    assert list(config.provider_pools()) == ["openai"]


def test_a_keyfile_reference_is_resolved_through_the_key_file(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(keyfile.ENV_MASTER_KEY, Fernet.generate_key().decode())
    keyfile.add("paid", PAID, provider="openai", scope="org-1", path=env / "secrets.keys")
    config = load_config(
        write(
            env / "keyrouter.toml",
            'keyfile = "secrets.keys"\n[pools.openai]\n'
            'keys = [{ keyfile = "paid", tier = 2, max_in_flight = 3 }]\n',
        )
    )
    assert config is not None
    (entry,) = config.pools["openai"].keys
    assert entry.source == "keyfile:paid"
    assert (entry.key.secret, entry.key.scope, entry.key.tier) == (PAID, "org-1", 2)
    wrong = write(
        env / "wrong.toml",
        'keyfile = "secrets.keys"\n[pools.anthropic]\nkeys = [{ keyfile = "paid" }]\n',
    )
    assert "is a openai key, not anthropic" in str(fails(wrong))


def test_a_plaintext_secret_needs_the_flag_and_is_warned_about(env: Path) -> None:
    body = f'[pools.openai]\nkeys = [{{ secret = "{FREE}" }}]\n'
    error = fails(write(env / "plain.toml", body))
    assert error.field == "pools.openai.keys[0].secret"
    assert FREE not in str(error)
    allowed = write(env / "allowed.toml", "allow_plaintext_secrets = true\n" + body)
    with pytest.warns(PlaintextSecretWarning, match="plain text"):
        config = load_config(allowed)
    assert config is not None
    assert config.pools["openai"].keys[0].source == "plaintext"


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[pools.openai]\nkeys = [ { env = 'X' \n", ":2: not valid TOML"),
        (
            "[pools.openai]\nkeys = [{ env = 'CFG_FREE', max_inflight = 2 }]\n",
            "keys[0].max_inflight: unknown field",
        ),
        (
            "[pools.openai]\nkeys = [{ env = 'CFG_FREE', tier = '1' }]\n",
            "keys[0].tier: Input should be a valid integer",
        ),
        (
            "[pools.openai]\nkeys = [{ env = 'CFG_FREE', keyfile = 'k' }]\n",
            "keys[0]: give the key's secret exactly one way",
        ),
        ("[pools.openai]\nkeys = []\n", "pools.openai.keys: List should have at least 1 item"),
        (
            "[pools.openai]\nobjective = { speed = 1.0 }\nkeys = [{ env = 'CFG_FREE' }]\n",
            "pools.openai.objective: 'speed' cannot be weighted",
        ),
        (
            "[pools.openai]\nbudgets = [{ usd = 5, period = 'week' }]\n"
            "keys = [{ env = 'CFG_FREE' }]\n",
            "pools.openai.budgets[0].period: 'day' or 'month'",
        ),
        (
            "[pools.openai]\nkeys = [{ env = 'NOT_SET_ANYWHERE' }]\n",
            "keys[0].env: the environment variable NOT_SET_ANYWHERE is not set",
        ),
        (
            "[pools.openai]\nkeys = [{ env = 'CFG_FREE', schedule = { hours = '9-9' } }]\n",
            "keys[0].schedule.hours: '9-9' is an empty range",
        ),
        (
            "[pools.openai]\nkeys = [{ env = 'CFG_FREE', max_in_flight = 0 }]\n",
            "keys[0].max_in_flight: Input should be greater than or equal to 1",
        ),
        (
            "[pools.openai]\nlabels = ['x']\nkeys = [{ env = 'CFG_FREE' }]\n",
            "pools.openai.labels: no key carries any of the labels",
        ),
        (
            "[pools.openai]\nobjective = 'fastest'\nkeys = [{ env = 'CFG_FREE' }]\n",
            "pools.openai.objective: unknown objective 'fastest'",
        ),
        (
            "[pools.tenant]\nkeys = [{ env = 'CFG_FREE' }]\n",
            "pools.tenant.provider: a pool not named after a provider",
        ),
        ("[pools.openai]\nkeys = [{ env = 'CFG_FREE' }, { env = 'CFG_FREE' }]\n", "appears twice"),
        (  # the key pasted where its variable's name goes: named, never echoed
            f"[pools.openai]\nkeys = [{{ env = '{FREE}' }}]\n",
            "keys[0].env: is not an environment variable name",
        ),
    ],
)
def test_errors_name_the_file_and_the_line_or_field(env: Path, text: str, expected: str) -> None:
    error = fails(write(env / "keyrouter.toml", text))
    assert expected in str(error)
    for secret in (FREE, PAID):
        assert secret not in str(error)


def test_a_pyproject_named_by_the_variable_must_have_the_table(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYROUTER_CONFIG", str(write(env / "pyproject.toml", "[project]\n")))
    with pytest.raises(ConfigFileError, match=r"has no \[tool.keyrouter\] table"):
        load_config()


# -- using it ----------------------------------------------------------------------------------


def test_patch_with_no_arguments_builds_its_pools_from_the_file(env: Path) -> None:
    write(env / "keyrouter.toml", CONFIG)
    with FakeProvider([FakeKey(FREE), FakeKey(PAID), FakeKey(PAID_2)]) as fake:
        keyrouter.patch()
        client = openai.OpenAI(base_url=fake.base_url)
        for _ in range(3):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        assert fake.stats(FREE).count(200) == 3  # tier 0 first
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert fake.stats(FREE).count(200) == 3  # gpt-4o is not allowed on the free key
        assert fake.stats(PAID).count(200) + fake.stats(PAID_2).count(200) == 1
    pool = keyrouter.core.registry.global_pool("openai")
    assert pool is not None
    assert pool.objective == "round_robin"


def test_explicit_keys_leave_the_file_unread(env: Path) -> None:
    write(env / "keyrouter.toml", "this is not toml")
    keyrouter.patch(openai=[FREE])  # no error: the file is only read by a bare patch()
    with pytest.raises(ConfigFileError, match="not valid TOML"):
        keyrouter.patch()


def test_a_named_pool_of_the_file_scopes_a_block(env: Path) -> None:
    write(env / "keyrouter.toml", CONFIG)
    scoped = keyrouter.pool("team-a")
    (pool,) = scoped.pools.values()
    assert [k.secret for k in pool.keys] == [CLAUDE]
    assert pool.policy.max_attempts == 2
    with pytest.raises(keyrouter.ConfigError, match="no pool named 'nobody'"):
        keyrouter.pool("nobody")
    with pytest.raises(keyrouter.ConfigError, match="or keys and options, not both"):
        keyrouter.pool("team-a", labels=["x"])


# -- keyrouter config check --------------------------------------------------------------------


def test_config_check_prints_the_effective_config_with_fingerprints(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(env / "keyrouter.toml", CONFIG)
    assert main(["config", "check"]) == 0
    out = capsys.readouterr().out
    assert "keyrouter.toml: valid" in out
    assert 'pool team-a (anthropic, used by keyrouter.pool("team-a"))' in out
    assert keyrouter.Key(FREE).fingerprint in out
    assert "allow gpt-4o-mini" in out
    assert "env:CFG_PAID" in out
    for secret in (FREE, PAID, PAID_2, CLAUDE):
        assert secret not in out


def test_config_check_reports_errors_and_a_missing_file(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check"]) == 2
    assert "no config file here" in capsys.readouterr().err
    write(env / "keyrouter.toml", "[pools.openai]\nkeys = [{ env = 'CFG_FREE', tier = 'x' }]\n")
    with warnings.catch_warnings():
        assert main(["config", "check"]) == 1
    err = capsys.readouterr().err
    assert "keyrouter.toml: pools.openai.keys[0].tier" in err


def test_the_files_store_is_used_by_patch_and_shown_without_its_password(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from keyrouter.core.registry import default_book

    write(env / "keyrouter.toml", f'store = "sqlite:///{env}/state.db"\n')
    keyrouter.patch()
    store = default_book().store
    assert store is not None
    assert getattr(store, "url", "") == f"sqlite:///{env}/state.db"
    keyrouter.unpatch()
    write(env / "keyrouter.toml", 'store = "redis://:hunter2@127.0.0.1:6379/0"\n')
    assert main(["config", "check"]) == 0
    out = capsys.readouterr().out
    assert "redis://:***@127.0.0.1:6379/0" in out
    assert "hunter2" not in out


def test_weighted_objectives_and_budgets_reach_the_pool(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        env / "keyrouter.toml",
        "[pools.openai]\nobjective = { cost = 0.7, headroom = 0.3 }\n"
        "budgets = [{ usd = 20, period = 'day', per = 'key' }]\n"
        "keys = [{ env = 'CFG_FREE', price_multiplier = 0.5 }]\n",
    )
    keyrouter.patch()
    pool = keyrouter.core.registry.global_pool("openai")
    assert pool is not None
    assert pool.objective == "cost*0.7+headroom*0.3"
    assert pool.keys[0].price_multiplier == 0.5
    assert pool.spending is not None
    assert pool.spending.has_budgets
    assert main(["config", "check"]) == 0
    out = capsys.readouterr().out
    assert "objective: cost*0.7+headroom*0.3" in out
    assert "budget: 20 USD per day, per key" in out

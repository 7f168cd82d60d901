"""The config file: keyrouter.toml read by a bare keyrouter.patch(), checked by the CLI.

python examples/config_file.py
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import openai

import keyrouter
from keyrouter.cli import main as keyrouter_cli
from keyrouter.testing import FakeKey, FakeProvider

CONFIG = """\
objective = "headroom"
max_wait = 10

[pools.openai]
keys = [
  { env = "EXAMPLE_FREE_KEY", name = "free", tier = 0, allow_models = ["gpt-4o-mini"] },
  { env = "EXAMPLE_PAID_KEYS", name = "paid", tier = 1, max_in_flight = 8 },
]

[pools.tenant-a]
provider = "openai"
labels = ["tenant-a"]
keys = [{ env = "EXAMPLE_TENANT_KEY", name = "tenant-a", labels = ["tenant-a"] }]
"""

SECRETS = {
    "EXAMPLE_FREE_KEY": "sk-example-cfg-free-000000000000001",
    "EXAMPLE_PAID_KEYS": "sk-example-cfg-paid-000000000000002,sk-example-cfg-paid-000000000000003",
    "EXAMPLE_TENANT_KEY": "sk-example-cfg-tenant-0000000000004",
}


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "keyrouter.toml"
        config.write_text(CONFIG, "utf-8")
        os.environ.update(SECRETS)  # in real life: your secret manager sets these
        os.environ["KEYROUTER_CONFIG"] = str(config)  # or run from the file's folder
        keyrouter_cli(["config", "check"])  # what `keyrouter config check` prints
        secrets = [s for value in SECRETS.values() for s in value.split(",")]
        with FakeProvider([FakeKey(s) for s in secrets]) as fake:
            keyrouter.patch()  # no arguments: pools and policies come from the file
            try:
                client = openai.OpenAI(base_url=fake.base_url)
                for model in ["gpt-4o-mini", "gpt-4o", "gpt-4o"]:
                    client.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": "hi"}]
                    )
                with keyrouter.pool("tenant-a"):  # a named pool of the file
                    client.chat.completions.create(
                        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
                    )
                served = {s[-4:]: fake.stats(s).count(200) for s in secrets}
                print(f"\ncalls served per key (by last 4 characters): {served}")
            finally:
                keyrouter.unpatch()


if __name__ == "__main__":
    main()

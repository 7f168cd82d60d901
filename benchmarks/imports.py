"""Import cost: `import keyrouter` (and its first `patch()`) on top of `import openai`.

Each sample is a fresh interpreter that imports `openai`, then the contender, and reports the
CPU time (`time.process_time`, steadier than wall time on a shared machine) and the growth of
its resident memory (`/proc/self/statm`). Contenders alternate process by process. Bytecode
is compiled once beforehand into a private cache, as an installed package's would be (the
developer environment may set PYTHONDONTWRITEBYTECODE, which would time the compiler).

    python -m benchmarks.imports [--runs 11] [--vs litellm]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile

from keyrouter.cli._table import render_table

_PROBE = r"""
import json, os, time
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
t0 = time.process_time(); import openai; t1 = time.process_time(); m1 = rss()
CONTENDER
t2 = time.process_time(); m2 = rss()
print(json.dumps({"base": t1 - t0, "time": t2 - t1, "memory": m2 - m1}))
"""

CONTENDERS = {
    "nothing more (control)": "pass",
    "import keyrouter": "import keyrouter",
    "import keyrouter + patch(openai=8 keys)": (
        "import keyrouter; keyrouter.patch(openai=['sk-import-%02d-0000000000000000' % i "
        "for i in range(8)])"
    ),
    "... + first patched openai.OpenAI()": (
        "import keyrouter; keyrouter.patch(openai=['sk-import-%02d-0000000000000000' % i "
        "for i in range(8)]); openai.OpenAI()"
    ),
    "plain openai.OpenAI() (for scale)": "openai.OpenAI(api_key='sk-plain-000000000000')",
}
LITELLM = {"import litellm": "import litellm"}


def sample(code: str, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", _PROBE.replace("CONTENDER", code)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--vs", choices=["litellm"], default=None)
    args = parser.parse_args()
    contenders = dict(CONTENDERS)
    if args.vs == "litellm":
        if importlib.util.find_spec("litellm") is None:
            print("litellm is not installed: `pip install litellm` to compare (skipped)")
        else:
            contenders.update(LITELLM)
    with tempfile.TemporaryDirectory(prefix="keyrouter-pyc-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        for code in contenders.values():
            sample(code, env)  # compile and cache the bytecode
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
        for run in range(args.runs):
            names = list(contenders) if run % 2 == 0 else list(contenders)[::-1]
            for name in names:
                samples[name].append(sample(contenders[name], env))
    base = statistics.median(s["base"] for runs in samples.values() for s in runs)
    control = samples["nothing more (control)"]
    control_mem = statistics.median(s["memory"] for s in control)
    rows = []
    for name, runs in samples.items():
        cpu = statistics.median(s["time"] for s in runs)
        memory = statistics.median(s["memory"] for s in runs) - control_mem
        rows.append([name, f"{cpu * 1e3:.1f} ms", f"{max(0.0, memory) / 2**20:.2f} MiB"])
    print(
        f"\nmedian over {args.runs} fresh interpreters per row, after `import openai` "
        f"(itself {base * 1e3:.0f} ms CPU); memory is resident-set growth beyond the control's\n"
    )
    print(render_table(["on top of import openai", "CPU time", "memory"], rows))


if __name__ == "__main__":
    main()

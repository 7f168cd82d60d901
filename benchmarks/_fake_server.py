"""Run the fake provider in its own process, so it does not share the benchmark's GIL."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ROOMY_RPM = 10_000_000
ROOMY_TPM = 10_000_000_000


@contextlib.contextmanager
def fake_server(keys: Sequence[str], *, latency: float = 0.0) -> Iterator[str]:
    """Yields the base URL of a fake provider process serving `keys`.

    Every key has limits far above anything a benchmark sends, so no call is ever refused,
    but every answer carries OpenAI's `x-ratelimit-*` headers, as OpenAI's answers do: the
    routed client reads them as it would in production (a key with no limits at all would
    answer without them, which no OpenAI key does).
    """
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "keyrouter.testing",
        "--port",
        str(port),
        "--keys",
        ",".join(f"{key}:rpm={ROOMY_RPM}:tpm={ROOMY_TPM}" for key in keys),
        "--latency",
        str(latency),
    ]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"fake provider did not start: {process.stderr.read()!r}")  # type: ignore[union-attr]
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=10)

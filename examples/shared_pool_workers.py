"""Worker processes sharing one pool through a store: what one worker learns, all know.

Redis when one answers on 127.0.0.1:6379 (`store="redis://..."`), else a SQLite file
(`store="sqlite:///..."`): the same one line either way. One of the two keys is revoked. The
first worker meets it once and the store records it; the workers started after never send it a
request. Run it as a user would (gunicorn, celery and the like give the same picture):

python examples/shared_pool_workers.py
"""

from __future__ import annotations

import multiprocessing
import socket
import tempfile
import uuid
from pathlib import Path

import openai

import keyrouter
from keyrouter.testing import FakeKey, FakeProvider

GOOD = "sk-example-shared-good-000000000001"
REVOKED = "sk-example-shared-revoked-000000002"
CALLS_PER_WORKER = 10


def worker(store_url: str, base_url: str, results: multiprocessing.Queue[int]) -> None:
    """One process of the app: patch once at start-up with the shared store, then serve."""
    keyrouter.patch(openai=[REVOKED, GOOD], store=store_url, objective="round_robin")
    client = openai.OpenAI(base_url=base_url, max_retries=0)
    served = 0
    for i in range(CALLS_PER_WORKER):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"job {i}"}]
        )
        served += 1
    keyrouter.unpatch()  # closes the store: what this worker learned is written
    results.put(served)


def redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def run(store_url: str, base_url: str) -> int:
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[int] = context.Queue()

    def start(count: int) -> list[multiprocessing.process.BaseProcess]:
        procs: list[multiprocessing.process.BaseProcess] = [
            context.Process(target=worker, args=(store_url, base_url, results))
            for _ in range(count)
        ]
        for proc in procs:
            proc.start()
        return procs

    served = 0
    for count in (1, 2):  # the first worker, then two more once it has learned
        for proc in start(count):
            proc.join(timeout=120)
            served += results.get(timeout=5)
    return served


def main() -> None:
    prefix = f"keyrouter-example-{uuid.uuid4().hex[:8]}:"
    with FakeProvider([FakeKey(GOOD), FakeKey(REVOKED, status="invalid")]) as fake:
        if redis_answers():
            kind, url = "Redis", f"redis://127.0.0.1:6379/0?prefix={prefix}"
            served = run(url, fake.base_url)
            import redis

            client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
            names = list(client.scan_iter(match=f"{prefix}*"))
            if names:
                client.delete(*names)  # only this example's keys
            client.close()
        else:
            with tempfile.TemporaryDirectory() as folder:
                kind, url = "SQLite", f"sqlite:///{Path(folder) / 'shared.db'}"
                served = run(url, fake.base_url)
        revoked_hits = fake.stats(REVOKED).count(401)
    print(f"store: {kind}")
    print(f"3 workers: {served}/{3 * CALLS_PER_WORKER} calls served")
    print(f"the revoked key was sent {revoked_hits} request(s) in all: the store told the others")


if __name__ == "__main__":
    main()

"""Developer sessions: `nox -s tests lint typecheck compat bench`."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The whole suite on the current SDK majors (openai 3.x on httpx2)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def compat(session: nox.Session) -> None:
    """The integration tests (real SDKs, their own HTTP clients, the fake provider, cassettes)
    on the previous majors: openai 2.x (httpx), anthropic 0.x, google-genai 2.x."""
    session.install("-e", ".[test]", "openai>=2,<3", "anthropic<1", "google-genai<3", "httpx")
    session.run("python", "-c", "import openai; assert openai.__version__.startswith('2.')")
    session.run("pytest", "tests/integration", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "examples")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "examples")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[test]", "mypy")
    session.run("mypy", "--strict", "src")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Every benchmark, printed as tables (contenders side by side, interleaved rounds), in
    under 5 minutes. `nox -s bench -- --vs litellm` adds LiteLLM where it applies (installs it
    into the session's own environment, never as a project dependency)."""
    session.install("-e", ".[test]")
    if "litellm" in session.posargs:
        session.install("litellm")
    for script in ("overhead", "imports", "routing", "memory", "concurrency"):
        session.run("python", "-m", f"benchmarks.{script}", *session.posargs)
    # Shorter runs than their defaults (20 s and 15 s per contender), to stay under 5 minutes.
    session.run("python", "-m", "benchmarks.capacity", "--seconds", "10")
    session.run("python", "-m", "benchmarks.multiprocess", "--seconds", "8")

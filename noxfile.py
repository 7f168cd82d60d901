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
    """Every benchmark, printed as tables (side by side, interleaved rounds)."""
    session.install("-e", ".[test]")
    for script in ("overhead", "capacity"):
        session.run("python", "-m", f"benchmarks.{script}", *session.posargs)


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs-material) into site/, strict: a broken link fails it.
    `nox -s docs -- serve` is not supported; run `mkdocs serve` in the session's venv."""
    session.install("mkdocs-material>=9.5")
    session.env["NO_MKDOCS_2_WARNING"] = "1"
    session.run("mkdocs", "build", "--strict", *session.posargs)

"""The reliability suite: faults through the fake provider, bad input, secrets.

Measured figures (wasted calls, time to eject / re-admit) are collected with the `figures`
fixture and printed as one table at the end of the run; they are recorded in
docs/reliability.md, never asserted as timings.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from keyrouter.testing import FakeProvider

_FIGURES: list[tuple[str, str, str]] = []


class Figures:
    """Collects (scenario, figure, value) rows for the end-of-run table."""

    def record(self, scenario: str, figure: str, value: object) -> None:
        _FIGURES.append((scenario, figure, str(value)))


@pytest.fixture
def figures() -> Figures:
    return Figures()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("reliability figures (docs/reliability.md)")
    width = max(len(scenario) for scenario, _, _ in _FIGURES)
    for scenario, figure, value in _FIGURES:
        terminalreporter.write_line(f"{scenario:<{width}}  {figure}: {value}")


@pytest.fixture
def fake_factory() -> Iterator[list[FakeProvider]]:
    """Fake providers started by a test, all stopped at its end."""
    started: list[FakeProvider] = []
    yield started
    for fake in started:
        fake.stop()

"""Which outcomes give their reservation back (the one rule the pool and the stores share)."""

from __future__ import annotations

import pytest

from keyrouter.core.outcome import Outcome, OutcomeKind


@pytest.mark.parametrize(
    ("outcome", "refunded"),
    [
        (Outcome(OutcomeKind.RATE_LIMITED, 429), True),
        (Outcome(OutcomeKind.SERVER_ERROR, None, "ConnectError"), True),
        (Outcome(OutcomeKind.SERVER_ERROR, 503), False),
        (Outcome(OutcomeKind.SUCCESS, 200), False),
        (Outcome(OutcomeKind.QUOTA_EXHAUSTED, 429), False),
        (Outcome(OutcomeKind.INVALID_KEY, 401), False),
        (Outcome(OutcomeKind.REQUEST_ERROR, 400), False),
    ],
)
def test_only_what_the_provider_never_counted_is_refunded(outcome: Outcome, refunded: bool) -> None:
    assert outcome.consumed_nothing is refunded

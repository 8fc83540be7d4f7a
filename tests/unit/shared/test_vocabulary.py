"""The one order of a delivery's statuses (shared/contracts/vocabulary.py)."""

from __future__ import annotations

from shared.contracts.vocabulary import DeliveryStatus as D


def test_the_order_runs_from_queued_to_retracted() -> None:
    assert sorted(D, key=lambda s: s.rank) == [D.queued, D.received, D.contact_made, D.closed, D.returned, D.retracted]


def test_later_keeps_the_status_further_along() -> None:
    assert D.received.later(D.closed) is D.closed
    assert D.closed.later(D.received) is D.closed
    assert D.closed.later(D.retracted) is D.retracted

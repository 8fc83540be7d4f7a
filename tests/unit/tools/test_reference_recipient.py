"""The reference recipient's sequence bookkeeping: a gap is fetched, and a fetch that failed is tried again
without waiting for another message (the last message of a burst may be the one after the gap)."""

from __future__ import annotations

from typing import Any

import httpx

from tools.reference_recipient import ReferenceRecipient


def _recipient(shown: list[tuple[str, dict[str, Any]]]) -> ReferenceRecipient:
    return ReferenceRecipient(
        amqp_url="amqp://guest:guest@127.0.0.1:5672/unused",
        org_id="jgz-1",
        routing_url="http://routing.test",
        token="t",
        show=lambda kind, body: shown.append((kind, body)),
        after_sequence=0,
    )


def _retraction(sequence: int) -> dict[str, Any]:
    return {
        "message_id": f"m{sequence}",
        "type": "melding.retracted",
        "sequence": sequence,
        "delivery_id": f"d{sequence}",
        "melding_id": f"melding-{sequence}",
    }


async def test_a_gap_whose_fetch_failed_is_filled_by_the_retry_without_a_new_message() -> None:
    answers = iter([httpx.Response(503), httpx.Response(200, json={"items": [_retraction(1)], "next": 1})])
    asked: list[str | None] = []

    def routing(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params.get("after_sequence"))
        return next(answers)

    shown: list[tuple[str, dict[str, Any]]] = []
    recipient = _recipient(shown)
    async with httpx.AsyncClient(base_url="http://routing.test", transport=httpx.MockTransport(routing)) as http:
        await recipient.take("m2", "melding.retracted", _retraction(2), http)
        await recipient.follow(2, http)  # 1 is missing: fetched, and the fetch fails
        assert (recipient.last_sequence, recipient.beyond) == (0, {2})

        await recipient.retry_gap(http)

    assert asked == ["0", "0"]
    assert (recipient.last_sequence, recipient.beyond) == (2, set())
    assert [kind for kind, _ in shown].count("retracted") == 2


async def test_without_a_gap_the_retry_asks_nothing() -> None:
    def routing(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"asked {request.url}")

    recipient = _recipient([])
    async with httpx.AsyncClient(base_url="http://routing.test", transport=httpx.MockTransport(routing)) as http:
        await recipient.take("m1", "melding.retracted", _retraction(1), http)
        await recipient.follow(1, http)
        await recipient.retry_gap(http)
    assert (recipient.last_sequence, recipient.beyond) == (1, set())


async def test_a_gap_fetch_that_finds_the_gap_filled_meanwhile_asks_nothing_and_goes_on() -> None:
    """Two fetches may queue for the lock; the second finds nothing missing any more. It used to fail on an
    empty `max()`, which ended the recipient's consumer (10,000-melding fault runs)."""

    def routing(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"asked {request.url}")

    recipient = _recipient([])
    async with httpx.AsyncClient(base_url="http://routing.test", transport=httpx.MockTransport(routing)) as http:
        await recipient.fill_gap(http)
    assert (recipient.last_sequence, recipient.beyond) == (0, set())

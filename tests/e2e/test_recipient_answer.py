"""The recipient's answer and the sender's cancellation end to end (contract v1.1: "The recipient's
answer", "Sender cancellation"): contact deadlines with one reminder, returns an operator routes again,
outcomes the sender sees, and cancellations that retract with their reason."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import aio_pika
import httpx
import pytest

from services.routing.service_layer import events
from services.routing.service_layer.unit_of_work import unit_of_work_factory
from shared.clock import today_nl
from tests.e2e.flow import (
    RecipientQueue,
    admin,
    body_of,
    consented_patient,
    eventually,
    melding_body,
    melding_status,
    new_org_id,
    put_gemeente,
    put_organisation,
    recipient,
    record_consent,
    send,
    sender,
    status_is,
)
from tests.e2e.test_operator_metrics import sample
from tests.support import RunEnvironment, Tokens

Clients = dict[str, httpx.AsyncClient]


async def _jgz_with_deadline(system: Clients, tokens: Tokens, deadline: str = "P14D") -> str:
    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109")])
    jgz = new_org_id()
    await put_organisation(system, tokens, jgz, "jgz", gemeenten=["GM0363"])
    route_map = {
        "effective_from": "2026-01-01",
        "recipients": {"jgz": {"risk_domains": "all"}},
        "contact_deadline": {"regular": deadline, "urgent": deadline},
    }
    put = await system["routing"].put("/v1/gemeenten/GM0363/route-map", headers=admin(tokens), json=route_map)
    assert put.status_code == 201, put.text
    return jgz


async def _send_to_jgz(system: Clients, tokens: Tokens) -> str:
    consent_id = await record_consent(system, tokens, types=["jgz"])
    sent = await send(system, tokens, melding_body(consent_id, recipient_types=["jgz"]))
    assert sent.status_code == 202, sent.text
    return str(sent.json()["id"])


async def _report(system: Clients, tokens: Tokens, org_id: str, delivery_id: str, **body: object) -> httpx.Response:
    return await system["routing"].post(
        f"/v1/deliveries/{delivery_id}/status", headers=recipient(tokens, org_id), json=body
    )


async def test_a_delivery_past_its_deadline_gets_one_reminder_and_everyone_sees_it(
    system: Clients,
    tokens: Tokens,
    amqp: aio_pika.abc.AbstractChannel,
    environment: RunEnvironment,
    stack_databases: dict[str, str],
) -> None:
    async def overdue_gauge() -> float | None:
        return sample((await system["routing"].get("/metrics")).text, "kansrijk_overdue_deliveries", service="routing")

    before = await overdue_gauge()
    assert before is not None  # the stack serves every test: compare before and after
    jgz = await _jgz_with_deadline(system, tokens, "PT2S")
    melding_id = await _send_to_jgz(system, tokens)
    queue = RecipientQueue(amqp, jgz)
    delivered = await queue.next()
    reminder = await queue.next(timeout=20)
    assert reminder.type == "melding.reminder" and reminder.message_id == f"reminder-{delivered.message_id}"
    assert body_of(reminder)["delivery_id"] == delivered.message_id

    listed = (await system["routing"].get("/v1/overdue", headers=admin(tokens))).json()["items"]
    assert [i["delivery_id"] for i in listed] == [delivered.message_id] and listed[0]["gemeente_code"] == "GM0363"
    assert (listed[0]["gemeente_name"], listed[0]["org_id"], listed[0]["org_name"]) == ("Amsterdam", jgz, f"JGZ {jgz}")
    assert await overdue_gauge() == before + 1  # what operators alert on (docs/reliability.md)

    async def sender_sees_it() -> dict[str, Any] | None:
        view = await melding_status(system, tokens, melding_id)
        return view if view["deliveries"] and view["deliveries"][0]["overdue"] else None

    view = await eventually(sender_sees_it)
    assert view["deliveries"][0]["contact_due_at"] and "overdue" in [h["event"] for h in view["history"]]

    # Another routing replica (or this one, restarted) finds it marked: no second reminder.
    database = environment.database(stack_databases["routing"])
    try:
        assert await events.mark_overdue_deliveries(unit_of_work_factory(database)) == 0
    finally:
        await database.dispose()
    assert await queue.empty(wait=2)

    assert delivered.message_id is not None
    contact = await _report(system, tokens, jgz, delivered.message_id, status="contact_made")
    assert contact.status_code == 200, contact.text
    assert (await system["routing"].get("/v1/overdue", headers=admin(tokens))).json()["items"] == []
    assert await overdue_gauge() == before


async def test_a_returned_melding_waits_for_an_operator_who_sends_it_elsewhere(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel
) -> None:
    jgz = await _jgz_with_deadline(system, tokens)
    await put_gemeente(system, tokens, "GM0362", "Amstelveen", [("1180", "1189")])
    amstelveen = new_org_id()
    await put_organisation(system, tokens, amstelveen, "jgz", gemeenten=["GM0362"])
    melding_id = await _send_to_jgz(system, tokens)
    delivery_id = (await RecipientQueue(amqp, jgz).next()).message_id
    assert delivery_id is not None

    late = await _report(system, tokens, jgz, delivery_id, status="returned")
    assert late.status_code == 422  # a return needs its reason
    await asyncio.sleep(0.05)  # the return's moment differs from the routing's, whatever the clock's grain
    before_return = datetime.now(UTC)
    returned = await _report(system, tokens, jgz, delivery_id, status="returned", reason="wrong-recipient")
    assert returned.status_code == 200, returned.text
    waiting = (await system["routing"].get("/v1/unroutable", headers=admin(tokens))).json()["items"]
    assert waiting[0]["melding_id"] == melding_id and waiting[0]["gemeente_name"] == "Amsterdam"
    [seen] = waiting[0]["returned"]
    returned_at = datetime.fromisoformat(seen.pop("returned_at"))
    assert seen == {"recipient_type": "jgz", "org_id": jgz, "org_name": f"JGZ {jgz}", "reason": "wrong-recipient"}
    assert returned_at >= before_return > datetime.fromisoformat(waiting[0]["waiting_since"])  # not its routing

    async def sender_sees_returned() -> dict[str, Any] | None:
        view = await melding_status(system, tokens, melding_id)
        return view if view["deliveries"][0]["status"] == "returned" else None

    assert (await eventually(sender_sees_returned))["deliveries"][0]["returned_reason"] == "wrong-recipient"

    by_directory = await system["routing"].post(f"/v1/unroutable/{melding_id}/reroute", headers=admin(tokens))
    assert by_directory.json()["status"] == "waiting"  # the directory's only JGZ returned it: never again
    assert by_directory.json()["reason"].startswith(
        "every active jgz organisation serving gemeente Amsterdam (GM0363) returned it as the wrong recipient"
    )
    assert by_directory.json()["waiting"] == [{"recipient_type": "jgz", "reason": "returned-by-all"}]
    wrong_type = await system["routing"].post(
        f"/v1/unroutable/{melding_id}/reroute", headers=admin(tokens), json={"org_id": "wijkteam-nergens"}
    )
    assert wrong_type.status_code == 422
    named = await system["routing"].post(
        f"/v1/unroutable/{melding_id}/reroute", headers=admin(tokens), json={"org_id": amstelveen}
    )
    assert named.status_code == 200
    assert named.json() == {"melding_id": melding_id, "status": "routed", "reason": None, "waiting": []}
    assert body_of(await RecipientQueue(amqp, amstelveen).next())["melding_id"] == melding_id
    assert await RecipientQueue(amqp, jgz).empty()


async def test_closing_with_an_outcome_shows_on_the_senders_view(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel
) -> None:
    jgz = await _jgz_with_deadline(system, tokens)
    melding_id = await _send_to_jgz(system, tokens)
    delivery_id = (await RecipientQueue(amqp, jgz).next()).message_id
    for body in ({"status": "contact_made", "contact_at": "2099-01-01"}, {"status": "closed", "outcome": "astrologie"}):
        assert (await _report(system, tokens, jgz, str(delivery_id), **body)).status_code == 422
    assert (await _report(system, tokens, jgz, str(delivery_id), status="contact_made")).status_code == 200
    closed = await _report(system, tokens, jgz, str(delivery_id), status="closed", outcome="phb-done")
    assert closed.status_code == 200, closed.text
    assert (
        await _report(system, tokens, jgz, str(delivery_id), status="returned", reason="no-capacity")
    ).status_code == 409

    async def sender_sees_closed() -> dict[str, Any] | None:
        view = await melding_status(system, tokens, melding_id)
        return view if view["deliveries"][0]["status"] == "closed" else None

    delivery = (await eventually(sender_sees_closed))["deliveries"][0]
    assert delivery["outcome"] == "phb-done" and delivery["contact_at"]


async def test_a_cancellation_before_delivery_lets_nothing_out(system: Clients, tokens: Tokens) -> None:
    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109")])
    melding_id = await _send_to_jgz(system, tokens)  # no JGZ yet: it waits

    async def waiting() -> bool:
        return await status_is(system, tokens, melding_id, "unroutable")

    await eventually(waiting)
    cancelled = await system["melding"].post(
        f"/v1/meldingen/{melding_id}/cancel", headers=sender(tokens), json={"reason": "pregnancy-ended"}
    )
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    assert cancelled.json()["patient"] is None and cancelled.json()["note"] is None  # personal data gone at once
    again = await system["melding"].post(
        f"/v1/meldingen/{melding_id}/cancel", headers=sender(tokens), json={"reason": "other"}
    )
    assert again.status_code == 200 and [h["event"] for h in again.json()["history"]].count("cancelled") == 1
    jgz = new_org_id()
    await put_organisation(system, tokens, jgz, "jgz", gemeenten=["GM0363"])

    async def routing_has_it_cancelled() -> bool:
        items = (await system["routing"].get("/v1/unroutable", headers=admin(tokens))).json()["items"]
        return melding_id not in [i["melding_id"] for i in items]

    await eventually(routing_has_it_cancelled)
    assert (await system["routing"].get("/v1/deliveries", headers=recipient(tokens, jgz))).json()["items"] == []


async def test_a_cancellation_after_delivery_retracts_it_with_the_reason(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel
) -> None:
    jgz = await _jgz_with_deadline(system, tokens)
    melding_id = await _send_to_jgz(system, tokens)
    queue = RecipientQueue(amqp, jgz)
    delivered = await queue.next()
    other = await system["melding"].post(
        f"/v1/meldingen/{melding_id}/cancel", headers=sender(tokens, "10000009"), json={"reason": "other"}
    )
    assert other.status_code == 404  # another organisation's melding does not exist for it
    bad = await system["melding"].post(
        f"/v1/meldingen/{melding_id}/cancel", headers=sender(tokens), json={"reason": "x"}
    )
    assert bad.status_code == 422
    cancelled = await system["melding"].post(
        f"/v1/meldingen/{melding_id}/cancel", headers=sender(tokens), json={"reason": "pregnancy-ended"}
    )
    assert cancelled.status_code == 200, cancelled.text
    retraction = await queue.next()
    assert retraction.type == "melding.retracted"
    assert body_of(retraction)["delivery_id"] == delivered.message_id
    assert (body_of(retraction)["reason"], body_of(retraction)["cancel_reason"]) == (
        "cancelled-by-sender",
        "pregnancy-ended",
    )

    async def retracted() -> dict[str, Any] | None:
        view = await melding_status(system, tokens, melding_id)
        return view if view["deliveries"][0]["status"] == "retracted" else None

    view = await eventually(retracted)
    assert view["status"] == "cancelled" and view["patient"] is None


@pytest.mark.parametrize("reason", ["wrong-recipient", "insufficient-information", "no-capacity"])
async def test_every_return_reason_is_taken(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, reason: str
) -> None:
    jgz = await _jgz_with_deadline(system, tokens)
    await _send_to_jgz(system, tokens)
    delivery_id = (await RecipientQueue(amqp, jgz).next()).message_id
    response = await _report(system, tokens, jgz, str(delivery_id), status="returned", reason=reason)
    assert response.status_code == 200 and response.json()["status"] == "returned"


async def _returned_and_sent_elsewhere(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, jgz: str, other: str, consent_id: str
) -> tuple[str, str, str]:
    """A melding to the JGZ, which sends it back; an operator routes it to `other`, a JGZ too. Its id, the
    returned delivery's and the new one's."""
    sent = await send(system, tokens, melding_body(consent_id, recipient_types=["jgz"]))
    assert sent.status_code == 202, sent.text
    melding_id = str(sent.json()["id"])
    first = str((await RecipientQueue(amqp, jgz).next()).message_id)
    returned = await _report(system, tokens, jgz, first, status="returned", reason="no-capacity")
    assert returned.status_code == 200, returned.text
    named = await system["routing"].post(
        f"/v1/unroutable/{melding_id}/reroute", headers=admin(tokens), json={"org_id": other}
    )
    assert named.status_code == 200 and named.json()["status"] == "routed", named.text
    second = str((await RecipientQueue(amqp, other).next()).message_id)
    return melding_id, first, second


async def _other_jgz(system: Clients, tokens: Tokens) -> str:
    await put_gemeente(system, tokens, "GM0362", "Amstelveen", [("1180", "1189")])
    other = new_org_id()
    await put_organisation(system, tokens, other, "jgz", gemeenten=["GM0362"])
    return other


async def _holds_nothing_of_her(
    system: Clients, tokens: Tokens, org_id: str, delivery_id: str, status: str, org_type: str = "jgz"
) -> bool:
    """Routing's copy of the delivery has the status and none of her personal data."""
    headers = recipient(tokens, org_id, org_type=org_type)
    response = await system["routing"].get(f"/v1/deliveries/{delivery_id}", headers=headers)
    document = response.json()
    return document["status"] == status and not {"patient", "note", "pregnancy", "sender"} & document.keys()


@pytest.mark.parametrize("stop", ["cancel", "withdraw"])
async def test_stopping_a_melding_returned_and_routed_again_retracts_the_live_delivery_and_keeps_the_return(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, stop: str
) -> None:
    """Found by attack: stopping it turned the returned delivery `retracted` too, two rows of one type collided on
    the unique index, the event died, and the second JGZ kept her data with no retraction sent."""
    jgz = await _jgz_with_deadline(system, tokens)
    other = await _other_jgz(system, tokens)
    consent_id = await record_consent(system, tokens, types=["jgz"])
    melding_id, first, second = await _returned_and_sent_elsewhere(system, tokens, amqp, jgz, other, consent_id)
    if stop == "cancel":
        stopped = await system["melding"].post(
            f"/v1/meldingen/{melding_id}/cancel", headers=sender(tokens), json={"reason": "sent-in-error"}
        )
    else:
        stopped = await system["consent"].post(f"/v1/consents/{consent_id}/withdraw", headers=sender(tokens))
    assert stopped.status_code == 200, stopped.text

    retraction = await RecipientQueue(amqp, other).next()
    assert retraction.type == "melding.retracted" and body_of(retraction)["delivery_id"] == second
    assert await _holds_nothing_of_her(system, tokens, other, second, "retracted")
    assert await _holds_nothing_of_her(system, tokens, jgz, first, "returned")  # it stays returned
    assert await RecipientQueue(amqp, jgz).empty()  # what it sent back is not retracted again

    async def sender_sees_it_stopped() -> dict[str, Any] | None:
        view = await melding_status(system, tokens, melding_id)
        statuses = {d["delivery_id"]: d["status"] for d in view["deliveries"]}
        return view if statuses == {first: "returned", second: "retracted"} else None

    view = await eventually(sender_sees_it_stopped)
    assert view["status"] == ("cancelled" if stop == "cancel" else "withdrawn") and view["patient"] is None
    letters = (await system["routing"].get("/v1/dead-letters", headers=admin(tokens))).json()["items"]
    assert not [d for d in letters if d["correlation_id"] == melding_id]


async def test_a_withdrawal_retracts_every_live_delivery_of_its_meldingen_one_of_them_returned_and_routed_again(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel
) -> None:
    """One consent, two meldingen: one returned by its JGZ and routed to another, one at the wijkteam. The
    withdrawal reaches both: the melding that once failed to stop no longer holds up the other."""
    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109")])  # no route map: all to all
    jgz = new_org_id()
    await put_organisation(system, tokens, jgz, "jgz", gemeenten=["GM0363"])
    other = await _other_jgz(system, tokens)
    wijkteam = new_org_id()
    await put_organisation(system, tokens, wijkteam, "wijkteam", gemeenten=["GM0363"])
    consent_id = await record_consent(system, tokens, types=["jgz", "wijkteam"])
    melding_id, first, second = await _returned_and_sent_elsewhere(system, tokens, amqp, jgz, other, consent_id)
    sent = await send(system, tokens, melding_body(consent_id, recipient_types=["wijkteam"]))
    assert sent.status_code == 202, sent.text
    at_wijkteam = str((await RecipientQueue(amqp, wijkteam).next()).message_id)

    withdrawn = await system["consent"].post(f"/v1/consents/{consent_id}/withdraw", headers=sender(tokens))
    assert withdrawn.status_code == 200, withdrawn.text
    for org_id, org_type, delivery_id in ((other, "jgz", second), (wijkteam, "wijkteam", at_wijkteam)):
        retraction = await RecipientQueue(amqp, org_id).next()
        assert retraction.type == "melding.retracted" and body_of(retraction)["delivery_id"] == delivery_id
        assert await _holds_nothing_of_her(system, tokens, org_id, delivery_id, "retracted", org_type)
    assert await _holds_nothing_of_her(system, tokens, jgz, first, "returned")

    async def both_withdrawn() -> bool:
        views = [await melding_status(system, tokens, m) for m in (melding_id, sent.json()["id"])]
        return all(v["status"] == "withdrawn" and v["patient"] is None for v in views)

    await eventually(both_withdrawn)


async def test_closing_needs_the_day_of_contact_for_an_outcome_after_contact_and_a_second_close_cannot_differ(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel
) -> None:
    """Closing (v1.2): `phb-done` straight from `received` answered 200 and lost the day of contact for good
    (a later contact_made was 409); a second `closed` with another outcome answered 200 and was dropped."""
    jgz = await _jgz_with_deadline(system, tokens)
    queue, deliveries = RecipientQueue(amqp, jgz), []
    for _ in range(3):
        consent_id, bsn = await consented_patient(system, tokens, types=["jgz"])
        sent = await send(system, tokens, melding_body(consent_id, bsn, recipient_types=["jgz"]))
        assert sent.status_code == 202, sent.text
        delivery_id = str((await queue.next()).message_id)
        assert (await _report(system, tokens, jgz, delivery_id, status="received")).status_code == 200
        deliveries.append((sent.json()["id"], delivery_id))
    (melding_id, first), (_, second), (_, third) = deliveries
    today = today_nl().isoformat()

    refused = await _report(system, tokens, jgz, first, status="closed", outcome="phb-done")
    assert refused.status_code == 422 and refused.headers["content-type"].startswith("application/problem+json")
    assert (await system["routing"].get(f"/v1/deliveries/{first}", headers=recipient(tokens, jgz))).json()[
        "status"
    ] == "received"  # nothing half-stored
    closed = await _report(system, tokens, jgz, first, status="closed", outcome="phb-done", contact_at=today)
    assert closed.status_code == 200 and closed.json()["status"] == "closed", closed.text
    again = await _report(system, tokens, jgz, first, status="closed", outcome="phb-done", contact_at=today)
    assert again.status_code == 200
    for outcome in ("declined", "moved"):
        conflict = await _report(system, tokens, jgz, first, status="closed", outcome=outcome)
        assert conflict.status_code == 409, conflict.text
        assert conflict.headers["content-type"].startswith("application/problem+json")
    # Another valid day cannot be made here (delivered today; the future is refused): the domain's unit
    # tests hold that one (tests/unit/routing/test_model.py).

    async def sender_sees_the_day() -> dict[str, Any] | None:
        delivery = (await melding_status(system, tokens, melding_id))["deliveries"][0]
        return delivery if delivery["status"] == "closed" else None

    delivery = await eventually(sender_sees_the_day)
    assert (delivery["outcome"], delivery["contact_at"]) == ("phb-done", today)

    declined = await _report(system, tokens, jgz, second, status="closed", outcome="declined")
    assert declined.status_code == 200, declined.text  # other outcomes close straight from received
    late_day = await _report(system, tokens, jgz, second, status="closed", outcome="declined", contact_at=today)
    assert late_day.status_code == 409  # would be dropped

    assert (await _report(system, tokens, jgz, third, status="contact_made", contact_at=today)).status_code == 200
    assert (await _report(system, tokens, jgz, third, status="contact_made", contact_at=today)).status_code == 200
    noted = await _report(system, tokens, jgz, third, status="contact_made", note="Huisbezoek gepland.")
    assert noted.status_code == 409  # the same status with something new to say: it would be dropped
    assert (await _report(system, tokens, jgz, third, status="closed", outcome="support-started")).status_code == 200

"""Races that once changed what they should not, fired many times and counted (on PostgreSQL in CI).

- a melding sent while its consent is withdrawn: every accepted one ends withdrawn, its personal data gone;
- many status reports on one delivery at once: the status only moves forward, a retracted one stays so;
- a rejected delivery replayed from the dead letters reaches its recipient again, under its own message id;
- retries of one POST with one Idempotency-Key at the same moment: one melding, every answer its 202;
- operators routing one returned melding again at the same moment: it goes out once more, not twice;
- the JGZ and the wijkteam returning one melding at the same moment: both returns are kept;
- the sender cancelling a returned melding while an operator routes it again: whichever comes first, no
  recipient keeps it.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import aio_pika
import httpx

from shared.contracts.vocabulary import DeliveryStatus
from tests.e2e.flow import (
    RecipientQueue,
    admin,
    body_of,
    consented_patient,
    eventually,
    melding_body,
    new_org_id,
    put_gemeente,
    put_organisation,
    recipient,
    record_consent,
    send,
    sender,
)
from tests.support import Tokens

Clients = dict[str, httpx.AsyncClient]
ROUNDS = 60  # races of intake against withdrawal
AT_ONCE = 10


async def _jgz_for_amsterdam(system: Clients, tokens: Tokens) -> str:
    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109")])
    jgz = new_org_id()
    await put_organisation(system, tokens, jgz, "jgz", gemeenten=["GM0363"])
    return jgz


async def _race_intake_against_withdrawal(system: Clients, tokens: Tokens) -> str | None:
    """One consent, its melding and its withdrawal sent at the same moment. The melding's id if accepted."""
    consent_id, bsn = await consented_patient(system, tokens, types=["jgz"])
    sent, withdrawn = await asyncio.gather(
        send(system, tokens, melding_body(consent_id, bsn, recipient_types=["jgz"])),
        system["consent"].post(f"/v1/consents/{consent_id}/withdraw", headers=sender(tokens)),
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert sent.status_code in (202, 403), sent.text  # accepted before the withdrawal, or refused after it
    return sent.json()["id"] if sent.status_code == 202 else None


async def test_every_melding_accepted_while_its_consent_is_withdrawn_ends_withdrawn_without_personal_data(
    system: Clients, tokens: Tokens
) -> None:
    jgz = await _jgz_for_amsterdam(system, tokens)
    accepted: list[str] = []
    for _ in range(ROUNDS // AT_ONCE):
        results = await asyncio.gather(*(_race_intake_against_withdrawal(system, tokens) for _ in range(AT_ONCE)))
        accepted += [r for r in results if r]
    assert accepted, "no melding was accepted: the race was never run"

    async def stuck() -> list[str] | None:
        left = []
        for melding_id in accepted:
            melding = (await system["melding"].get(f"/v1/meldingen/{melding_id}", headers=sender(tokens))).json()
            done = (
                melding["status"] == "withdrawn"
                and melding["patient"] is None
                and melding["note"] is None
                and melding["contact"] is None
                and all(d["status"] == "retracted" for d in melding["deliveries"])
            )
            if not done:
                left.append(f"{melding_id}: {melding['status']}, patient kept: {melding['patient'] is not None}")
        return left or None

    async def settled() -> bool:
        return await stuck() is None

    try:
        await eventually(settled, timeout=60, interval=1)
    except AssertionError:
        left = await stuck() or []
        raise AssertionError(
            f"{len(left)} of {len(accepted)} accepted meldingen not withdrawn and purged: {left[:5]}"
        ) from None
    # Routing holds nothing of them either: each delivery it made was retracted.
    deliveries = (
        await system["routing"].get("/v1/deliveries", params={"limit": 100}, headers=recipient(tokens, jgz))
    ).json()["items"]
    assert all(d["status"] == "retracted" for d in deliveries), [d["status"] for d in deliveries]


async def _delivered(system: Clients, tokens: Tokens, jgz: str, count: int) -> tuple[list[str], list[str]]:
    """`count` meldingen to the JGZ, each for a patient of her own (one open melding per patient); their
    consents and the deliveries' ids."""
    consent_ids = []
    for _ in range(count):
        consent_id, bsn = await consented_patient(system, tokens, types=["jgz"])
        consent_ids.append(consent_id)
        sent = await send(system, tokens, melding_body(consent_id, bsn, recipient_types=["jgz"]))
        assert sent.status_code == 202, sent.text

    async def all_there() -> list[str] | None:
        page = (
            await system["routing"].get("/v1/deliveries", params={"limit": 100}, headers=recipient(tokens, jgz))
        ).json()["items"]
        return [d["delivery_id"] for d in page] if len(page) >= count else None

    return consent_ids, await eventually(all_there, timeout=30)


REPORTS = ("received", "contact_made", "closed")


async def test_concurrent_status_reports_never_move_a_delivery_back(system: Clients, tokens: Tokens) -> None:
    jgz = await _jgz_for_amsterdam(system, tokens)
    _, delivery_ids = await _delivered(system, tokens, jgz, 20)
    headers = recipient(tokens, jgz)
    rng = random.Random(7)

    async def post(delivery_id: str, status: str) -> tuple[str, httpx.Response]:
        return status, await system["routing"].post(
            f"/v1/deliveries/{delivery_id}/status", headers=headers, json={"status": status}
        )

    backwards = []
    for delivery_id in delivery_ids:
        answers = await asyncio.gather(*(post(delivery_id, rng.choice(REPORTS)) for _ in range(30)))
        assert all(r.status_code in (200, 409) for _, r in answers), [
            r.text for _, r in answers if r.status_code >= 500
        ]
        answered = max(DeliveryStatus(s).rank for s, r in answers if r.status_code == 200)
        final = (await system["routing"].get(f"/v1/deliveries/{delivery_id}", headers=headers)).json()["status"]
        if DeliveryStatus(final).rank < answered:
            backwards.append(delivery_id)
    assert not backwards, f"{len(backwards)} of {len(delivery_ids)} deliveries ended below a status answered 200"

    async def sender_agrees() -> bool:
        page = (await system["melding"].get("/v1/meldingen", params={"limit": 100}, headers=sender(tokens))).json()
        seen = {d["delivery_id"]: d["status"] for m in page["items"] for d in m["deliveries"]}
        routed = {
            d["delivery_id"]: d["status"]
            for d in (await system["routing"].get("/v1/deliveries", params={"limit": 100}, headers=headers)).json()[
                "items"
            ]
        }
        return seen == routed

    await eventually(sender_agrees, timeout=20)


async def test_reports_racing_a_retraction_leave_every_delivery_retracted_and_closed_to_reports(
    system: Clients, tokens: Tokens
) -> None:
    jgz = await _jgz_for_amsterdam(system, tokens)
    consent_ids, delivery_ids = await _delivered(system, tokens, jgz, 20)
    headers = recipient(tokens, jgz)
    rng = random.Random(11)
    reports = [
        system["routing"].post(f"/v1/deliveries/{d}/status", headers=headers, json={"status": rng.choice(REPORTS)})
        for d in delivery_ids
        for _ in range(8)
    ]
    withdrawals = [
        system["consent"].post(f"/v1/consents/{consent_id}/withdraw", headers=sender(tokens))
        for consent_id in consent_ids
    ]
    answers = await asyncio.gather(*withdrawals, *reports)
    assert all(a.status_code in (200, 409) for a in answers), [a.text for a in answers if a.status_code >= 500]

    async def all_retracted() -> bool:
        statuses = [
            (await system["routing"].get(f"/v1/deliveries/{d}", headers=headers)).json()["status"] for d in delivery_ids
        ]
        return all(s == "retracted" for s in statuses)

    await eventually(all_retracted, timeout=20)
    for delivery_id in delivery_ids:
        late = await system["routing"].post(
            f"/v1/deliveries/{delivery_id}/status", headers=headers, json={"status": "closed"}
        )
        assert late.status_code == 409, late.text


async def test_a_rejected_delivery_replayed_from_the_dead_letters_reaches_the_recipient_under_its_own_id(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel
) -> None:
    jgz = await _jgz_for_amsterdam(system, tokens)
    consent_id = await record_consent(system, tokens, types=["jgz"])
    assert (await send(system, tokens, melding_body(consent_id, recipient_types=["jgz"]))).status_code == 202
    queue = await amqp.get_queue(f"kansrijk.deliveries.{jgz}", ensure=False)
    first = await eventually(lambda: queue.get(no_ack=False, fail=False, timeout=5), timeout=20)
    await first.reject(requeue=False)  # the recipient's consumer could not take it: dead-lettered

    async def letter() -> dict[str, Any] | None:
        items = (await system["routing"].get("/v1/dead-letters", headers=admin(tokens))).json()["items"]
        return next((d for d in items if d["message_id"] == first.message_id), None)

    dead = await eventually(letter, timeout=20)
    assert dead["queue"] == f"kansrijk.deliveries.{jgz}"
    replays = await asyncio.gather(
        *(system["routing"].post(f"/v1/dead-letters/{dead['id']}/replay", headers=admin(tokens)) for _ in range(5))
    )
    assert [r.status_code for r in replays] == [200] * 5, [r.text for r in replays]
    again = await RecipientQueue(amqp, jgz).next()
    assert again.message_id == first.message_id and body_of(again) == body_of(first)
    assert await RecipientQueue(amqp, jgz).empty()  # five replays of one letter put it back once


async def test_retries_with_one_idempotency_key_at_once_make_one_melding_and_answer_it_every_time(
    system: Clients, tokens: Tokens
) -> None:
    """The fault suite's client retries a POST whose answer a killed service never sent, while the first try
    may still be running: the second try waited for the patient's lock and answered 409 (the open melding is
    its own) instead of the replay."""
    wrong = 0
    for _ in range(ROUNDS // 2):
        consent_id, bsn = await consented_patient(system, tokens)
        body, key = melding_body(consent_id, bsn), str(uuid.uuid4())
        answers = await asyncio.gather(*(send(system, tokens, body, key=key) for _ in range(3)))
        ids = {a.json().get("id") for a in answers if a.status_code == 202}
        wrong += any(a.status_code != 202 for a in answers) or len(ids) != 1
    assert wrong == 0, f"{wrong} of {ROUNDS // 2} rounds answered other than one melding's 202"


async def test_operators_routing_one_returned_melding_at_once_deliver_it_once(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel
) -> None:
    """A JGZ returns meldingen (no capacity); two operators — or one who clicks twice — route each again at the
    same moment, while the schedule's reroute loop runs: each melding goes out once more, not twice."""
    jgz = await _jgz_for_amsterdam(system, tokens)
    queue = RecipientQueue(amqp, jgz)
    meldingen: list[str] = []
    for _ in range(AT_ONCE):
        consent_id, bsn = await consented_patient(system, tokens, types=["jgz"])
        sent = await send(system, tokens, melding_body(consent_id, bsn, recipient_types=["jgz"]))
        assert sent.status_code == 202, sent.text
        meldingen.append(sent.json()["id"])
    for _ in meldingen:
        delivery_id = (await queue.next()).message_id
        returned = await system["routing"].post(
            f"/v1/deliveries/{delivery_id}/status",
            headers=recipient(tokens, jgz),
            json={"status": "returned", "reason": "no-capacity"},
        )
        assert returned.status_code == 200, returned.text

    async def all_waiting() -> bool:
        items = (await system["routing"].get("/v1/unroutable", headers=admin(tokens))).json()["items"]
        return {i["melding_id"] for i in items} >= set(meldingen) or None  # type: ignore[return-value]

    await eventually(all_waiting)
    answers = await asyncio.gather(
        *(
            system["routing"].post(f"/v1/unroutable/{melding_id}/reroute", headers=admin(tokens))
            for melding_id in meldingen
            for _ in range(3)
        )
    )
    assert {a.status_code for a in answers} <= {200, 404}, [a.text for a in answers if a.status_code not in (200, 404)]
    again = [body_of(await queue.next())["melding_id"] for _ in meldingen]
    assert sorted(again) == sorted(meldingen), "a melding went out twice, or not at all"
    assert await queue.empty()
    waiting = (await system["routing"].get("/v1/unroutable", headers=admin(tokens))).json()["items"]
    assert not {i["melding_id"] for i in waiting} & set(meldingen)  # routed: none waits any more


async def test_both_recipients_returning_one_melding_at_once_are_both_recorded(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel
) -> None:
    """The JGZ and the wijkteam send one melding back at the same moment: the operator sees both returns
    (and neither organisation gets it again by the directory), not the one that happened to commit last."""
    jgz = await _jgz_for_amsterdam(system, tokens)
    wijkteam = new_org_id()
    await put_organisation(system, tokens, wijkteam, "wijkteam", gemeenten=["GM0363"])
    meldingen: list[str] = []
    for _ in range(AT_ONCE):
        consent_id, bsn = await consented_patient(system, tokens)
        sent = await send(system, tokens, melding_body(consent_id, bsn, recipient_types=["jgz", "wijkteam"]))
        assert sent.status_code == 202, sent.text
        meldingen.append(sent.json()["id"])
    deliveries = {
        org_id: [(await RecipientQueue(amqp, org_id).next()).message_id for _ in meldingen]
        for org_id in (jgz, wijkteam)
    }
    answers = await asyncio.gather(
        *(
            system["routing"].post(
                f"/v1/deliveries/{delivery_id}/status",
                headers=recipient(tokens, org_id, org_type="jgz" if org_id == jgz else "wijkteam"),
                json={"status": "returned", "reason": "wrong-recipient"},
            )
            for org_id, ids in deliveries.items()
            for delivery_id in ids
        )
    )
    assert [a.status_code for a in answers] == [200] * len(answers), [a.text for a in answers]
    waiting = (await system["routing"].get("/v1/unroutable", headers=admin(tokens))).json()["items"]
    returns = {i["melding_id"]: {r["org_id"] for r in i["returned"]} for i in waiting}
    lost = [m for m in meldingen if returns.get(m) != {jgz, wijkteam}]
    assert lost == [], f"{len(lost)} of {len(meldingen)} meldingen lost a return"


async def test_a_cancellation_racing_the_operators_reroute_of_a_returned_melding_leaves_no_recipient_holding_it(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel
) -> None:
    """Found by attack (26 of 30): a melding its JGZ returned, cancelled by its sender while an operator routes
    it to another JGZ. When the reroute came first, the cancellation died on the unique index of live
    deliveries and the second JGZ kept her data. Whichever comes first now, nothing is left anywhere."""
    jgz = await _jgz_for_amsterdam(system, tokens)
    await put_gemeente(system, tokens, "GM0362", "Amstelveen", [("1180", "1189")])
    other = new_org_id()
    await put_organisation(system, tokens, other, "jgz", gemeenten=["GM0362"])
    queue, meldingen = RecipientQueue(amqp, jgz), []
    for _ in range(3):  # 3 x 10 races
        batch = []
        for _ in range(AT_ONCE):
            consent_id, bsn = await consented_patient(system, tokens, types=["jgz"])
            sent = await send(system, tokens, melding_body(consent_id, bsn, recipient_types=["jgz"]))
            assert sent.status_code == 202, sent.text
            batch.append(sent.json()["id"])
        for _ in batch:
            returned = await system["routing"].post(
                f"/v1/deliveries/{(await queue.next()).message_id}/status",
                headers=recipient(tokens, jgz),
                json={"status": "returned", "reason": "no-capacity"},
            )
            assert returned.status_code == 200, returned.text

        async def all_waiting(batch: list[str] = batch) -> bool:
            items = (await system["routing"].get("/v1/unroutable", headers=admin(tokens))).json()["items"]
            return {i["melding_id"] for i in items} >= set(batch)

        await eventually(all_waiting)
        answers = await asyncio.gather(
            *(
                request
                for melding_id in batch
                for request in (
                    system["routing"].post(
                        f"/v1/unroutable/{melding_id}/reroute", headers=admin(tokens), json={"org_id": other}
                    ),
                    system["melding"].post(
                        f"/v1/meldingen/{melding_id}/cancel", headers=sender(tokens), json={"reason": "other"}
                    ),
                )
            )
        )
        assert {a.status_code for a in answers} <= {200, 404}, [a.text for a in answers if a.status_code >= 300]
        meldingen += batch

    async def kept() -> list[str]:
        """The races whose melding a recipient still holds: not cancelled at the sender, or a delivery not
        returned or retracted, or routing's copy at the second JGZ not retracted and emptied."""
        at_other = {
            d["melding_id"]
            for d in (
                await system["routing"].get("/v1/deliveries", params={"limit": 100}, headers=recipient(tokens, other))
            ).json()["items"]
            if d["status"] != "retracted" or "patient" in d
        }
        held = []
        for melding_id in meldingen:
            view = (await system["melding"].get(f"/v1/meldingen/{melding_id}", headers=sender(tokens))).json()
            live = [d for d in view["deliveries"] if d["status"] not in ("returned", "retracted")]
            if view["status"] != "cancelled" or view["patient"] is not None or live or melding_id in at_other:
                held.append(f"{melding_id}: {view['status']}, live deliveries: {len(live)}")
        return held

    async def settled() -> bool:
        return not await kept()

    try:
        await eventually(settled, timeout=60, interval=1)
    except AssertionError:
        left = await kept()
        raise AssertionError(
            f"{len(left)} of {len(meldingen)} races left her data with a recipient: {left[:3]}"
        ) from None
    letters = (await system["routing"].get("/v1/dead-letters", headers=admin(tokens))).json()["items"]
    assert not [d for d in letters if d["correlation_id"] in meldingen]

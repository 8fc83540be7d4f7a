"""What the woman herself sees of a melding about her: who, when, to whom, what each received — and of a
cancelled or withdrawn melding only that it was."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

from services.melding.domain.model import Delivery, MeldingRecord, MeldingStatus, SenderRef
from services.melding.domain.patient_view import what_she_sees
from shared.contracts.vocabulary import DeliveryStatus

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
CONTENT = {"patient": {"bsn": "999999990"}, "risk_domains": ["verslaving", "financien-schulden"], "note": "n"}


def _record(status: MeldingStatus = MeldingStatus.delivered) -> MeldingRecord:
    record = MeldingRecord.accepted(
        melding_id="m1", sender=SenderRef("12345678", "verloskundige", "m.jansen"), consent_id="c1",
        content=CONTENT, at=AT,
    )  # fmt: skip
    return replace(record, status=status)


JGZ = Delivery(
    delivery_id="d1", org_id="555", org_name="GGD Amsterdam JGZ", recipient_type="jgz",
    status=DeliveryStatus.closed, updated_at=AT, risk_domains=("verslaving",), contact_at=date(2026, 12, 1),
    outcome="phb-done",
)  # fmt: skip


def test_she_sees_each_recipient_by_name_with_what_it_received_and_what_came_of_it() -> None:
    seen = what_she_sees(_record(), [JGZ])
    assert seen.content_shown and seen.sender_org_type == "verloskundige" and seen.sent_at == AT
    (jgz,) = seen.recipients
    assert (jgz.org_name, jgz.risk_domains, jgz.note) == ("GGD Amsterdam JGZ", ("verslaving",), "n")
    assert (jgz.contact_at, jgz.outcome) == (date(2026, 12, 1), "phb-done")
    assert not hasattr(seen, "sender_sub")  # the person at the sender is not hers to see


def test_a_withdrawn_or_cancelled_melding_shows_that_it_was_without_content() -> None:
    for status in (MeldingStatus.withdrawn, MeldingStatus.cancelled):
        seen = what_she_sees(_record(status), [replace(JGZ, status=DeliveryStatus.retracted)])
        assert seen.status == status.value and not seen.content_shown and seen.risk_domains == ()
        assert [(r.org_name, r.risk_domains, r.note, r.outcome) for r in seen.recipients] == [
            ("GGD Amsterdam JGZ", (), None, None)
        ]


def test_a_melding_past_retention_shows_no_content() -> None:
    seen = what_she_sees(replace(_record(), content=None), [JGZ])
    assert not seen.content_shown and seen.recipients[0].note is None

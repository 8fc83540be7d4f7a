"""What the pages say, from the services' answers: words instead of codes, names where known, no internal ids."""

from __future__ import annotations

from typing import Any

from services.portal.domain.her_view import access_log, consent_rows, melding_rows, organisation

CONSENT = {
    "id": "6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10", "patient": {"bsn": "999999990"}, "recipient_types": ["jgz"],
    "given_at": "2026-11-20", "valid_until": "2027-11-20", "risk_domains": ["financien-schulden"],
    "informed_about": ["purpose", "withdrawal"], "status": "withdrawn",
    "recorded_by": {"org_id": "12345678", "org_type": "verloskundige", "sub": "m.jansen"},
    "withdrawn_at": "2026-11-25T09:00:00Z", "withdrawn_by": {"type": "patient"},
}  # fmt: skip
MELDING: dict[str, Any] = {
    "id": "m-1", "sent_at": "2026-11-21T10:00:00Z", "sender": {"org_id": "12345678", "org_type": "verloskundige"},
    "status": "delivered", "content_shown": True, "risk_domains": ["verslaving"],
    "recipients": [{
        "org_id": "555", "org_name": "GGD Amsterdam JGZ", "recipient_type": "jgz", "status": "contact_made",
        "risk_domains": ["verslaving"], "note": "n", "contact_at": "2026-12-01", "outcome": None,
    }],
}  # fmt: skip


def record(
    actor_type: str, actor_id: str, action: str, resource: str, resource_id: str | None, at: str
) -> dict[str, Any]:
    return {
        "at": at, "service": "melding", "actor_org_id": actor_id, "actor_org_type": actor_type, "action": action,
        "resource_type": resource, "resource_id": resource_id, "outcome": "success",
    }  # fmt: skip


def test_a_consent_reads_in_words_and_says_she_withdrew_it_herself() -> None:
    (row,) = consent_rows([CONSENT])
    assert row.recipients == ["jeugdgezondheidszorg (JGZ)"] and row.risk_domains == ["geld en schulden"]
    assert row.status == "Ingetrokken" and row.withdrawn_by_her and not row.can_withdraw
    assert row.recorded_on == "20-11-2026" and row.withdrawn_on == "25-11-2026"
    assert row.recorded_by == "Verloskundige (organisatienummer 12345678)"  # never the person (`sub`)


def test_a_melding_names_each_recipient_with_what_it_received() -> None:
    (row,) = melding_rows([MELDING])
    (jgz,) = row.recipients
    assert (jgz.name, jgz.status, jgz.risk_domains, jgz.contact_on) == (
        "GGD Amsterdam JGZ", "Heeft contact met u gehad", ["verslaving"], "01-12-2026",
    )  # fmt: skip


def test_her_access_log_names_organisations_summarises_the_platform_and_leaves_out_her_own_views() -> None:
    records = [
        record("verloskundige", "12345678", "create", "consent", "c-1", "2026-11-20T10:00:00Z"),
        record("service", "kansrijk-melding", "check", "consent", "c-1", "2026-11-21T10:00:01Z"),
        record("service", "kansrijk-routing", "deliver", "melding", "m-1", "2026-11-21T10:00:02Z"),
        record("service", "kansrijk-routing", "create", "melding", "m-1", "2026-11-21T10:00:03Z"),
        record("jgz", "555", "read", "delivery", "d-1", "2026-11-22T08:00:00Z"),
        record("patient", "patient", "read", "melding", "m-1", "2026-11-23T08:00:00Z"),
        record("patient", "patient", "withdraw", "consent", "c-1", "2026-11-25T09:00:00Z"),
    ]
    log = access_log(records, [MELDING], complete=True)
    assert [(a.who, a.what) for a in log.accesses] == [
        ("Verloskundige (organisatienummer 12345678)", "legde vast uw toestemming"),
        ("GGD Amsterdam JGZ", "bekeek de melding over u"),
        ("U zelf", "trok in uw toestemming"),
    ]
    assert {(s.about, s.count) for s in log.automatic} == {
        ("De melding van 21-11-2026", 2), ("Uw toestemming en de meldingen", 1),
    }  # fmt: skip
    shown = repr(log)
    assert "m-1" not in shown and "d-1" not in shown and "c-1" not in shown  # no internal ids


def test_an_organisation_without_a_known_name_is_named_by_kind_and_number() -> None:
    assert organisation("wijkteam", "777", {}) == "Wijkteam (organisatienummer 777)"
    assert organisation("wijkteam", "777", {"777": "Buurtteam Centrum"}) == "Buurtteam Centrum"

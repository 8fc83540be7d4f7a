"""The console's rules: roles to scopes at sign-in, and the waiting meldingen as an operator reads them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.portal.config import PortalSettings
from services.portal.domain.console import (
    DEFAULT_ROLE_SCOPES,
    FormError,
    NoAccess,
    Staff,
    candidates,
    console_access,
    duration_words,
    figures_csv,
    figures_view,
    form_prefill,
    organisation_rows,
    reactivated,
    region_choices,
    route_map_from_form,
    route_map_table,
    still_waiting,
    waited,
    waiting_list,
)
from shared.figures_nl import area, period_end, period_name
from tests.unit.portal.test_views import _production

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def access(claims: dict[str, Any]) -> Staff | NoAccess:
    return console_access(claims, roles_claim="roles", org_claim="org_id", role_scopes=DEFAULT_ROLE_SCOPES)


def test_roles_map_to_scopes_and_name_the_person_and_her_organisation() -> None:
    staff = access({"sub": "abc", "org_id": "12345678", "name": "Fatima", "roles": ["beheerder", "coordinator"]})
    assert staff == Staff("abc", "12345678", "Fatima", frozenset({"routing:admin", "figures:read"}))
    assert Staff.from_session(staff.as_session()) == staff


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": "abc", "org_id": "1", "roles": []}, "no-role"),
        ({"sub": "abc", "org_id": "1", "roles": ["unknown", 7]}, "no-role"),
        ({"sub": "abc", "org_id": "1", "roles": {"beheerder": True}}, "no-role"),
        ({"sub": "abc", "org_id": "1"}, "no-role"),
        ({"sub": "abc", "roles": ["beheerder"]}, "no-organisation"),
        ({"sub": "abc", "org_id": "a b", "roles": ["beheerder"]}, "no-organisation"),
        ({"org_id": "1", "roles": ["beheerder"]}, "no-subject"),
    ],
)
def test_without_a_known_role_an_organisation_or_a_subject_no_access(claims: dict[str, Any], reason: str) -> None:
    assert access(claims) == NoAccess(reason)


def test_a_role_string_separated_by_spaces_or_commas_is_read_and_a_mapping_cannot_grant_other_scopes() -> None:
    staff = access({"sub": "abc", "org_id": "1", "roles": "coordinator, privacy-officer"})
    assert isinstance(staff, Staff) and staff.scopes == {"figures:read", "audit:read"}
    wide = console_access(
        {"sub": "abc", "org_id": "1", "roles": ["x"]},
        roles_claim="roles",
        org_claim="org_id",
        role_scopes={"x": ["patient:self", "delivery:read"]},
    )
    assert wide == NoAccess("no-role")


def test_waited_in_words() -> None:
    assert waited(NOW - timedelta(minutes=1), NOW) == "1 minuut"
    assert waited(NOW - timedelta(hours=5), NOW) == "5 uur"
    assert waited(NOW - timedelta(days=3, hours=2), NOW) == "3 dagen"
    assert waited(NOW + timedelta(minutes=5), NOW) == "0 minuten"


UNROUTABLE = {
    "melding_id": "m-1",
    "gemeente_code": "GM0363",
    "gemeente_name": "Amsterdam",
    "requested_types": ["jgz", "wijkteam"],
    "unroutable_types": ["wijkteam"],
    "returned": [
        {
            "recipient_type": "jgz",
            "org_id": "111",
            "org_name": "GGD Amsterdam JGZ",
            "reason": "wrong-recipient",
            "returned_at": "2026-12-06T12:00:00+00:00",
        }
    ],
    "waiting_since": "2026-12-01T12:00:00+00:00",
}
OVERDUE = {
    "delivery_id": "d-1",
    "melding_id": "m-2",
    "org_id": "222",
    "org_name": "Wijkteam Noord",
    "recipient_type": "wijkteam",
    "gemeente_code": "GM0363",
    "gemeente_name": "Amsterdam",
    "contact_due_at": "2026-12-05T12:00:00+00:00",
    "status": "received",
}


def test_unroutable_returned_and_overdue_in_one_list_with_names_why_and_how_long() -> None:
    rows = waiting_list([UNROUTABLE], [OVERDUE], NOW)
    assert [(r.kind, r.recipient_type) for r in rows] == [
        ("unroutable", "wijkteam"),
        ("overdue", "wijkteam"),
        ("returned", "jgz"),
    ]
    unroutable, overdue, returned = rows
    assert unroutable.gemeente == "Amsterdam (GM0363)" and unroutable.waited == "6 dagen"
    assert "Geen actieve organisatie" in unroutable.why
    assert returned.why == "Teruggestuurd door GGD Amsterdam JGZ op 06-12-2026 12:00: niet de juiste ontvanger."
    assert returned.waited == "24 uur" and returned.can_send  # since it was returned, not since it was routed
    assert "Wijkteam Noord" in overdue.why and not overdue.can_send


def test_the_picker_offers_active_organisations_of_the_type_serving_the_gemeente_never_one_that_returned_it() -> None:
    organisations = [
        {"org_id": "111", "name": "GGD Amsterdam JGZ", "type": "jgz", "active": True, "gemeenten": ["GM0363"]},
        {"org_id": "333", "name": "JGZ Zuid", "type": "jgz", "active": True, "gemeenten": ["GM0363"]},
        {"org_id": "444", "name": "JGZ oud", "type": "jgz", "active": False, "gemeenten": ["GM0363"]},
        {"org_id": "555", "name": "JGZ Amstelveen", "type": "jgz", "active": True, "gemeenten": ["GM0362"]},
        {"org_id": "666", "name": "Wijkteam Oost", "type": "wijkteam", "active": True, "gemeenten": ["GM0363"]},
        {"org_id": "777", "name": "JGZ Centrum", "type": "jgz", "active": True, "gemeenten": [],
         "postcode_ranges": [{"from": "1051", "to": "1060"}]},
        {"org_id": "888", "name": "JGZ Diemen", "type": "jgz", "active": True, "gemeenten": [],
         "postcode_ranges": [{"from": "1110", "to": "1112"}]},
    ]  # fmt: skip
    assert [o["org_id"] for o in candidates(UNROUTABLE, "jgz", organisations, [{"from": "1011", "to": "1109"}])] == [
        "777",
        "333",
    ]
    assert [o["org_id"] for o in candidates(UNROUTABLE, "jgz", organisations)] == ["333"]
    assert [o["org_id"] for o in candidates(UNROUTABLE, "wijkteam", organisations)] == ["666"]


DOMAINS = ("verslaving", "huisvesting", "overig")
TYPES = ("jgz", "wijkteam")


def test_a_route_map_as_a_table_of_domain_by_type_with_note_and_deadlines_in_words() -> None:
    version = {
        "effective_from": "2027-01-01",
        "recipients": {
            "jgz": {"risk_domains": "all", "note": True},
            "wijkteam": {"risk_domains": ["huisvesting"], "note": False},
        },
        "contact_deadline": {"regular": "P14D", "urgent": "PT12H"},
    }  # fmt: skip
    table = route_map_table(version, DOMAINS, TYPES)
    assert [(r.risk_domain, r.receives) for r in table.rows] == [
        ("verslaving", {"jgz": True, "wijkteam": False}),
        ("huisvesting", {"jgz": True, "wijkteam": True}),
        ("overig", {"jgz": True, "wijkteam": False}),
    ]
    assert table.note == {"jgz": True, "wijkteam": False}
    assert table.deadlines == {"gewoon": "14 dagen", "spoed": "12 uur"}
    default = route_map_table(None, DOMAINS, TYPES)
    assert default.effective_from is None and all(all(r.receives.values()) for r in default.rows)
    assert duration_words("P1DT2H") == "1 dag en 2 uur" and duration_words("nonsense") == "nonsense"


def test_the_edit_form_makes_the_apis_body_and_back() -> None:
    form = {
        "effective_from": ["2027-01-01"],
        "jgz:receives": ["1"], "jgz:note": ["1"],
        "jgz:verslaving": ["1"], "jgz:huisvesting": ["1"], "jgz:overig": ["1"],
        "wijkteam:receives": ["1"], "wijkteam:huisvesting": ["1"],
        "deadline:regular": ["10"], "deadline:urgent": ["1"],
    }  # fmt: skip
    body = route_map_from_form(form, DOMAINS, TYPES)
    assert body == {
        "effective_from": "2027-01-01",
        "recipients": {
            "jgz": {"risk_domains": "all", "note": True},
            "wijkteam": {"risk_domains": ["huisvesting"], "note": False},
        },
        "contact_deadline": {"regular": "P10D", "urgent": "P1D"},
    }  # fmt: skip
    values = form_prefill(body, DOMAINS, TYPES)
    assert values["types"]["wijkteam"] == {"receives": True, "note": False, "domains": {"huisvesting"}}
    assert values["deadline"] == {"regular": 10, "urgent": 1}
    assert route_map_from_form({**form, "deadline:urgent": ["-1"]}, DOMAINS, TYPES) == FormError(
        "deadline:urgent", "Vul de termijn bij spoed in als een aantal dagen (1 tot 365)."
    )
    assert isinstance(route_map_from_form({**form, "effective_from": [""]}, DOMAINS, TYPES), FormError)
    without_wijkteam = route_map_from_form({k: v for k, v in form.items() if k != "wijkteam:receives"}, DOMAINS, TYPES)
    assert isinstance(without_wijkteam, dict) and set(without_wijkteam["recipients"]) == {"jgz"}


def test_the_directory_by_name_searchable_with_coverage_by_gemeente_name_and_postcode_range() -> None:
    organisations = [
        {"org_id": "2", "name": "JGZ Zuid", "type": "jgz", "active": True, "gemeenten": [],
         "postcode_ranges": [{"from": "1051", "to": "1109"}]},
        {"org_id": "1", "name": "GGD Amsterdam JGZ", "type": "jgz", "active": False, "gemeenten": ["GM0363"],
         "postcode_ranges": [], "delivery_mode": "full", "queue": "q"},
    ]  # fmt: skip
    rows = organisation_rows(organisations, {"GM0363": "Amsterdam"})
    assert [(r.name, r.coverage, r.active) for r in rows] == [
        ("GGD Amsterdam JGZ", "Amsterdam (GM0363)", False),
        ("JGZ Zuid", "postcodes 1051 tot 1109", True),
    ]
    assert [r.org_id for r in organisation_rows(organisations, {"GM0363": "Amsterdam"}, "amsterdam")] == ["1"]
    assert [r.org_id for r in organisation_rows(organisations, {}, "ZUID")] == ["2"]
    assert organisation_rows(organisations, {}, "wijkteam") == []
    assert reactivated(organisations[1]) == {
        "name": "GGD Amsterdam JGZ", "type": "jgz", "gemeenten": ["GM0363"], "postcode_ranges": [],
        "delivery_mode": "full", "active": True,
    }  # fmt: skip


def period(label: str, meldingen: int | None, **parts: object) -> dict[str, object]:
    """A period of `GET /v1/figures`: every breakdown empty (hidden) unless given."""
    hidden = {"p50": None, "p90": None}
    return {
        "period": label, "meldingen": meldingen, "by_sender_type": {}, "by_risk_domain": {}, "by_status": {},
        "outcomes": {}, "by_recipient_type": {"jgz": None, "wijkteam": None}, "returned": None,
        "contact_within_deadline": None, "days_to_contact": hidden, **parts,
    }  # fmt: skip


FIGURES: dict[str, Any] = {
    "gemeente": {"code": "GM0363", "name": "Amsterdam"},
    "from": "2026-10-01",
    "to": "2026-12-31",
    "interval": "month",
    "suppression_threshold": 10,
    "periods": [
        period("2026-10", 12, by_recipient_type={"jgz": 12, "wijkteam": 0}, returned=0, contact_within_deadline=0.5,
               days_to_contact={"p50": 4.0, "p90": None}),
        period("2026-11", None),
        period("2026-12", 0, by_recipient_type={"jgz": 0, "wijkteam": 0}, returned=0),
    ],
}  # fmt: skip


def test_figures_show_a_true_0_as_0_and_a_hidden_one_as_x_with_a_total_and_the_unfinished_period_marked() -> None:
    view = figures_view(FIGURES, date(2026, 12, 7))
    assert [(c.period, c.unfinished) for c in view.columns] == [
        ("okt 2026", False),
        ("nov 2026", False),
        ("dec 2026*", True),
    ]
    sections = dict(view.sections)
    assert sections["Totaal"] == {"Meldingen": ["12", "x", "0"]}
    assert sections["Gevraagde ontvanger"] == {"JGZ": ["12", "x", "0"], "Wijkteam": ["0", "x", "0"]}
    assert sections["Contact"]["Contact binnen de termijn"] == ["50%", "x", "x"]
    assert sections["Contact"]["Dagen tot contact (mediaan)"] == ["4", "x", "x"]
    assert view.total == "ten minste 12" and not view.nothing_shown
    assert "Gemeente" not in sections  # a gemeente's own figures: no breakdown by gemeente
    assert [c.name for c in view.charts] == ["afzenders", "risicodomeinen", "stand", "contact", "uitkomsten"]
    shown = figures_view({**FIGURES, "periods": [FIGURES["periods"][0], FIGURES["periods"][2]]}, date(2027, 1, 1))
    assert shown.total == "12" and not any(c.unfinished for c in shown.columns)
    hidden = figures_view({**FIGURES, "periods": [FIGURES["periods"][1]]}, date(2027, 1, 1))
    assert hidden.total == "x" and hidden.nothing_shown
    country = figures_view(
        {**FIGURES, "gemeente": None, "gemeente_names": {"GM0363": "Amsterdam"},
         "periods": [period("2027", 40, by_gemeente={"GM0363": 31}, without_gemeente=None)]},
        date(2027, 3, 1),
    )  # fmt: skip
    assert dict(country.sections)["Gemeente"] == {
        "Amsterdam (GM0363)": ["31"], "Zonder gemeente (adres niet gevonden)": ["x"]
    }  # fmt: skip
    assert country.charts[-1].name == "gemeenten" and country.columns[0].period == "2027*"
    assert period_end("2026-Q4") == date(2026, 12, 31) and period_end("2027") == date(2027, 12, 31)
    assert period_end("2027-02") == date(2027, 2, 28) and period_name("2026-Q4") == "K4 2026"
    assert period_name("2027-03") == "mrt 2027" and period_name("2027-03", date(2027, 3, 31)) == "mrt 2027*"


def test_why_a_rerouted_melding_still_waits_is_said_in_dutch_per_type_from_the_apis_codes() -> None:
    returned = still_waiting([{"recipient_type": "jgz", "reason": "returned-by-all"}], "Amsterdam")
    assert returned == [
        "Voor jeugdgezondheidszorg (JGZ): elke actieve organisatie van dit type die voor gemeente Amsterdam werkt, "
        "heeft de melding teruggestuurd als niet de juiste ontvanger. Kies zelf een organisatie, of registreer de "
        "juiste bij Organisaties."
    ]
    (nobody, other) = still_waiting(
        [{"recipient_type": "wijkteam", "reason": "no-organisation"}, {"recipient_type": "jgz", "reason": "new"}],
        None,
    )
    assert nobody.startswith("Voor wijkteam: er is geen actieve organisatie van dit type die voor dit adres (de ")
    assert other == "Voor jeugdgezondheidszorg (JGZ): er is nog geen organisatie van dit type voor dit adres " + (
        "(de postcode ligt in geen bekende gemeente)."
    )
    assert still_waiting([], "Amsterdam") == ["er is nog geen organisatie gevonden."]
    for said in (*returned, nobody, other):
        assert not any(word in said for word in ("every", "organisation", "serves", "register", "org_id"))


def test_figures_as_csv_keep_x_and_0_apart() -> None:
    lines = figures_csv(FIGURES).splitlines()
    assert lines[0] == "periode,onderdeel,sleutel,waarde"
    assert "2026-10,by_recipient_type,wijkteam,0" in lines and "2026-11,meldingen,,x" in lines
    assert "2026-10,days_to_contact,p90,x" in lines


@pytest.mark.parametrize("issuer", ["http://login.example.nl", "https://localhost", "https://127.0.0.1:8443"])
def test_production_refuses_a_console_provider_that_is_not_real(tmp_path: Path, issuer: str) -> None:
    with pytest.raises(ValueError, match="KANSRIJK_CONSOLE_OIDC_ISSUER"):
        PortalSettings(**_production(tmp_path), oidc_issuer="https://digid.example.nl", console_oidc_issuer=issuer)
    with pytest.raises(ValueError, match="KANSRIJK_CONSOLE_OIDC_CLIENT_SECRET"):
        PortalSettings(
            **_production(tmp_path), oidc_issuer="https://digid.example.nl", console_oidc_issuer="https://id.example.nl"
        )


def test_a_role_mapping_cannot_grant_a_scope_the_console_does_not_act_with(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="KANSRIJK_CONSOLE_ROLE_SCOPES"):
        PortalSettings(data_dir=tmp_path, console_role_scopes={"beheerder": ["routing:admin", "patient:self"]})
    assert PortalSettings(data_dir=tmp_path).console_role_scopes["coordinator"] == ["figures:read"]


def test_a_regions_figures_break_down_by_its_gemeenten_and_its_csv_only_has_what_applies() -> None:
    region = {
        **FIGURES, "gemeente": None, "region": {"code": "GG3406", "name": "GGD Amsterdam"},
        "gemeente_names": {"GM0363": "Amsterdam", "GM0437": "Ouder-Amstel"},
        "periods": [period("2027", 40, by_gemeente={"GM0363": 31, "GM0437": None}, without_gemeente=None)],
    }  # fmt: skip
    view = figures_view(region, date(2027, 3, 1))
    # Its gemeenten by name; no line for the meldingen without a gemeente (the country's alone).
    assert dict(view.sections)["Gemeente"] == {"Amsterdam (GM0363)": ["31"], "Ouder-Amstel (GM0437)": ["x"]}
    assert view.charts[-1].name == "gemeenten" and area(region) == "GGD Amsterdam (GG3406)"
    lines = figures_csv(region).splitlines()
    assert "2027,by_gemeente,GM0363,31" in lines and "2027,by_gemeente,GM0437,x" in lines
    assert not any(",without_gemeente," in line for line in lines)
    gemeente = figures_csv({**FIGURES, "periods": [period("2027", 12, by_gemeente=None, without_gemeente=None)]})
    assert not any(",by_gemeente," in line or ",without_gemeente," in line for line in gemeente.splitlines())


def test_the_region_picker_lists_the_regions_by_name_as_a_dutch_reader_sorts_them() -> None:
    regions = [
        {"code": "GG7206", "name": "GGD Fryslân", "gemeenten": ["GM0080"]},
        {"code": "GG4816", "name": "Dienst Gezondheid & Jeugd ZHZ", "gemeenten": ["GM0505"]},
        {"code": "GG3406", "name": "GGD Amsterdam", "gemeenten": ["GM0363"]},
        {"code": "GG2209", "name": "GGD Flevoland", "gemeenten": ["GM0034"]},
    ]
    assert region_choices(regions) == [
        ("GG3406", "GGD Amsterdam"), ("GG4816", "Dienst Gezondheid & Jeugd ZHZ"), ("GG2209", "GGD Flevoland"),
        ("GG7206", "GGD Fryslân"),
    ]  # fmt: skip

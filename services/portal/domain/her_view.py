"""What the pages show her, in plain Dutch, from what the services answered. No I/O here.

The services answer in codes (`jgz`, `financien-schulden`, `contact_made`); she reads words. Her access log
lists what organisations did with her data (by name where the platform knows it), summarises the platform's
own automatic steps per melding, and never shows an internal id, a person's name at an organisation or a
record of anyone else (the services already answer only hers).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

AMSTERDAM = ZoneInfo("Europe/Amsterdam")

ORG_TYPES = {
    "huisarts": "huisarts",
    "verloskundige": "verloskundige",
    "gynaecoloog": "gynaecoloog",
    "volwassenen-ggz": "ggz voor volwassenen",
    "verslavingszorg": "verslavingszorg",
    "jgz": "jeugdgezondheidszorg (JGZ)",
    "wijkteam": "wijkteam",
    "operator": "beheerder van het platform",
    "service": "het platform zelf",
    "patient": "u zelf",
}
RISK_DOMAINS = {
    "verslaving": "verslaving",
    "psychiatrie": "psychische klachten",
    "lvb": "licht verstandelijke beperking",
    "medisch-obstetrisch": "medische zorg rond de zwangerschap",
    "huiselijk-geweld": "huiselijk geweld",
    "financien-schulden": "geld en schulden",
    "huisvesting": "wonen",
    "sociaal-netwerk": "mensen om u heen",
    "opvoeding-eerdere-kinderen": "opvoeding van eerdere kinderen",
    "jong-ouderschap": "jong ouderschap",
    "ongeplande-zwangerschap": "ongeplande zwangerschap",
    "overig": "iets anders",
}
INFORMED_ABOUT = {
    "purpose": "waarvoor de melding is",
    "recipients": "wie de melding krijgt",
    "data": "welke gegevens worden gedeeld",
    "withdrawal": "hoe u uw toestemming intrekt",
    "phb": "het prenataal huisbezoek",
}
CONSENT_STATUS = {"active": "Geldig", "withdrawn": "Ingetrokken", "expired": "Verlopen"}
MELDING_STATUS = {
    "accepted": "Ontvangen door het platform",
    "delivered": "Doorgestuurd",
    "unroutable": "Wacht op een organisatie bij u in de buurt",
    "not_delivered": "Niet doorgestuurd",
    "cancelled": "Teruggenomen door de zorgverlener",
    "withdrawn": "Ingetrokken, omdat de toestemming is ingetrokken",
}
DELIVERY_STATUS = {
    "queued": "Klaargezet",
    "received": "Ontvangen",
    "contact_made": "Heeft contact met u gehad",
    "closed": "Afgerond",
    "returned": "Teruggestuurd",
    "retracted": "Teruggetrokken",
}
OUTCOMES = {
    "phb-done": "Prenataal huisbezoek gedaan",
    "support-started": "Hulp is gestart",
    "declined": "U wilde geen hulp",
    "no-contact": "Geen contact gekregen",
    "moved": "U bent verhuisd",
    "other": "Anders",
    "not-reported": "Niet doorgegeven",
}
ACTIONS = {
    "create": "legde vast",
    "read": "bekeek",
    "update": "wijzigde",
    "withdraw": "trok in",
    "search": "zocht op",
    "check": "controleerde",
    "deliver": "stuurde door",
    "retract": "trok terug",
    "status-change": "gaf een nieuwe stand door van",
    "export": "maakte een kopie van",
}
RESOURCES = {
    "consent": "uw toestemming",
    "melding": "de melding over u",
    "delivery": "de melding over u",
    "melding-routing": "aan wie de melding over u ging",  # an operator sent it on to an organisation
    "audit_log": "het overzicht van wie uw gegevens zag",
}


def words(mapping: dict[str, str], code: str | None) -> str:
    """The Dutch words for a code; the code itself if it is new to the portal (better than nothing)."""
    if code is None:
        return ""
    return mapping.get(code, code)


def local_day(value: str | None) -> str:
    """`2026-11-20` or an ISO instant as `20-11-2026` (Amsterdam time)."""
    if not value:
        return ""
    if "T" in value:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(AMSTERDAM)
        return moment.strftime("%d-%m-%Y")
    return date.fromisoformat(value).strftime("%d-%m-%Y")


def local_time(value: str) -> str:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(AMSTERDAM)
    return moment.strftime("%d-%m-%Y %H:%M")


@dataclass(frozen=True)
class ConsentRow:
    id: str  # used only to address the withdrawal; never printed on a page
    recorded_by: str
    recorded_on: str
    recipients: list[str]
    risk_domains: list[str]  # empty: every domain
    informed_about: list[str]
    valid_until: str
    status: str
    can_withdraw: bool
    withdrawn_on: str
    withdrawn_by_her: bool


def consent_rows(consents: list[dict[str, Any]]) -> list[ConsentRow]:
    return [
        ConsentRow(
            id=c["id"],
            recorded_by=organisation(c["recorded_by"]["org_type"], c["recorded_by"]["org_id"], {}),
            recorded_on=local_day(c["given_at"]),
            recipients=[words(ORG_TYPES, t) for t in c["recipient_types"]],
            risk_domains=[words(RISK_DOMAINS, d) for d in c["risk_domains"] or []],
            informed_about=[words(INFORMED_ABOUT, i) for i in c["informed_about"]],
            valid_until=local_day(c["valid_until"]),
            status=words(CONSENT_STATUS, c["status"]),
            can_withdraw=c["status"] == "active",
            withdrawn_on=local_day(c.get("withdrawn_at")),
            withdrawn_by_her=(c.get("withdrawn_by") or {}).get("type") == "patient",
        )
        for c in consents
    ]


@dataclass(frozen=True)
class RecipientRow:
    name: str
    kind: str
    status: str
    risk_domains: list[str]
    note: str | None
    contact_on: str
    outcome: str


@dataclass(frozen=True)
class MeldingRow:
    sent_on: str
    sender: str
    status: str
    content_shown: bool
    recipients: list[RecipientRow]


def melding_rows(meldingen: list[dict[str, Any]]) -> list[MeldingRow]:
    return [
        MeldingRow(
            sent_on=local_day(m["sent_at"]),
            sender=organisation(m["sender"]["org_type"], m["sender"]["org_id"], {}),
            status=words(MELDING_STATUS, m["status"]),
            content_shown=m["content_shown"],
            recipients=[
                RecipientRow(
                    name=r["org_name"],
                    kind=words(ORG_TYPES, r["recipient_type"]),
                    status=words(DELIVERY_STATUS, r["status"]),
                    risk_domains=[words(RISK_DOMAINS, d) for d in r["risk_domains"]],
                    note=r["note"],
                    contact_on=local_day(r["contact_at"]),
                    outcome=words(OUTCOMES, r["outcome"]),
                )
                for r in m["recipients"]
            ],
        )
        for m in meldingen
    ]


def organisation(org_type: str, org_id: str, names: dict[str, str]) -> str:
    """An organisation as she can recognise it: its name where the platform knows it, else its kind and number."""
    if org_id in names:
        return names[org_id]
    if org_type in ("service", "patient", "operator"):
        return words(ORG_TYPES, org_type).capitalize()
    return f"{words(ORG_TYPES, org_type).capitalize()} (organisatienummer {org_id})"


@dataclass(frozen=True)
class AccessRow:
    when: str
    who: str
    what: str


@dataclass(frozen=True)
class AutomaticSteps:
    about: str  # "De melding van 20-11-2026" or "Uw toestemming"
    count: int


@dataclass(frozen=True)
class AccessLog:
    accesses: list[AccessRow]  # organisations (and her own withdrawals), oldest first
    automatic: list[AutomaticSteps]  # the platform's own processing, per melding
    complete: bool


def access_log(records: list[dict[str, Any]], meldingen: list[dict[str, Any]], *, complete: bool) -> AccessLog:
    """Her access log from the services' records: organisations' accesses one by one; the platform's own steps
    counted per melding; her own page views left out (she knows them), her withdrawals kept."""
    names = {r["org_id"]: r["org_name"] for m in meldingen for r in m["recipients"] if r.get("org_id")}
    sent_on = {m["id"]: local_day(m["sent_at"]) for m in meldingen}
    accesses: list[AccessRow] = []
    automatic: Counter[str] = Counter()
    for record in sorted(records, key=lambda r: r["at"]):
        actor_type = record["actor_org_type"]
        if actor_type == "patient" and record["action"] != "withdraw":
            continue
        if actor_type == "service":
            about = sent_on.get(record["resource_id"] or "")
            automatic[f"De melding van {about}" if about else "Uw toestemming en de meldingen"] += 1
            continue
        who = organisation(actor_type, record["actor_org_id"], names)
        what = f"{words(ACTIONS, record['action'])} {words(RESOURCES, record['resource_type'])}"
        if record["outcome"] != "success" and not record["outcome"].startswith("allowed"):
            what += " (geweigerd)"
        accesses.append(AccessRow(when=local_time(record["at"]), who=who, what=what))
    return AccessLog(
        accesses=accesses,
        automatic=[AutomaticSteps(about, count) for about, count in sorted(automatic.items())],
        complete=complete,
    )

"""The console's rules (/beheer/): who may in with which scopes, and the waiting meldingen as an operator reads
them. No I/O here.

A person signs in with her own organisation's provider; the roles in a configured claim map to the platform's
scopes. The pages then call the services with a short-lived token naming her (`sub`) and her organisation, so
every audited action names her as the actor.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The scopes the console can act with, and the roles that grant them by default.
CONSOLE_SCOPES = frozenset({"routing:admin", "figures:read", "audit:read"})
DEFAULT_ROLE_SCOPES: dict[str, tuple[str, ...]] = {
    "beheerder": ("routing:admin",),  # route maps, organisations, waiting meldingen, dead letters
    "coordinator": ("figures:read",),  # the programme figures
    "privacy-officer": ("audit:read",),  # the access log
}
# The console acts as the coalition's operator: `routing:admin` is held by operators only.
CONSOLE_ORG_TYPE = "operator"
ORG_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
SUB = re.compile(r"^[\x21-\x7e]{1,200}$")


@dataclass(frozen=True)
class Staff:
    sub: str
    org_id: str
    name: str
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        return scope in self.scopes

    def as_session(self) -> dict[str, Any]:
        return {"sub": self.sub, "org_id": self.org_id, "name": self.name, "scopes": sorted(self.scopes)}

    @classmethod
    def from_session(cls, data: Any) -> Staff | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(str(data["sub"]), str(data["org_id"]), str(data["name"]), frozenset(data["scopes"]))
        except (KeyError, TypeError):
            return None


@dataclass(frozen=True)
class NoAccess:
    reason: str  # "no-role" | "no-organisation" | "no-subject"


def _roles(value: Any) -> list[str]:
    """A roles claim as providers send it: a list of strings (Entra ID `roles`, Keycloak mapped), or one string
    with the roles separated by spaces or commas."""
    if isinstance(value, str):
        return [r for r in re.split(r"[\s,]+", value) if r]
    if isinstance(value, list):
        return [r for r in value if isinstance(r, str)]
    return []


def console_access(
    claims: Mapping[str, Any],
    *,
    roles_claim: str,
    org_claim: str,
    role_scopes: Mapping[str, Iterable[str]],
) -> Staff | NoAccess:
    """Whether the verified ID token's claims let a person into the console, and with which scopes."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not SUB.fullmatch(sub):
        return NoAccess("no-subject")
    scopes = frozenset(
        scope
        for role in _roles(claims.get(roles_claim))
        for scope in role_scopes.get(role, ())
        if scope in CONSOLE_SCOPES
    )
    if not scopes:
        return NoAccess("no-role")
    org_id = claims.get(org_claim)
    if not isinstance(org_id, str) or not ORG_ID.fullmatch(org_id):
        return NoAccess("no-organisation")
    name = claims.get("name")
    return Staff(
        sub=sub,
        org_id=org_id,
        name=name.strip()[:100] if isinstance(name, str) and name.strip() else sub,
        scopes=scopes,
    )


# --- waiting meldingen ------------------------------------------------------------------------------------------

TYPE_NAMES = {
    "jgz": "jeugdgezondheidszorg (JGZ)",
    "wijkteam": "wijkteam",
}
RETURN_REASONS = {
    "wrong-recipient": "niet de juiste ontvanger",
}


def type_name(recipient_type: str) -> str:
    return TYPE_NAMES.get(recipient_type, recipient_type)


def _date(moment: datetime) -> str:
    return moment.strftime("%d-%m-%Y %H:%M")


def waited(since: datetime, now: datetime) -> str:
    """How long, in words: minutes under an hour, hours under two days, then days."""
    seconds = max(0, int((now - since).total_seconds()))
    if seconds < 3600:
        minutes = seconds // 60
        return f"{minutes} {'minuut' if minutes == 1 else 'minuten'}"
    if seconds < 2 * 86400:
        hours = seconds // 3600
        return f"{hours} uur"
    return f"{seconds // 86400} dagen"


@dataclass(frozen=True)
class Waiting:
    kind: str  # "unroutable" | "returned" | "overdue"
    melding_id: str
    gemeente: str
    recipient_type: str
    why: str
    since: datetime
    waited: str
    can_send: bool  # an operator may send it to an organisation of this type


def _gemeente(item: Mapping[str, Any]) -> str:
    code, name = item.get("gemeente_code"), item.get("gemeente_name")
    if name and code:
        return f"{name} ({code})"
    return str(name or code or "onbekend")


def _at(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def waiting_list(
    unroutable: Iterable[Mapping[str, Any]], overdue: Iterable[Mapping[str, Any]], now: datetime
) -> list[Waiting]:
    """Unroutable, returned and overdue in one list, the longest waiting first."""
    rows: list[Waiting] = []
    for item in unroutable:
        gemeente = _gemeente(item)
        for recipient_type in item.get("unroutable_types") or []:
            since = _at(item["waiting_since"])
            why = f"Geen actieve organisatie van type {type_name(recipient_type)} voor dit adres in {gemeente}."
            rows.append(
                Waiting(
                    "unroutable", item["melding_id"], gemeente, recipient_type, why, since, waited(since, now), True
                )
            )
        for returned in item.get("returned") or []:
            since = _at(returned.get("returned_at") or item["waiting_since"])
            who = returned.get("org_name") or f"organisatie {returned['org_id']}"
            reason = RETURN_REASONS.get(returned["reason"], returned["reason"])
            why = f"Teruggestuurd door {who} op {_date(since)}: {reason}."
            rows.append(
                Waiting(
                    "returned",
                    item["melding_id"],
                    gemeente,
                    returned["recipient_type"],
                    why,
                    since,
                    waited(since, now),
                    True,
                )
            )
    for item in overdue:
        since = _at(item["contact_due_at"])
        why = f"Contacttermijn bij {item['org_name']} verlopen op {_date(since)} (nog geen contact)."
        rows.append(
            Waiting(
                "overdue",
                item["melding_id"],
                _gemeente(item),
                item["recipient_type"],
                why,
                since,
                waited(since, now),
                False,
            )
        )
    return sorted(rows, key=lambda row: row.since)


def _overlaps(ranges: Iterable[Mapping[str, Any]], others: Iterable[Mapping[str, Any]]) -> bool:
    others = list(others)
    return any(str(a["from"]) <= str(b["to"]) and str(b["from"]) <= str(a["to"]) for a in ranges for b in others)


def candidates(
    item: Mapping[str, Any],
    recipient_type: str,
    organisations: Iterable[Mapping[str, Any]],
    gemeente_ranges: Iterable[Mapping[str, Any]] = (),
) -> list[Mapping[str, Any]]:
    """The organisations a waiting melding may be sent to for one type: active, of that type, serving its
    gemeente (the whole of it, or postcode ranges within it) — never one that returned it as the wrong
    recipient. By name."""
    returned_wrong = {
        r["org_id"]
        for r in item.get("returned") or []
        if r.get("reason") == "wrong-recipient" and r.get("recipient_type") == recipient_type
    }
    gemeente = item.get("gemeente_code")
    gemeente_ranges = list(gemeente_ranges)
    found = [
        org
        for org in organisations
        if org.get("active")
        and org.get("type") == recipient_type
        and (gemeente in (org.get("gemeenten") or []) or _overlaps(org.get("postcode_ranges") or [], gemeente_ranges))
        and org.get("org_id") not in returned_wrong
    ]
    return sorted(found, key=lambda org: str(org.get("name", "")))


def waiting_types(item: Mapping[str, Any]) -> set[str]:
    """The types an operator may send this melding on for: unroutable ones and returned ones."""
    return {*(item.get("unroutable_types") or []), *(r["recipient_type"] for r in item.get("returned") or [])}

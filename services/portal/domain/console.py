"""The console's rules (/beheer/): who may in with which scopes, and the waiting meldingen as an operator reads
them. No I/O here.

A person signs in with her own organisation's provider; the roles in a configured claim map to the platform's
scopes. The pages then call the services with a short-lived token naming her (`sub`) and her organisation, so
every audited action names her as the actor.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from shared.figures_nl import CHARTS, HIDDEN, chart_names, period_name, sections, total, unfinished

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
    "insufficient-information": "te weinig informatie",
    "no-capacity": "geen plek",
}
# Why a reroute left a melding waiting, per type (`waiting[].reason` of the reroute's answer), in plain Dutch.
STILL_WAITING = {
    "no-organisation": "er is geen actieve organisatie van dit type die voor {where} werkt. Registreer er een bij "
    "Organisaties, of kies zelf een organisatie.",
    "returned-by-all": "elke actieve organisatie van dit type die voor {where} werkt, heeft de melding "
    "teruggestuurd als niet de juiste ontvanger. Kies zelf een organisatie, of registreer de juiste bij Organisaties.",
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


def still_waiting(waiting: Iterable[Mapping[str, Any]], gemeente: str | None) -> list[str]:
    """Why a reroute left the melding waiting, per type, in plain Dutch (the API's codes, not its English text);
    `gemeente`: the name of the address's gemeente, None when its postcode lies in none."""
    where = f"gemeente {gemeente}" if gemeente else "dit adres (de postcode ligt in geen bekende gemeente)"
    said = []
    for w in waiting:
        text = STILL_WAITING.get(str(w.get("reason")), "er is nog geen organisatie van dit type voor {where}.")
        said.append(f"Voor {type_name(str(w.get('recipient_type', '')))}: " + text.format(where=where))
    return said or ["er is nog geen organisatie gevonden."]


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


# --- route maps (routekaarten) ----------------------------------------------------------------------------------

DEFAULT_DEADLINE_DAYS = {"regular": 14, "urgent": 2}
URGENCY_NAMES = {"regular": "gewoon", "urgent": "spoed"}
DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def duration_words(value: Any) -> str:
    """An ISO 8601 duration as the API answers it (`P14D`, `PT12H`) in Dutch words."""
    found = DURATION.fullmatch(str(value))
    if not found or not any(found.groups()):
        return str(value)
    days, hours, minutes = (int(part or 0) for part in found.groups()[:3])
    words = []
    if days:
        words.append(f"{days} {'dag' if days == 1 else 'dagen'}")
    if hours:
        words.append(f"{hours} uur")
    if minutes:
        words.append(f"{minutes} {'minuut' if minutes == 1 else 'minuten'}")
    return " en ".join(words) or "0 dagen"


def duration_days(value: Any) -> int | None:
    found = DURATION.fullmatch(str(value))
    if not found or any(found.groups()[1:]):
        return None
    return int(found.group(1) or 0)


@dataclass(frozen=True)
class RouteMapRow:
    risk_domain: str
    receives: dict[str, bool]  # per recipient type


@dataclass(frozen=True)
class RouteMapTable:
    effective_from: str | None  # None: no version, the default applies
    types: tuple[str, ...]
    rows: list[RouteMapRow]
    note: dict[str, bool]
    deadlines: dict[str, str]  # per urgency, in words


def route_map_table(
    version: Mapping[str, Any] | None, risk_domains: Iterable[str], recipient_types: Iterable[str]
) -> RouteMapTable:
    """A route map version as a table: risk domain × recipient type, the note, the deadlines. No version: the
    default (everything to every type, deadlines 14 and 2 days)."""
    types, domains = tuple(recipient_types), list(risk_domains)
    if version is None:
        everything = {t: {"risk_domains": "all", "note": True} for t in types}
        recipients: Mapping[str, Any] = everything
        deadlines = {u: duration_words(f"P{d}D") for u, d in DEFAULT_DEADLINE_DAYS.items()}
    else:
        recipients = version.get("recipients") or {}
        deadlines = {u: duration_words(v) for u, v in (version.get("contact_deadline") or {}).items()}

    def receives(recipient_type: str, domain: str) -> bool:
        rule = recipients.get(recipient_type)
        if rule is None:
            return False
        return rule["risk_domains"] == "all" or domain in rule["risk_domains"]

    return RouteMapTable(
        effective_from=str(version["effective_from"]) if version else None,
        types=types,
        rows=[RouteMapRow(domain, {t: receives(t, domain) for t in types}) for domain in domains],
        note={t: bool(recipients.get(t, {}).get("note")) for t in types},
        deadlines={URGENCY_NAMES.get(u, u): words for u, words in deadlines.items()},
    )


@dataclass(frozen=True)
class FormError:
    field: str
    message: str


def route_map_from_form(
    form: Mapping[str, list[str]], risk_domains: Iterable[str], recipient_types: Iterable[str]
) -> dict[str, Any] | FormError:
    """The body of `PUT /v1/gemeenten/{code}/route-map` from the edit form's fields: `effective_from`; per type
    `{type}:receives` (a checkbox), `{type}:note`, and per domain `{type}:{domain}`; `deadline:regular` and
    `deadline:urgent` in days. Only the form's own shape is checked here; the routing service checks the rest
    (as for any client) and its answer is shown on the form."""

    def one(name: str) -> str:
        return (form.get(name) or [""])[0].strip()

    effective_from = one("effective_from")
    if not effective_from:
        return FormError("effective_from", "Vul de datum in vanaf wanneer deze versie geldt.")
    domains = list(risk_domains)
    recipients: dict[str, Any] = {}
    for recipient_type in recipient_types:
        if not one(f"{recipient_type}:receives"):
            continue
        chosen = [d for d in domains if one(f"{recipient_type}:{d}")]
        recipients[recipient_type] = {
            "risk_domains": "all" if len(chosen) == len(domains) else chosen,
            "note": bool(one(f"{recipient_type}:note")),
        }
    deadlines: dict[str, str] = {}
    for urgency in DEFAULT_DEADLINE_DAYS:
        days = one(f"deadline:{urgency}")
        if not days.isdigit() or not 0 < int(days) <= 365:
            name = URGENCY_NAMES[urgency]
            return FormError(f"deadline:{urgency}", f"Vul de termijn bij {name} in als een aantal dagen (1 tot 365).")
        deadlines[urgency] = f"P{int(days)}D"
    return {"effective_from": effective_from, "recipients": recipients, "contact_deadline": deadlines}


def form_prefill(
    version: Mapping[str, Any] | None, risk_domains: Iterable[str], recipient_types: Iterable[str]
) -> dict[str, Any]:
    """The edit form's values from a version (as the API answers it, or as the form made it); none: the default."""
    domains, types_wanted = list(risk_domains), list(recipient_types)
    recipients: Mapping[str, Any] = (
        (version.get("recipients") or {})
        if version
        else {t: {"risk_domains": "all", "note": True} for t in types_wanted}
    )
    types: dict[str, Any] = {}
    for recipient_type in types_wanted:
        rule: Mapping[str, Any] | None = recipients.get(recipient_type)
        chosen: set[str] = set()
        if rule is not None:
            chosen = set(domains) if rule["risk_domains"] == "all" else set(rule["risk_domains"])
        types[recipient_type] = {"receives": rule is not None, "note": bool(rule and rule["note"]), "domains": chosen}
    deadlines = (version or {}).get("contact_deadline") or {}
    return {
        "effective_from": str((version or {}).get("effective_from") or ""),
        "types": types,
        "deadline": {u: duration_days(deadlines[u]) if u in deadlines else d for u, d in DEFAULT_DEADLINE_DAYS.items()},
    }


# --- organisations -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrganisationRow:
    org_id: str
    name: str
    type: str
    active: bool
    coverage: str  # gemeenten by name, postcode ranges


def organisation_rows(
    organisations: Iterable[Mapping[str, Any]], gemeente_names: Mapping[str, str], query: str = ""
) -> list[OrganisationRow]:
    """The directory as a table, by name; `query` (any case) matches a name, an organisation number, a type or a
    gemeente's name or code."""
    wanted = query.strip().casefold()
    rows = []
    for org in organisations:
        gemeenten = [f"{gemeente_names.get(code, code)} ({code})" for code in org.get("gemeenten") or []]
        ranges = [f"postcodes {r['from']} tot {r['to']}" for r in org.get("postcode_ranges") or []]
        coverage = "; ".join([*gemeenten, *ranges]) or "nergens"
        row = OrganisationRow(str(org["org_id"]), str(org["name"]), str(org["type"]), bool(org["active"]), coverage)
        haystack = f"{row.name} {row.org_id} {row.type} {type_name(row.type)} {row.coverage}".casefold()
        if not wanted or wanted in haystack:
            rows.append(row)
    return sorted(rows, key=lambda row: (row.name.casefold(), row.org_id))


def reactivated(organisation: Mapping[str, Any]) -> dict[str, Any]:
    """The body of `PUT /v1/organisations/{id}` that activates an organisation again as it was."""
    fields = ("name", "type", "gemeenten", "postcode_ranges", "delivery_mode")
    return {**{name: organisation[name] for name in fields if name in organisation}, "active": True}


# --- cijfers (programme figures) ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FiguresColumn:
    period: str  # its name, `K4 2026*` when not over yet
    unfinished: bool  # the period is not over yet: its figures still grow


@dataclass(frozen=True)
class Chart:
    name: str  # in the chart's address: /beheer/cijfers/grafiek/<name>.svg
    title: str


@dataclass(frozen=True)
class FiguresView:
    columns: list[FiguresColumn]
    total: str  # meldingen over the whole period; "ten minste N" when some periods are hidden, x when all are
    nothing_shown: bool
    sections: list[tuple[str, dict[str, list[str]]]]  # every figure as shown (`x` hidden, `0` a true 0)
    charts: list[Chart]  # the report's charts for these figures, each with the table above as its text


def figures_view(document: Mapping[str, Any], today: date) -> FiguresView:
    """The figures of `GET /v1/figures` as the Cijfers page shows them: the report's charts and its table."""
    periods = list(document.get("periods") or [])
    counts = [p.get("meldingen") for p in periods]
    return FiguresView(
        columns=[FiguresColumn(period_name(p["period"], today), unfinished(p["period"], today)) for p in periods],
        total=total(counts),
        nothing_shown=all(c is None for c in counts),
        sections=sections(document),
        charts=[Chart(name, CHARTS[name]) for name in chart_names(document)],
    )


def region_choices(regions: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The GGD regions of `GET /v1/figures/regions` for the Cijfers page's picker: (code, name), by name as a
    Dutch reader sorts (`GGD Fryslân` among the F's, the `GGD` prefix aside)."""

    def key(region: Mapping[str, Any]) -> str:
        name = str(region["name"])
        return unicodedata.normalize("NFKD", name.removeprefix("GGD ")).casefold()

    return [(str(r["code"]), str(r["name"])) for r in sorted(regions, key=key)]


def figures_csv(document: Mapping[str, Any]) -> str:
    """Every figure as a CSV line: period, part, key, value (`x` hidden, `0` a true 0). The breakdown by
    gemeente only where there is one (the country's, a region's), the meldingen without a gemeente only in the
    country's."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["periode", "onderdeel", "sleutel", "waarde"])
    skipped = {"period"}
    if document.get("gemeente"):
        skipped |= {"by_gemeente", "without_gemeente"}
    elif document.get("region"):
        skipped.add("without_gemeente")
    for period in document.get("periods") or []:
        for part, value in period.items():
            if part in skipped:
                continue
            if isinstance(value, dict):
                for key, inner in value.items():
                    writer.writerow([period["period"], part, key, HIDDEN if inner is None else inner])
            else:
                writer.writerow([period["period"], part, "", HIDDEN if value is None else value])
    return out.getvalue()

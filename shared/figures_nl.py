"""The programme figures (`GET /v1/figures`) in Dutch words, as the report (`kansrijk report`, rendered by the
melding service) and the console's Cijfers page both show them: the names of senders, risk domains, statuses
and outcomes, of periods and of the charts; a hidden count as `x` and a true 0 as `0`, never the one for the
other; the total of a whole period; which period is not over yet."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

HIDDEN = "x"  # CBS's sign for "geheim": a count below the threshold, or one that would reveal one

SENDER_TYPES = {
    "huisarts": "Huisarts",
    "verloskundige": "Verloskundige",
    "gynaecoloog": "Gynaecoloog",
    "volwassenen-ggz": "Volwassenen-ggz",
    "verslavingszorg": "Verslavingszorg",
}
RISK_DOMAINS = {
    "verslaving": "Verslaving",
    "psychiatrie": "Psychiatrie",
    "lvb": "Licht verstandelijke beperking",
    "medisch-obstetrisch": "Medisch-obstetrisch",
    "huiselijk-geweld": "Huiselijk geweld",
    "financien-schulden": "Financiën en schulden",
    "huisvesting": "Huisvesting",
    "sociaal-netwerk": "Sociaal netwerk",
    "opvoeding-eerdere-kinderen": "Opvoeding eerdere kinderen",
    "jong-ouderschap": "Jong ouderschap",
    "ongeplande-zwangerschap": "Ongeplande zwangerschap",
    "overig": "Overig",
}
RECIPIENT_TYPES = {"jgz": "JGZ", "wijkteam": "Wijkteam"}
STATUSES = {
    "accepted": "Nog niet gerouteerd",
    "delivered": "Bezorgd",
    "unroutable": "Wacht op ontvanger",
    "not_delivered": "Niet bezorgd",
    "cancelled": "Geannuleerd door afzender",
    "withdrawn": "Toestemming ingetrokken",
}
OUTCOMES = {
    "phb-done": "Prenataal huisbezoek gedaan",
    "support-started": "Ondersteuning gestart",
    "declined": "Cliënte wilde geen hulp",
    "no-contact": "Geen contact gekregen",
    "moved": "Verhuisd",
    "other": "Anders",
    "not-reported": "Niet gemeld",
}
MONTHS = ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober",
          "november", "december")  # fmt: skip
MONTH_ABBREVIATIONS = ("jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec")
INTERVALS = {"month": "maand", "quarter": "kwartaal", "year": "jaar"}

# The report's charts, in its order, by the name the console's chart address uses; `gemeenten` only for the
# country and a region (a gemeente's own figures have no breakdown by gemeente).
CHARTS = {
    "afzenders": "Meldingen per periode, naar afzender",
    "risicodomeinen": "Meldingen per risicodomein",
    "stand": "Stand van zaken van de meldingen",
    "contact": "Contact binnen de afgesproken termijn",
    "uitkomsten": "Uitkomst volgens de ontvanger",
    "gemeenten": "Meldingen per gemeente",
}
UNFINISHED_MARK = "*"
UNFINISHED_NOTE = "* Deze periode loopt nog: de cijfers kunnen nog groeien."


def chart_names(document: Mapping[str, Any]) -> list[str]:
    """The charts a figures document has, in the report's order."""
    return [name for name in CHARTS if name != "gemeenten" or not document.get("gemeente")]


def area(document: Mapping[str, Any]) -> str:
    """Whose figures: `Amsterdam (GM0363)`, `GGD Amsterdam (GG3406)` or `heel Nederland`."""
    gemeente, region = document.get("gemeente"), document.get("region")
    if gemeente:
        return f"{gemeente['name'] or gemeente['code']} ({gemeente['code']})"
    if region:
        return f"{region['name']} ({region['code']})"
    return "heel Nederland"


def day(value: date) -> str:
    """`2027-01-05` -> `5 januari 2027`."""
    return f"{value.day} {MONTHS[value.month - 1]} {value.year}"


def period_end(label: str) -> date:
    """The last day of `2027-01`, `2027-Q1` or `2027`."""
    if "-Q" in label:
        year, quarter = label.split("-Q")
        month = int(quarter) * 3
    elif "-" in label:
        year, month_text = label.split("-")
        month = int(month_text)
    else:
        year, month = label, 12
    first_of_next = date(int(year) + month // 12, month % 12 + 1, 1)
    return first_of_next - timedelta(days=1)


def unfinished(label: str, today: date) -> bool:
    """The period is not over yet (today is in it, or before its end): its figures can still grow."""
    return period_end(label) >= today


def period_name(label: str, today: date | None = None) -> str:
    """`2027-01` -> `jan 2027`, `2027-Q1` -> `K1 2027`, `2027` -> `2027`; with `today`, a period not over yet
    is marked `*` (UNFINISHED_NOTE says what that means)."""
    if "-Q" in label:
        year, quarter = label.split("-Q")
        name = f"K{quarter} {year}"
    elif "-" in label:
        year, month = label.split("-")
        name = f"{MONTH_ABBREVIATIONS[int(month) - 1]} {year}"
    else:
        name = label
    return name + (UNFINISHED_MARK if today is not None and unfinished(label, today) else "")


def count(value: float | None, suffix: str = "") -> str:
    """A figure as shown: a hidden one as `x`, a true 0 as `0`, a fraction with a decimal comma."""
    return HIDDEN if value is None else f"{value:g}{suffix}".replace(".", ",")


def percent(share: float | None) -> str:
    return count(None if share is None else round(100 * share), "%")


def total(counts: Sequence[int | None]) -> str:
    """The meldingen of a whole period from its parts: their sum when every part is shown, `ten minste N` when
    some are hidden, `x` when all are."""
    shown = sum(c for c in counts if c is not None)
    if all(c is not None for c in counts):
        return str(shown)
    return f"ten minste {shown}" if shown else HIDDEN


def rows(periods: Sequence[Mapping[str, Any]], field: str, labels: Mapping[str, str]) -> dict[str, list[Any]]:
    """One breakdown (`by_sender_type`, `outcomes`, …) as named rows of counts per period (None: hidden)."""
    return {label: [p[field].get(key) for p in periods] for key, label in labels.items()}


def by_gemeente(document: Mapping[str, Any]) -> dict[str, list[int | None]]:
    """The meldingen of the country (or a region) per gemeente, named, and the country's those no gemeente
    could be found for."""
    periods = document["periods"]
    names: dict[str, str] = document.get("gemeente_names") or {}
    named: dict[str, list[int | None]] = {
        f"{names.get(code, code)} ({code})": [p["by_gemeente"].get(code) for p in periods]
        for code in sorted(periods[0]["by_gemeente"] if periods else (), key=lambda c: names.get(c, c))
    }
    if not document.get("region"):
        named["Zonder gemeente (adres niet gevonden)"] = [p["without_gemeente"] for p in periods]
    return named


def _shown(counts: Mapping[str, Sequence[int | None]]) -> dict[str, list[str]]:
    return {label: [count(v) for v in values] for label, values in counts.items()}


def sections(document: Mapping[str, Any]) -> list[tuple[str, dict[str, list[str]]]]:
    """Every figure of the document as shown, in named sections of named rows (a cell per period): the table
    under the charts, and their text alternative."""
    periods: list[dict[str, Any]] = document["periods"]
    out: list[tuple[str, dict[str, list[str]]]] = [
        ("Totaal", {"Meldingen": [count(p["meldingen"]) for p in periods]}),
        ("Afzender", _shown(rows(periods, "by_sender_type", SENDER_TYPES))),
        ("Risicodomein", _shown(rows(periods, "by_risk_domain", RISK_DOMAINS))),
        ("Gevraagde ontvanger", _shown(rows(periods, "by_recipient_type", RECIPIENT_TYPES))),
        ("Stand van zaken", _shown(rows(periods, "by_status", STATUSES))),
        (
            "Contact",
            {
                "Teruggestuurd door ontvanger": [count(p["returned"]) for p in periods],
                "Contact binnen de termijn": [percent(p["contact_within_deadline"]) for p in periods],
                "Dagen tot contact (mediaan)": [count(p["days_to_contact"]["p50"]) for p in periods],
                "Dagen tot contact (90e percentiel)": [count(p["days_to_contact"]["p90"]) for p in periods],
            },
        ),
        ("Uitkomst", _shown(rows(periods, "outcomes", OUTCOMES))),
    ]
    if not document.get("gemeente"):
        out.append(("Gemeente", _shown(by_gemeente(document))))
    return out

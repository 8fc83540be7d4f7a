"""`kansrijk report`: the programme figures (`GET /v1/figures`) as one self-contained HTML page in Dutch, for
a coalition coordinator to open or mail.

Charts are inline SVG drawn by matplotlib (text as paths: no fonts to fetch), styles are inline, and there is
no script: the page loads nothing from anywhere. A suppressed figure shows as `x` (CBS's sign for "geheim"),
never as a number, and the page says why.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from services.melding.domain.figures import SUPPRESSION_THRESHOLD, shows_nothing

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
HIDDEN = "x"  # CBS: "geheim"
HIDDEN_COLOUR = "#c8c8c8"
PALETTE = ("#1f5fa8", "#e07b00", "#2a9d55", "#c0392b", "#7b4fa3", "#8c6d31", "#d35fa0", "#5b5b5b")


def _day(value: date) -> str:
    return f"{value.day} {MONTHS[value.month - 1]} {value.year}"


def _period_name(label: str) -> str:
    """`2027-01` -> `jan 2027`, `2027-Q1` -> `K1 2027`, `2027` -> `2027`."""
    if "-Q" in label:
        year, quarter = label.split("-Q")
        return f"K{quarter} {year}"
    if "-" in label:
        year, month = label.split("-")
        return f"{MONTHS[int(month) - 1][:3]} {year}"
    return label


def _count(value: int | float | None, suffix: str = "") -> str:
    return HIDDEN if value is None else f"{value:g}{suffix}".replace(".", ",")


# --- charts ----------------------------------------------------------------------------------------------


def _svg(figure: Any, n: int) -> str:
    """The figure as an inline `<svg>` element: text drawn as paths, ids unique to this chart, no metadata."""
    import matplotlib

    out = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": f"kansrijk-{n}"}):
        figure.savefig(out, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    svg = out.getvalue()
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg[svg.index("<svg") :], flags=re.DOTALL)  # RDF: no use here
    # Glyph ids are the same in every chart (and mean the same glyph); give each chart its own all the same.
    ids = set(re.findall(r'id="([^"]+)"', svg))
    return re.sub(
        r'(id="|#)([^"\s)]+)', lambda m: m.group(1) + (f"c{n}-" if m.group(2) in ids else "") + m.group(2), svg
    )


def _new_figure(width: float, height: float) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=96)
    axes = figure.add_subplot()
    axes.spines[["top", "right"]].set_visible(False)
    return figure, axes


def _stacked(periods: Sequence[Mapping[str, Any]], field: str, labels: Mapping[str, str], title: str) -> Any:
    """Bars per period, stacked by the parts of `meldingen`; what is not shown is one grey part."""
    from matplotlib.ticker import MaxNLocator

    figure, axes = _new_figure(max(6.0, 0.55 * len(periods) + 3), 3.6)
    names = [_period_name(p["period"]) for p in periods]
    bottoms = [0] * len(periods)
    for colour, (key, label) in zip(PALETTE, labels.items(), strict=False):
        values = [p[field].get(key) or 0 for p in periods]
        if any(values):
            axes.bar(names, values, bottom=bottoms, color=colour, label=label)
            bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    rest = [(p["meldingen"] or 0) - b for p, b in zip(periods, bottoms, strict=True)]
    axes.bar(names, rest, bottom=bottoms, color=HIDDEN_COLOUR, label="Niet getoond (kleine aantallen)")
    for x, p in enumerate(periods):
        if p["meldingen"] is None:
            axes.annotate(HIDDEN, (x, 0), ha="center", va="bottom", color="#555555")
    # A counts axis starts at 0, in whole meldingen; with nothing shown it still spans the hidden range (not
    # matplotlib's -0.05..0.05 around an empty chart).
    axes.set_ylim(bottom=0, top=None if any(bottoms) or any(rest) else SUPPRESSION_THRESHOLD)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(title, loc="left", fontsize=11)
    axes.set_ylabel("meldingen")
    axes.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes.tick_params(axis="x", labelrotation=45 if len(periods) > 6 else 0, labelsize=8)
    return figure


def _heatmap(rows: Mapping[str, Sequence[int | None]], columns: Sequence[str], title: str) -> Any:
    """A grid of counts (rows × periods), each cell with its number; a hidden one grey with `x`."""
    import numpy as np
    from matplotlib import colormaps

    figure, axes = _new_figure(max(6.0, 0.7 * len(columns) + 4), 0.32 * len(rows) + 1.4)
    values = np.ma.masked_invalid(np.array([[np.nan if v is None else v for v in row] for row in rows.values()], float))
    cmap = colormaps["Blues"].with_extremes(bad=HIDDEN_COLOUR)
    top = max(1.0, float(values.max()) if values.count() else 1.0)
    axes.imshow(values, cmap=cmap, aspect="auto", vmin=0, vmax=top * 1.15)
    for y, row in enumerate(rows.values()):
        for x, value in enumerate(row):
            dark = value is not None and value > 0.6 * top
            axes.text(x, y, _count(value), ha="center", va="center", fontsize=8, color="white" if dark else "#222222")
    axes.set_xticks(range(len(columns)), [_period_name(c) for c in columns], fontsize=8)
    axes.set_yticks(range(len(rows)), list(rows), fontsize=8)
    axes.spines[["left", "bottom"]].set_visible(False)
    axes.set_title(title, loc="left", fontsize=11)
    return figure


def _contact(periods: Sequence[Mapping[str, Any]]) -> Any:
    figure, axes = _new_figure(max(6.0, 0.55 * len(periods) + 3), 3.0)
    names = [_period_name(p["period"]) for p in periods]
    shares = [p["contact_within_deadline"] for p in periods]
    axes.bar(names, [100 * s if s is not None else 0 for s in shares], color=PALETTE[2])
    for x, share in enumerate(shares):
        axes.annotate(_percent(share), (x, 100 * (share or 0)), ha="center", va="bottom", fontsize=8)
    axes.set_ylim(0, 110)
    axes.set_ylabel("% binnen de termijn")
    axes.set_title("Contact binnen de afgesproken termijn", loc="left", fontsize=11)
    axes.tick_params(axis="x", labelrotation=45 if len(periods) > 6 else 0, labelsize=8)
    return figure


# --- the page --------------------------------------------------------------------------------------------


def _rows(periods: Sequence[Mapping[str, Any]], field: str, labels: Mapping[str, str]) -> dict[str, list[Any]]:
    return {label: [p[field].get(key) for p in periods] for key, label in labels.items()}


def _shown(rows: Mapping[str, Sequence[int | None]]) -> dict[str, list[str]]:
    return {label: [_count(v) for v in values] for label, values in rows.items()}


def _percent(share: float | None) -> str:
    return _count(None if share is None else round(100 * share), "%")


def _contact_rows(periods: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    return {
        "Teruggestuurd door ontvanger": [_count(p["returned"]) for p in periods],
        "Contact binnen de termijn": [_percent(p["contact_within_deadline"]) for p in periods],
        "Dagen tot contact (mediaan)": [_count(p["days_to_contact"]["p50"]) for p in periods],
        "Dagen tot contact (90e percentiel)": [_count(p["days_to_contact"]["p90"]) for p in periods],
    }


def _table(periods: Sequence[Mapping[str, Any]], sections: Sequence[tuple[str, Mapping[str, list[str]]]]) -> str:
    head = "".join(f"<th>{html.escape(_period_name(p['period']))}</th>" for p in periods)
    body = []
    for section, rows in sections:
        body.append(f'<tr class="section"><th colspan="{len(periods) + 1}">{html.escape(section)}</th></tr>')
        for label, values in rows.items():
            cells = "".join(f"<td>{html.escape(str(v))}</td>" for v in values)
            body.append(f"<tr><th>{html.escape(label)}</th>{cells}</tr>")
    return f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; max-width: 70rem;
       margin: 2rem auto; padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
.period { color: #555; margin-top: 0; }
.chart { margin: 1rem 0; overflow-x: auto; } .chart svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 1rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
tbody th { text-align: left; font-weight: normal; } tr.section th { text-align: left; font-weight: bold;
       background: #f3f5f8; }
.note { background: #f3f5f8; border-left: 4px solid #1f5fa8; padding: 0.6rem 1rem; }
footer { color: #555; font-size: 0.85rem; margin-top: 2rem; border-top: 1px solid #ddd; padding-top: 0.6rem; }
"""


def _by_gemeente(document: Mapping[str, Any]) -> dict[str, list[int | None]]:
    """The country's meldingen per gemeente (named), and those no gemeente could be found for."""
    periods = document["periods"]
    names: dict[str, str] = document.get("gemeente_names") or {}
    rows: dict[str, list[int | None]] = {
        f"{names.get(code, code)} ({code})": [p["by_gemeente"].get(code) for p in periods]
        for code in sorted(periods[0]["by_gemeente"] if periods else (), key=lambda c: names.get(c, c))
    }
    rows["Zonder gemeente (adres niet gevonden)"] = [p["without_gemeente"] for p in periods]
    return rows


def charts(document: Mapping[str, Any]) -> list[Any]:
    """The report's charts (matplotlib figures), in the page's order."""
    periods: list[dict[str, Any]] = document["periods"]
    columns = [p["period"] for p in periods]
    out = [
        _stacked(periods, "by_sender_type", SENDER_TYPES, "Meldingen per periode, naar afzender"),
        _heatmap(_rows(periods, "by_risk_domain", RISK_DOMAINS), columns, "Meldingen per risicodomein"),
        _stacked(periods, "by_status", STATUSES, "Stand van zaken van de meldingen"),
        _contact(periods),
        _heatmap(_rows(periods, "outcomes", OUTCOMES), columns, "Uitkomst volgens de ontvanger"),
    ]
    if not document["gemeente"]:
        out.append(_heatmap(_by_gemeente(document), columns, "Meldingen per gemeente"))
    return out


def _nothing_shown(threshold: int, interval: str) -> str:
    return f"""<p class="note"><strong>Er is in deze periode niets te tonen.</strong> Er zijn geen meldingen
gedaan, of zo weinig (minder dan {threshold} per {_INTERVALS[interval]}) dat elk cijfer verborgen blijft. Kies een
langere periode, tel per kwartaal of per jaar, of bekijk heel Nederland.</p>"""


def render_report(document: Mapping[str, Any], generated_at: datetime) -> str:
    """The figures document of `GET /v1/figures` as one HTML page in Dutch."""
    periods: list[dict[str, Any]] = document["periods"]
    threshold = document["suppression_threshold"]
    gemeente = document["gemeente"]
    where = f"{gemeente['name'] or gemeente['code']} ({gemeente['code']})" if gemeente else "heel Nederland"
    start, end = (date.fromisoformat(str(document[k])) for k in ("from", "to"))
    sections: list[tuple[str, Mapping[str, list[str]]]] = [
        ("Totaal", {"Meldingen": [_count(p["meldingen"]) for p in periods]}),
        ("Afzender", _shown(_rows(periods, "by_sender_type", SENDER_TYPES))),
        ("Risicodomein", _shown(_rows(periods, "by_risk_domain", RISK_DOMAINS))),
        ("Gevraagde ontvanger", _shown(_rows(periods, "by_recipient_type", RECIPIENT_TYPES))),
        ("Stand van zaken", _shown(_rows(periods, "by_status", STATUSES))),
        ("Contact", _contact_rows(periods)),
        ("Uitkomst", _shown(_rows(periods, "outcomes", OUTCOMES))),
    ]
    figures = "".join(f'<div class="chart">{_svg(chart, n)}</div>' for n, chart in enumerate(charts(document), 1))
    if not gemeente:
        sections.append(("Gemeente", _shown(_by_gemeente(document))))
    return f"""<!DOCTYPE html>
<html lang="nl">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>Kansrijke Start — meldingen {html.escape(where)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>Kansrijke Start — meldingen in {html.escape(where)}</h1>
<p class="period">Periode: {_day(start)} tot en met {_day(end)}, per {_INTERVALS[document["interval"]]}.
Gemaakt op {_day(generated_at.date())}.</p>
{_nothing_shown(threshold, document["interval"]) if shows_nothing(periods) else ""}
<p>Hoeveel zwangere vrouwen met een verhoogd risico via het platform Kansrijke Start zijn gemeld bij de JGZ of
het wijkteam, door wie, om welke risico's, of er op tijd contact was en wat ervan kwam. Geteld over alle
meldingen die in de periode zijn gedaan, ook die waarvan de persoonsgegevens al zijn verwijderd.</p>
<p class="note"><strong>Kleine aantallen zijn niet getoond ({HIDDEN}).</strong> Elk aantal onder de
{threshold}, en elk cijfer dat berekend is uit minder dan {threshold} meldingen, staat er niet: in een kleine
gemeente kan een klein aantal naar een persoon wijzen. Waar delen samen een totaal vormen (afzenders, stand van
zaken, gemeenten) zijn zo nodig ook grotere delen weggelaten, zodat het totaal min de getoonde delen nooit een
klein aantal oplevert. Een percentage staat er alleen als zowel de meldingen met als die zonder contact binnen
de termijn geen klein aantal zijn.</p>
<h2>Grafieken</h2>
{figures}
<h2>Alle cijfers</h2>
{_table(periods, sections)}
<p>{HIDDEN} = niet getoond: een klein aantal, of af te leiden uit een klein aantal.
Een melding kan meer risicodomeinen, ontvangers en uitkomsten hebben: die rijen tellen niet op tot het totaal.</p>
<footer>Gemeenten en postcodegebieden: Bron: CBS (Wijk- en Buurtkaart, CC BY 4.0).
Cijfers: platform Kansrijke Start, {html.escape(where)}.</footer>
</body>
</html>
"""


_INTERVALS = {"month": "maand", "quarter": "kwartaal", "year": "jaar"}

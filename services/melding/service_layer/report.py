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
from shared.clock import as_nl_date
from shared.figures_nl import (
    CHARTS,
    HIDDEN,
    INTERVALS,
    OUTCOMES,
    RISK_DOMAINS,
    SENDER_TYPES,
    STATUSES,
    UNFINISHED_NOTE,
    area,
    by_gemeente,
    chart_names,
    count,
    day,
    percent,
    period_name,
    rows,
    sections,
    total,
    unfinished,
)

SOURCE_OF_REGIONS = ", GGD-regio's"
HIDDEN_COLOUR = "#c8c8c8"
PALETTE = ("#1f5fa8", "#e07b00", "#2a9d55", "#c0392b", "#7b4fa3", "#8c6d31", "#d35fa0", "#5b5b5b")


# Chart text in points at print size: a chart prints at about the size it is drawn (an A4 page less its margins
# is 18 cm, 7 inches wide), so 9 points stay legible on paper.
TITLE_SIZE, TEXT_SIZE = 12, 9


# --- charts ----------------------------------------------------------------------------------------------


def _svg(figure: Any, n: int) -> str:
    """The figure as an `<svg>` element: text drawn as paths, ids unique to this chart, no metadata."""
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


def _periods_axis(axes: Any, periods: Sequence[Mapping[str, Any]], today: date) -> None:
    """Period names on the x axis, the unfinished one marked `*` and said under the chart."""
    axes.tick_params(axis="x", labelrotation=45 if len(periods) > 6 else 0, labelsize=TEXT_SIZE)
    axes.tick_params(axis="y", labelsize=TEXT_SIZE)
    if any(unfinished(p["period"], today) for p in periods):
        axes.set_xlabel(UNFINISHED_NOTE, loc="left", fontsize=TEXT_SIZE)


def _stacked(
    periods: Sequence[Mapping[str, Any]], field: str, labels: Mapping[str, str], title: str, today: date
) -> Any:
    """Bars per period, stacked by the parts of `meldingen`; what is not shown is one grey part. Above each bar
    its meldingen: a true 0 as `0`, a hidden count as `x`."""
    from matplotlib.ticker import MaxNLocator

    figure, axes = _new_figure(max(6.0, 0.55 * len(periods) + 3), 3.6)
    names = [period_name(p["period"], today) for p in periods]
    bottoms = [0] * len(periods)
    for colour, (key, label) in zip(PALETTE, labels.items(), strict=False):
        values = [p[field].get(key) or 0 for p in periods]
        if any(values):
            axes.bar(names, values, bottom=bottoms, color=colour, label=label)
            bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    rest = [(p["meldingen"] or 0) - b for p, b in zip(periods, bottoms, strict=True)]
    axes.bar(names, rest, bottom=bottoms, color=HIDDEN_COLOUR, label="Niet getoond (kleine aantallen)")
    for x, p in enumerate(periods):
        axes.annotate(
            count(p["meldingen"]), (x, p["meldingen"] or 0), ha="center", va="bottom", fontsize=TEXT_SIZE,
            color="#222222",
        )  # fmt: skip
    # A counts axis starts at 0, in whole meldingen; with nothing shown it still spans the hidden range (not
    # matplotlib's -0.05..0.05 around an empty chart). Headroom above the tallest bar for its number.
    tallest = max([p["meldingen"] or 0 for p in periods] + [0])
    axes.set_ylim(bottom=0, top=tallest * 1.15 if tallest else SUPPRESSION_THRESHOLD)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    whole = total([p["meldingen"] for p in periods])
    axes.set_title(f"{title} (hele periode: {whole})", loc="left", fontsize=TITLE_SIZE)
    axes.set_ylabel("meldingen", fontsize=TEXT_SIZE)
    axes.legend(fontsize=TEXT_SIZE, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _periods_axis(axes, periods, today)
    return figure


def _heatmap(
    periods: Sequence[Mapping[str, Any]], counts: Mapping[str, Sequence[int | None]], title: str, today: date
) -> Any:
    """A grid of counts (rows × periods), each cell with its number; a hidden one grey with `x`."""
    import numpy as np
    from matplotlib import colormaps

    figure, axes = _new_figure(max(6.0, 0.7 * len(periods) + 4), 0.34 * len(counts) + 1.6)
    values = np.ma.masked_invalid(
        np.array([[np.nan if v is None else v for v in row] for row in counts.values()], float)
    )
    cmap = colormaps["Blues"].with_extremes(bad=HIDDEN_COLOUR)
    top = max(1.0, float(values.max()) if values.count() else 1.0)
    axes.imshow(values, cmap=cmap, aspect="auto", vmin=0, vmax=top * 1.15)
    for y, row in enumerate(counts.values()):
        for x, value in enumerate(row):
            dark = value is not None and value > 0.6 * top
            axes.text(
                x, y, count(value), ha="center", va="center", fontsize=TEXT_SIZE, color="white" if dark else "#222222"
            )
    axes.set_xticks(range(len(periods)), [period_name(p["period"], today) for p in periods])
    axes.set_yticks(range(len(counts)), list(counts), fontsize=TEXT_SIZE)
    axes.spines[["left", "bottom"]].set_visible(False)
    axes.set_title(title, loc="left", fontsize=TITLE_SIZE)
    _periods_axis(axes, periods, today)
    return figure


def _contact(periods: Sequence[Mapping[str, Any]], today: date) -> Any:
    figure, axes = _new_figure(max(6.0, 0.55 * len(periods) + 3), 3.0)
    names = [period_name(p["period"], today) for p in periods]
    shares = [p["contact_within_deadline"] for p in periods]
    axes.bar(names, [100 * s if s is not None else 0 for s in shares], color=PALETTE[2])
    for x, share in enumerate(shares):
        axes.annotate(percent(share), (x, 100 * (share or 0)), ha="center", va="bottom", fontsize=TEXT_SIZE)
    axes.set_ylim(0, 110)
    axes.set_ylabel("% binnen de termijn", fontsize=TEXT_SIZE)
    axes.set_title(CHARTS["contact"], loc="left", fontsize=TITLE_SIZE)
    _periods_axis(axes, periods, today)
    return figure


def chart(document: Mapping[str, Any], name: str, today: date) -> Any:
    """One of the report's charts (a matplotlib figure) by its name in CHARTS; KeyError for another name."""
    periods: list[dict[str, Any]] = document["periods"]
    if name not in chart_names(document):
        raise KeyError(name)
    if name == "afzenders":
        return _stacked(periods, "by_sender_type", SENDER_TYPES, CHARTS[name], today)
    if name == "risicodomeinen":
        return _heatmap(periods, rows(periods, "by_risk_domain", RISK_DOMAINS), CHARTS[name], today)
    if name == "stand":
        return _stacked(periods, "by_status", STATUSES, CHARTS[name], today)
    if name == "contact":
        return _contact(periods, today)
    if name == "uitkomsten":
        return _heatmap(periods, rows(periods, "outcomes", OUTCOMES), CHARTS[name], today)
    return _heatmap(periods, by_gemeente(document), CHARTS[name], today)


def charts(document: Mapping[str, Any], today: date) -> list[Any]:
    """The report's charts (matplotlib figures), in the page's order."""
    return [chart(document, name, today) for name in chart_names(document)]


def chart_svg(document: Mapping[str, Any], name: str, today: date) -> str:
    """One chart as an SVG document of its own (for an `<img>`: the console's Cijfers page)."""
    return '<?xml version="1.0" encoding="utf-8"?>\n' + _svg(chart(document, name, today), 0)


def charts_svg(document: Mapping[str, Any], today: date) -> dict[str, str]:
    """Every chart of the document as an SVG document of its own, by name, in the page's order."""
    return {name: chart_svg(document, name, today) for name in chart_names(document)}


# --- the page --------------------------------------------------------------------------------------------


def _table(
    periods: Sequence[Mapping[str, Any]], shown: Sequence[tuple[str, Mapping[str, list[str]]]], today: date
) -> str:
    head = "".join(f"<th>{html.escape(period_name(p['period'], today))}</th>" for p in periods)
    body = []
    for section, named in shown:
        body.append(f'<tr class="section"><th colspan="{len(periods) + 1}">{html.escape(section)}</th></tr>')
        for label, values in named.items():
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
@media print {
  @page { size: A4; margin: 15mm; }
  body { margin: 0; padding: 0; max-width: none; font-size: 10pt; color: #000; }
  .chart { overflow: visible; break-inside: avoid; } table { font-size: 8.5pt; } tr { break-inside: avoid; }
  .note { border-left-color: #000; }
}
"""


def _nothing_shown(threshold: int, interval: str) -> str:
    return f"""<p class="note"><strong>Er is in deze periode niets te tonen.</strong> Er zijn geen meldingen
gedaan, of zo weinig (minder dan {threshold} per {INTERVALS[interval]}) dat elk cijfer verborgen blijft. Kies een
langere periode, tel per kwartaal of per jaar, of bekijk heel Nederland.</p>"""


def render_report(document: Mapping[str, Any], generated_at: datetime) -> str:
    """The figures document of `GET /v1/figures` as one HTML page in Dutch."""
    periods: list[dict[str, Any]] = document["periods"]
    threshold = document["suppression_threshold"]
    where = area(document)
    start, end = (date.fromisoformat(str(document[k])) for k in ("from", "to"))
    today = as_nl_date(generated_at)  # the period still running is the Dutch one, also just after midnight
    figures = "".join(
        f'<div class="chart">{_svg(figure, n)}</div>' for n, figure in enumerate(charts(document, today), 1)
    )
    still_open = any(unfinished(p["period"], today) for p in periods)
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
<p class="period">Periode: {day(start)} tot en met {day(end)}, per {INTERVALS[document["interval"]]}.
Gemaakt op {day(today)}.</p>
{_nothing_shown(threshold, document["interval"]) if shows_nothing(periods) else ""}
<p>Hoeveel zwangere vrouwen met een verhoogd risico via het platform Kansrijke Start zijn gemeld bij de JGZ of
het wijkteam, door wie, om welke risico's, of er op tijd contact was en wat ervan kwam. Geteld over alle
meldingen die in de periode zijn gedaan, ook die waarvan de persoonsgegevens al zijn verwijderd.</p>
<p>Meldingen in de hele periode: <strong>{total([p["meldingen"] for p in periods])}</strong>.
{html.escape(UNFINISHED_NOTE) if still_open else ""}</p>
<p class="note"><strong>Kleine aantallen zijn niet getoond ({HIDDEN}).</strong> Elk aantal onder de
{threshold}, en elk cijfer dat berekend is uit minder dan {threshold} meldingen, staat er niet: in een kleine
gemeente kan een klein aantal naar een persoon wijzen. Een 0 is echt nul. Waar delen samen een totaal vormen
(afzenders, stand van zaken, gemeenten) zijn zo nodig ook grotere delen weggelaten, zodat het totaal min de
getoonde delen nooit een klein aantal oplevert. Een percentage staat er alleen als zowel de meldingen met als die
zonder contact binnen de termijn geen klein aantal zijn.</p>
<h2>Grafieken</h2>
{figures}
<h2>Alle cijfers</h2>
{_table(periods, sections(document), today)}
<p>{HIDDEN} = niet getoond: een klein aantal, of af te leiden uit een klein aantal.
Een melding kan meer risicodomeinen, ontvangers en uitkomsten hebben: die rijen tellen niet op tot het totaal.</p>
<footer>Gemeenten{SOURCE_OF_REGIONS if document.get("region") else ""} en postcodegebieden: Bron: CBS (Wijk- en
Buurtkaart, CC BY 4.0).
Cijfers: platform Kansrijke Start, {html.escape(where)}.</footer>
</body>
</html>
"""

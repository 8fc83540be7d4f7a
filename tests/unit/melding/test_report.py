"""`kansrijk report`'s page (services.melding.service_layer.report.py) for a period with nothing to show."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.melding.domain.figures import SUPPRESSION_THRESHOLD, Interval, MeldingFacts, figures, shows_nothing
from services.melding.service_layer.report import chart, chart_svg, charts, render_report
from shared.figures_nl import UNFINISHED_NOTE, chart_names

FIRST, LAST, TODAY = date(2027, 1, 1), date(2027, 6, 30), date(2027, 7, 15)
NOTHING_SHOWN = "Er is in deze periode niets te tonen"


def melding(day: int) -> MeldingFacts:
    return MeldingFacts(date(2027, 1, 1 + day % 28), "GM0363", "verloskundige", "delivered", ("verslaving",), ("jgz",))


def document(count: int, *, national: bool) -> dict[str, Any]:
    """The figures document `GET /v1/figures` answers, over `count` meldingen in January."""
    facts = [melding(day) for day in range(count)]
    return {
        "gemeente": None if national else {"code": "GM0363", "name": "Amsterdam"},
        "from": FIRST,
        "to": LAST,
        "interval": "month",
        "suppression_threshold": SUPPRESSION_THRESHOLD,
        "gemeente_names": {"GM0363": "Amsterdam"} if national and count else ({} if national else None),
        "periods": figures(facts, FIRST, LAST, Interval.month, TODAY, gemeente=None if national else "GM0363"),
    }


@pytest.mark.parametrize("national", [False, True])
@pytest.mark.parametrize("count", [0, 1, SUPPRESSION_THRESHOLD - 1])
def test_a_report_with_every_figure_hidden_or_no_meldingen_says_so_on_the_page(count: int, national: bool) -> None:
    figures_document = document(count, national=national)
    assert shows_nothing(figures_document["periods"])
    page = render_report(figures_document, datetime(2027, 7, 15, 9, 0))
    assert NOTHING_SHOWN in page


@pytest.mark.parametrize("national", [False, True])
def test_a_report_with_figures_shown_does_not_say_nothing_is_shown(national: bool) -> None:
    figures_document = document(SUPPRESSION_THRESHOLD, national=national)
    assert not shows_nothing(figures_document["periods"])
    assert NOTHING_SHOWN not in render_report(figures_document, datetime(2027, 7, 15, 9, 0))


@pytest.mark.parametrize("national", [False, True])
@pytest.mark.parametrize("count", [0, 1, SUPPRESSION_THRESHOLD - 1, SUPPRESSION_THRESHOLD])
def test_every_chart_keeps_a_counts_axis_from_zero_up_whatever_is_shown(count: int, national: bool) -> None:
    for figure in charts(document(count, national=national), TODAY):
        (axes,) = figure.axes
        if axes.images:  # a heatmap: rows and periods, no counts axis
            continue
        bottom, top = axes.get_ylim()
        assert bottom == 0 and top >= 1, (axes.get_title(loc="left"), bottom, top)


def test_a_chart_shows_a_true_0_as_0_a_hidden_count_as_x_the_total_and_the_unfinished_period() -> None:
    figures_document = document(SUPPRESSION_THRESHOLD, national=False)  # January shown, the rest a true 0
    (axes,) = chart(figures_document, "afzenders", date(2027, 6, 15)).axes
    above_bars = [text.get_text() for text in axes.texts]
    assert above_bars == [str(SUPPRESSION_THRESHOLD), "0", "0", "0", "0", "0"]
    assert f"(hele periode: {SUPPRESSION_THRESHOLD})" in axes.get_title(loc="left")
    assert [label.get_text() for label in axes.get_xticklabels()][-2:] == ["mei 2027", "jun 2027*"]
    assert axes.get_xlabel() == UNFINISHED_NOTE
    one = document(1, national=False)  # one melding in January: hidden, and so is any 0 that would give it away
    (axes,) = chart(one, "afzenders", date(2027, 7, 15)).axes
    said = {None: "x", 0: "0"}
    above_bars = [text.get_text() for text in axes.texts]
    assert above_bars == [said[p["meldingen"]] for p in one["periods"]] and above_bars[0] == "x" and "0" in above_bars
    assert "(hele periode: x)" in axes.get_title(loc="left") and axes.get_xlabel() == ""


def test_each_chart_is_also_an_svg_document_of_its_own_and_a_gemeente_has_no_chart_by_gemeente() -> None:
    local, national = document(SUPPRESSION_THRESHOLD, national=False), document(0, national=True)
    assert chart_names(local) == ["afzenders", "risicodomeinen", "stand", "contact", "uitkomsten"]
    assert chart_names(national) == [*chart_names(local), "gemeenten"]
    svg = chart_svg(local, "stand", TODAY)
    assert (
        svg.startswith('<?xml version="1.0" encoding="utf-8"?>\n<svg') and 'xmlns="http://www.w3.org/2000/svg"' in svg
    )
    assert "<script" not in svg and "<metadata" not in svg and 'href="http' not in svg
    with pytest.raises(KeyError):
        chart(local, "gemeenten", TODAY)


def test_the_period_still_running_is_the_dutch_one_also_just_after_midnight() -> None:
    """At 00:30 on 1 July in the Netherlands (22:30 UTC on 30 June) June is over: no period is marked `*`."""
    figures_document = document(SUPPRESSION_THRESHOLD, national=False)
    just_after_midnight = render_report(figures_document, datetime(2027, 6, 30, 22, 30, tzinfo=UTC))
    assert UNFINISHED_NOTE not in just_after_midnight
    an_hour_before = render_report(figures_document, datetime(2027, 6, 30, 20, 30, tzinfo=UTC))
    assert UNFINISHED_NOTE in an_hour_before

"""The figures in Dutch words (shared/figures_nl.py), as the report and the console's Cijfers page show them."""

from __future__ import annotations

from datetime import date

from shared.figures_nl import count, percent, period_name, total, unfinished


def test_a_hidden_figure_is_x_and_a_true_0_is_0_never_the_one_for_the_other() -> None:
    assert (count(None), count(0), count(12), count(4.5)) == ("x", "0", "12", "4,5")
    assert (percent(None), percent(0.0), percent(0.504)) == ("x", "0%", "50%")


def test_the_total_of_a_whole_period_says_when_parts_are_hidden() -> None:
    assert total([12, 0, 3]) == "15"
    assert total([12, None, 0]) == "ten minste 12"
    assert total([None, None]) == "x" and total([None, 0]) == "x"
    assert total([]) == "0"


def test_a_period_not_over_yet_is_marked() -> None:
    assert not unfinished("2026-Q4", date(2027, 1, 1)) and unfinished("2026-Q4", date(2026, 12, 31))
    assert period_name("2026-Q4", date(2026, 11, 2)) == "K4 2026*" and period_name("2026", date(2027, 1, 1)) == "2026"
    assert [period_name(f"2027-{m:02d}") for m in (1, 3, 5, 10)] == ["jan 2027", "mrt 2027", "mei 2027", "okt 2027"]

"""Secondary suppression over linked tables (services/melding/domain/protection.py)."""

from __future__ import annotations

import math
from unittest.mock import patch

from hypothesis import given
from hypothesis import strategies as st

from services.melding.domain.protection import Grid, Relation, _Book, follows_from_shown, protect, protect_numbered


def _one(total: str, counts: dict[str, int]) -> set[str]:
    everything = {total: sum(counts.values()), **counts}
    return protect(everything, [Relation(total, list(counts))], threshold=10)


def test_small_counts_are_hidden_with_the_smallest_other_until_the_rest_hides_ten() -> None:
    assert _one("t", {"a": 18, "b": 3}) == {"a", "b"}  # 21 - 18 would give the 3 away
    assert _one("t", {"a": 18, "b": 12, "c": 3}) == {"b", "c"}
    assert _one("t", {"a": 18, "b": 6, "c": 5}) == {"b", "c"}  # two small ones make 11: enough
    assert _one("t", {"a": 18, "b": 0, "c": 0}) == set()  # a 0 points to nobody


def test_a_zero_beside_a_hidden_count_is_hidden() -> None:
    # 20 = 11 + 9 + 0: showing the 0 says where the rest is.
    assert _one("t", {"a": 11, "b": 9, "c": 0}) == {"a", "b", "c"}


def test_a_hidden_total_needs_a_hidden_part() -> None:
    counts = {"q": 5, "m1": 5, "m2": 0, "y": 5}
    hidden = protect(counts, [Relation("q", ["m1", "m2"]), Relation("y", ["q"])], threshold=10)
    assert hidden == {"q", "m1", "m2", "y"}
    # A total of 12 hidden for another relation's sake, its parts all shown: one of them goes too.
    counts = {"q": 12, "m1": 12, "m2": 0, "y": 13, "q2": 1}
    hidden = protect(counts, [Relation("q", ["m1", "m2"]), Relation("y", ["q", "q2"])], threshold=10)
    assert {"q", "q2"} <= hidden and hidden & {"m1", "m2"}


def test_a_hidden_total_whose_shown_parts_give_it_away_is_no_hiding_place() -> None:
    # The year 16 = Q1 (15, all in January, shown) + Q3 (1): hiding Q1 as Q3's partner would not do,
    # January says Q1 is at least 15, so Q3 is at most 1. January goes too, or the year.
    counts = {"y": 16, "q1": 15, "q3": 1, "jan": 15, "feb": 0}
    relations = [Relation("y", ["q1", "q3"]), Relation("q1", ["jan", "feb"])]
    hidden = protect(counts, relations, threshold=10)
    assert {"q1", "q3"} <= hidden and ("jan" in hidden or "y" in hidden)


def test_hidden_parts_bounded_by_their_own_totals_are_no_hiding_place_for_each_other() -> None:
    # The country's 111 = a gemeente's 85 (shown) + a small gemeente's 16 + the 10 without a gemeente. The
    # 16 and the 10 are hidden for their own rows' sake (18 and 11 there, beside a 2 and a 1); together
    # they hold 26, but the 10 is at most 11, so the 16 lies in 15..18. The 85 is hidden too.
    counts = {"nl": 111, "a": 85, "s": 16, "w": 10, "s_row": 18, "s_other": 2, "w_row": 11, "w_other": 1}
    relations = [
        Relation("nl", ["a", "s", "w"]),
        Relation("s_row", ["s", "s_other"]),
        Relation("w_row", ["w", "w_other"]),
    ]
    assert protect(counts, relations, threshold=10) == {"s", "s_other", "w", "w_other", "a"}
    # With room enough (beside a 9, the 10 could be up to 19, so the 16 anything in 7..18), nothing more is.
    counts |= {"w_row": 19, "w_other": 9}
    assert protect(counts, relations, threshold=10) == {"s", "s_other", "w", "w_other"}


def test_a_grid_hides_a_part_of_a_row_whose_hidden_part_is_known() -> None:
    # Gemeenten a, s1, s2 × delivered, cancelled, withdrawn, with the country's sums. Shown: a's 60 and its
    # 50 delivered, the country's 74 and 61 delivered. So the country's 13 not delivered, less a's 10, leave
    # 3 for s1 and s2: s1's 1 cancelled lies in 0..3, though every relation on its own leaves enough unknown.
    rows = {"a": (50, 4, 6), "s1": (5, 1, 0), "s2": (6, 0, 2)}
    counts: dict[str, int] = {}
    for row, values in rows.items():
        counts[row] = sum(values)
        counts |= {f"{row}_{status}": value for status, value in zip("dcw", values, strict=True)}
    counts |= {f"nl_{status}": sum(counts[f"{row}_{status}"] for row in rows) for status in "dcw"}
    counts["nl"] = sum(counts[row] for row in rows)
    by_row = [Relation(row, [f"{row}_{status}" for status in "dcw"]) for row in (*rows, "nl")]
    by_status = [Relation(f"nl_{status}", [f"{row}_{status}" for row in rows]) for status in "dcw"]
    relations = [*by_row, *by_status, Relation("nl", list(rows))]
    hidden = protect(counts, relations, threshold=10)
    assert "a_d" not in hidden and {"a", "nl", "nl_d"}.isdisjoint(hidden)
    hidden = protect(counts, relations, threshold=10, grids=[Grid(by_row[-1], by_row[:-1])])
    assert hidden == {"a_c", "a_w", "s1", "s1_d", "s1_c", "s1_w", "s2", "s2_d", "s2_c", "s2_w", "nl_c", "nl_w", "a_d"}


def test_inequality_links_hide_only_the_zeros_beside_a_hidden_total() -> None:
    # 4 meldingen, all for verslaving: the 0s of the other domains would say each of them names it.
    counts = {"t": 4, "verslaving": 4, "lvb": 0}
    hidden = protect(counts, [Relation("t", ["verslaving", "lvb"], adds_up=False)], threshold=10)
    assert hidden == {"t", "verslaving", "lvb"}
    counts = {"t": 14, "verslaving": 4, "lvb": 0}
    hidden = protect(counts, [Relation("t", ["verslaving", "lvb"], adds_up=False)], threshold=10)
    assert hidden == {"verslaving"}


def test_unpublished_cells_count_as_hidden() -> None:
    counts = {"t": 30, "a": 15, "b": 15}
    assert protect(counts, [Relation("t", ["a", "b"])], threshold=10, unpublished=["b"]) == {"a", "b"}


@given(st.dictionaries(st.sampled_from("abcdefgh"), st.integers(min_value=0, max_value=40), min_size=1))
def test_the_total_minus_the_shown_parts_is_never_a_small_number(counts: dict[str, int]) -> None:
    hidden = _one("t", counts)
    total = sum(counts.values())
    rest = total - sum(v for k, v in counts.items() if k not in hidden)
    assert all(counts[k] == 0 or counts[k] >= 10 for k in counts if k not in hidden)
    assert "t" in hidden or rest == 0 or (rest >= 10 and len(hidden) >= 2)


def test_a_sum_of_parts_is_shown_only_where_the_shown_cells_give_it() -> None:
    # meldingen = jgz only + wijkteam only + both; jgz = jgz only + both.
    parts, jgz = ["a", "b", "c"], ["a", "c"]
    assert follows_from_shown("t", parts, jgz, hidden=set())
    assert follows_from_shown("t", parts, jgz, hidden={"b"})  # a and c are shown
    assert follows_from_shown("t", parts, jgz, hidden={"a", "c"})  # t - b
    assert not follows_from_shown("t", parts, jgz, hidden={"b", "c"})  # would give c + a, so c
    assert not follows_from_shown("t", parts, jgz, hidden={"t", "a", "c"})  # would give the hidden total
    assert not follows_from_shown("t", parts, jgz, hidden={"a", "b", "c"})


def test_a_relation_marked_total_first_hides_its_total_rather_than_another_part() -> None:
    # A region of a city (25) and a village (3): hiding the city as the 3's partner would need partners for
    # the city in its own months and quarters; the region's total goes instead.
    counts = {"region": 28, "city": 25, "village": 3}
    assert protect(counts, [Relation("region", ["city", "village"])], threshold=10) == {"city", "village"}
    marked = Relation("region", ["city", "village"], total_first=True)
    assert protect(counts, [marked], threshold=10) == {"region", "village"}
    # Two hidden parts that leave enough unknown need nothing more, marked or not.
    counts = {"region": 40, "city": 25, "village": 7, "town": 8}
    assert protect(counts, [Relation("region", ["city", "village", "town"], total_first=True)], threshold=10) == {
        "village",
        "town",
    }


def _linked_table(leaves: list[list[int]]) -> tuple[dict[str, int], list[Relation[str]]]:
    """Rows of six months, each row's two quarters and year, and the country's sum of the rows at each time."""
    counts: dict[str, int] = {}
    relations: list[Relation[str]] = []
    for row, months in enumerate([*leaves, None]):
        for month in range(6):
            cell = f"{row}m{month}"
            if months is None:  # the country
                parts = [f"{other}m{month}" for other in range(len(leaves))]
                counts[cell] = sum(counts[part] for part in parts)
                relations.append(Relation(cell, parts))
            else:
                counts[cell] = months[month]
        for quarter in range(2):
            parts = [f"{row}m{month}" for month in range(3 * quarter, 3 * quarter + 3)]
            counts[f"{row}q{quarter}"] = sum(counts[part] for part in parts)
            relations.append(Relation(f"{row}q{quarter}", parts))
        counts[f"{row}y"] = counts[f"{row}q0"] + counts[f"{row}q1"]
        relations.append(Relation(f"{row}y", [f"{row}q0", f"{row}q1"]))
    return counts, relations


@given(st.lists(st.lists(st.integers(min_value=0, max_value=25), min_size=6, max_size=6), min_size=2, max_size=6))
def test_the_bounds_kept_between_looks_hide_what_bounds_worked_out_afresh_hide(leaves: list[list[int]]) -> None:
    # `_Book` keeps each cell's least and most, and marks them stale when the relation that gave them moves:
    # worked out afresh at every look instead (the stale flags never cleared), the same cells are hidden.
    counts, relations = _linked_table(leaves)
    kept = protect(counts, relations, threshold=10)

    def least(book: _Book, cell: int) -> int:
        return max((book.shown_sum[index] for index in book.made_of[cell]), default=0)

    def most(book: _Book, cell: int) -> float:
        return min((book.room[index] for index in book.part_of[cell]), default=math.inf)

    with patch.object(_Book, "least", least), patch.object(_Book, "most", most):
        assert protect(counts, relations, threshold=10) == kept


@given(st.lists(st.lists(st.integers(min_value=0, max_value=25), min_size=6, max_size=6), min_size=2, max_size=6))
def test_numbered_cells_are_hidden_as_named_ones(leaves: list[list[int]]) -> None:
    counts, relations = _linked_table(leaves)
    number = {cell: at for at, cell in enumerate(counts)}
    numbered = [Relation(number[r.total], [number[part] for part in r.parts]) for r in relations]
    flags = protect_numbered(list(counts.values()), numbered, threshold=10)
    assert {cell for cell, at in number.items() if flags[at]} == protect(counts, relations, threshold=10)

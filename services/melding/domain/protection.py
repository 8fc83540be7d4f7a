"""Secondary cell suppression over linked tables: which cells of a table of counts to hide so that no hidden
small count can be worked out, or narrowed down, from the shown ones. No I/O here.

The table is a set of cells (any hashable key) with their counts and the relations that tie them together:
each `Relation` says that one cell (a total) is the sum of others (its parts) — a quarter is the sum of its
months, the country the sum of its gemeenten, a total the sum of its sender types. A reader who sees every
shown cell knows, for each relation, the sum of its hidden cells; `protect` hides cells until each relation
leaves enough unknown behind:

- every count from 1 to `threshold - 1` is hidden (primary suppression); so is every cell that is never
  published (`unpublished`), which is unknown to the reader all the same;
- where a relation's total is shown and some of its parts are hidden, at least two parts are hidden and they
  add up to 0 or to at least `threshold` meldingen the reader cannot place — a hidden part counts only for
  what its own shown parts do not give away (a hidden quarter whose one busy month is shown hides nothing);
  and each hidden part that is not 0 keeps a range of at least `threshold`, the others bounded by what the
  shown cells say of them: at least the sum of their own shown parts, at most a shown total they are part
  of less its shown parts (two hidden parts of 16 and 10 hide nothing when the 10 is at most 11);
- where a relation's total is hidden, at least one of its parts is hidden too, or the total would be the sum
  of the shown parts;
- a 0 beside a hidden count (in a relation with a hidden part that is not 0, or under a hidden total that is
  not 0) is hidden too: `0 + 0 + x = 12 - 9` says that x is 3;
- to satisfy a relation, the smallest shown part is hidden next (the least information lost), and the total
  only when the relation has no part left to hide — or first, for a relation marked `total_first`.

Hiding a cell can break another relation it is part of, so this runs until no relation needs anything more
(each step hides a cell, so it ends); relations under a hidden total go first, the large ones (the country's,
of every gemeente) last, and each relation's sum of shown parts is kept as cells are hidden rather than
summed again. The rules look at one relation at a time (with bounds from its neighbours); a `Grid` looks at
a two-way table as a whole (the reader adds rows and columns up at once), after the relations have settled,
and the relations settle again for what it hid.

The rules are those of the "hypercube" family of heuristics (τ-ARGUS, GHMITER, as CBS and Destatis use them):
they do not solve the optimal suppression problem, and what shows how far they hold for the figures' table
shape is the integer-programming attack in tests/unit/melding/test_figures_attack.py.
"""

from __future__ import annotations

import gc
import math
from collections import deque
from collections.abc import Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import compress
from typing import Generic, NamedTuple, TypeVar

C = TypeVar("C", bound=Hashable)  # a cell's key


class Relation(NamedTuple, Generic[C]):
    """`total` is the sum of `parts` (each part counted once); or, not `adds_up`, each part is at most the
    total and the parts together at least it (a melding names one or more risk domains). `total_first`: where
    the relation needs another cell hidden, its total goes before any part (a region's total before one more
    of its gemeenten: a part hidden here needs partners in its own relations, months, quarters and other
    regions' too, and on a year of national volume that cascade hid most gemeenten's year totals)."""

    total: C
    parts: Sequence[C]
    adds_up: bool = True
    total_first: bool = False


class Grid(NamedTuple, Generic[C]):
    """A two-way table: `rows` are relations whose parts line up with the parts of `margin`, and each part of
    `margin` is the sum of the row parts in its place (the country's statuses are the sums of the gemeenten's).
    The reader can add rows and columns up at once: where the margin's total is shown, the hidden part of
    the margin is known, and so is that of every row whose total is shown and whose hidden parts all lie
    in the margin's hidden places; what is left lies in the other rows and must be 0 or at least
    `threshold`, or else a part of a known row outside those places (or its total) is hidden too."""

    margin: Relation[C]
    rows: Sequence[Relation[C]]


def protect(
    counts: Mapping[C, int],
    relations: Iterable[Relation[C]],
    *,
    threshold: int,
    unpublished: Iterable[C] = (),
    grids: Iterable[Grid[C]] = (),
) -> set[C]:
    """The cells to hide (see the module's docstring, and `Grid`). Every cell a relation or grid names must be
    in `counts`."""
    with without_cycle_collection():
        cells = list(counts)
        number = {cell: at for at, cell in enumerate(cells)}
        numbered = number.__getitem__

        def renumbered(relation: Relation[C]) -> Relation[int]:
            return Relation(
                number[relation.total], tuple(map(numbered, relation.parts)), relation.adds_up, relation.total_first
            )

        hidden = _protect(
            [counts[cell] for cell in cells],
            [renumbered(relation) for relation in relations],
            threshold,
            map(numbered, unpublished),
            [Grid(renumbered(grid.margin), [renumbered(row) for row in grid.rows]) for grid in grids],
        )
        return {cell for cell, flag in zip(cells, hidden, strict=True) if flag}


def protect_numbered(
    counts: Sequence[int],
    relations: Iterable[Relation[int]],
    *,
    threshold: int,
    unpublished: Iterable[int] = (),
    grids: Iterable[Grid[int]] = (),
) -> bytearray:
    """`protect` for a table whose cells are the numbers 0 .. len(counts) - 1, `counts[cell]` the count of
    each: the same cells hidden, as a flag per cell (1: hidden). A year of the figures' table names its
    cells a million times in its relations; numbered from the start, none of them is looked up."""
    with without_cycle_collection():
        return _protect(counts, relations, threshold, unpublished, grids)


@contextmanager
def without_cycle_collection() -> Iterator[None]:
    """Runs its block with the cyclic garbage collector off (as it was after). A year of the country's
    meldingen makes 100,000s of small lists and tuples for its table, none of them in a cycle: the collector,
    run again and again over them, would take a third of the time."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _protect(
    counts: Sequence[int],
    relations: Iterable[Relation[int]],
    threshold: int,
    unpublished: Iterable[int],
    grids: Iterable[Grid[int]],
) -> bytearray:
    hidden = bytearray(1 if 0 < count < threshold else 0 for count in counts)
    for cell in unpublished:
        hidden[cell] = 1
    # A total of 0 has parts of 0: such a relation gives nothing away, and there are many in a sparse table.
    ties = [relation for relation in relations if counts[relation.total] > 0]
    book = _Book(list(counts), ties, hidden, threshold)
    tables = [
        (grid.margin.total, grid.margin.parts, [(row.total, row.parts) for row in grid.rows])
        for grid in grids
        if counts[grid.margin.total] > 0
    ]
    # Relations whose total is hidden go first: what they hide (a part of the hidden total) frees the total to
    # be another relation's hiding place, where the other relation would otherwise hide a shown sibling. Large
    # relations (the country's, of every gemeente) go last: the small ones settle first, so a large one is
    # looked at a few times rather than once for every cell of it that a small one hides.
    first: deque[int] = deque()
    small: deque[int] = deque()
    large: deque[int] = deque()

    def enqueue(index: int) -> None:
        tie = ties[index]
        if hidden[tie.total]:
            first.append(index)
        else:
            (large if len(tie.parts) > _LARGE else small).append(index)

    for index in range(len(ties)):
        enqueue(index)
    queued = bytearray(b"\x01" * len(ties))

    def settle() -> None:
        while first or small or large:
            index = (first or small or large).popleft()
            queued[index] = 0
            more = book.next_to_hide(index)
            if not more:
                continue
            for at in more:
                book.hide(at)
            for other in (*(o for at in more for o in (*book.part_of[at], *book.total_of[at])), index):
                if not queued[other]:  # this relation too: it may need more still
                    queued[other] = 1
                    enqueue(other)

    settle()
    # The grids once every relation is settled (each is a sum over a whole table), then the relations again
    # for what a grid hid, until neither needs more.
    while True:
        more = [at for table in tables for at in book.grid_needs(*table)]
        if not more:
            break
        for at in more:
            book.hide(at)
            for other in (*book.part_of[at], *book.total_of[at]):
                if not queued[other]:
                    queued[other] = 1
                    enqueue(other)
        settle()
    return hidden


_LARGE = 20  # parts


class _Book:
    """What the reader knows of each relation, kept up to date as cells are hidden (a relation of the country
    has 300+ parts: summing them again each time one is hidden would take seconds). Cells by number."""

    def __init__(self, counts: list[int], ties: list[Relation[int]], hidden: bytearray, threshold: int) -> None:
        self.counts, self.ties, self.hidden, self.threshold = counts, ties, hidden, threshold
        self.total_of: list[list[int]] = [[] for _ in counts]  # the relations it is the total of
        self.made_of: list[list[int]] = [[] for _ in counts]  # those that add up
        self.part_of: list[list[int]] = [[] for _ in counts]  # the relations it is a part of
        self.shown_sum: list[int] = []  # per relation, the sum of its shown parts
        # Per relation, the most it says each of its parts can be: its shown total less its shown parts (or,
        # not adding up, its shown total); inf while its total is hidden. Kept as cells are hidden, so that
        # what bounds a cell is one `min` over its relations (`most`), not a walk through their totals.
        self.room: list[float] = []
        self.adds_up = bytearray(tie.adds_up for tie in ties)
        for index, tie in enumerate(ties):
            self.total_of[tie.total].append(index)
            if tie.adds_up:
                self.made_of[tie.total].append(index)
            shown = 0
            for part in tie.parts:
                self.part_of[part].append(index)
                if not hidden[part]:
                    shown += counts[part]
            self.shown_sum.append(shown)
            total = counts[tie.total]
            self.room.append(math.inf if hidden[tie.total] else total - shown if tie.adds_up else total)
        # Each cell's `least` and `most`, kept between looks at its relations (a relation is looked at again
        # each time one of its cells is hidden, and most of its parts' bounds have not moved since). A cell's
        # `most` is the room of one of its relations, and rooms only grow as cells are hidden: it can change
        # only when that relation's room does, so the relation keeps the cells it bounds (`bounding`) and
        # marks them stale then. Likewise `least`, the shown sum of one relation the cell is the total of:
        # shown sums only shrink (`raising`).
        self.high: list[float] = [math.inf] * len(counts)
        self.low: list[int] = [0] * len(counts)
        self.high_stale = bytearray(b"\x01") * len(counts)
        self.low_stale = bytearray(b"\x01") * len(counts)
        self.bounding: dict[int, list[int]] = {}  # relation: the cells whose `most` its room is
        self.raising: dict[int, list[int]] = {}  # relation: the cells whose `least` its shown sum is

    def hide(self, cell: int) -> None:
        if self.hidden[cell]:
            return
        self.hidden[cell] = 1
        count, adds_up, shown_sum, room = self.counts[cell], self.adds_up, self.shown_sum, self.room
        if count:  # a 0 moves no sum and no room
            for index in self.part_of[cell]:
                shown_sum[index] -= count
                self._stale(self.raising, self.low_stale, index)
                if adds_up[index]:
                    room[index] += count  # inf stays inf
                    self._stale(self.bounding, self.high_stale, index)
        for index in self.total_of[cell]:
            if room[index] != math.inf:
                room[index] = math.inf
                self._stale(self.bounding, self.high_stale, index)

    @staticmethod
    def _stale(kept: dict[int, list[int]], stale: bytearray, index: int) -> None:
        """Marks the bounds `index` gave stale (its room or its shown sum moved)."""
        cells = kept.pop(index, None)
        if cells:
            for cell in cells:
                stale[cell] = 1

    def least(self, cell: int) -> int:
        """What the shown parts of a hidden cell say it is at least: the largest shown sum of a relation it
        is the total of (kept: see `__init__`)."""
        if self.low_stale[cell]:
            relations = self.made_of[cell]
            if relations:
                shown_sum = self.shown_sum
                index = max(relations, key=shown_sum.__getitem__)
                self.low[cell] = shown_sum[index]
                self.raising.setdefault(index, []).append(cell)
            self.low_stale[cell] = 0
        return self.low[cell]

    def most(self, cell: int) -> float:
        """What the shown totals the cell is a part of say it is at most: a shown total less its shown parts
        (or, for a part of a relation that does not add up, the shown total); the least room of its
        relations (kept: see `__init__`)."""
        if self.high_stale[cell]:
            relations = self.part_of[cell]
            if relations:
                room = self.room
                index = min(relations, key=room.__getitem__)
                self.high[cell] = room[index]
                self.bounding.setdefault(index, []).append(cell)
            self.high_stale[cell] = 0
        return self.high[cell]

    def next_to_hide(self, index: int) -> list[int]:
        """The next cells this relation needs hidden; none when it leaves enough unknown."""
        tie, counts, hidden = self.ties[index], self.counts, self.hidden
        parts = tie.parts
        hidden_parts = list(compress(parts, map(hidden.__getitem__, parts)))
        hiding = hidden[tie.total] and counts[tie.total] > 0
        if hiding or (tie.adds_up and any(counts[part] > 0 for part in hidden_parts)):
            # A 0 shown beside a hidden count bounds it: 0 + 0 + x = 12 - 9 says x is 3.
            if len(hidden_parts) < len(parts):
                zeros = [part for part in parts if not hidden[part] and counts[part] == 0]
                if zeros:
                    return zeros
        if not tie.adds_up:
            return []
        if hidden[tie.total]:
            return [] if hidden_parts else self.smallest(parts)
        if not hidden_parts or self.enough_unknown(index, hidden_parts):
            return []
        if tie.total_first:
            return [tie.total]
        return self.smallest(parts) or [tie.total]

    def enough_unknown(self, index: int, hidden_parts: list[int]) -> bool:
        """Whether the hidden parts of a relation with a shown total leave each of them (not 0) a range of at
        least `threshold`. The reader knows their sum; each part lies between what its own shown parts say it
        is at least and what the other shown totals it is a part of say it is at most; so one part lies
        between the sum less the most the others can be and the sum less the least they can be. (A
        gemeente's 16 hidden beside the 10 of the meldingen no gemeente was found for, 11 of those in all,
        are not hidden by them: the gemeente's lie between 26 - 11 and its own total, 18.)"""
        counts, threshold = self.counts, self.threshold
        if len(hidden_parts) < 2:
            return all(counts[part] == 0 for part in hidden_parts)
        hidden_sum = counts[self.ties[index].total] - self.shown_sum[index]
        # Each part's `least` and `most`, as kept where they have not moved (a call each would cost more).
        kept_low, low_stale, least = self.low, self.low_stale, self.least
        lows = [least(part) if low_stale[part] else kept_low[part] for part in hidden_parts]
        low_sum = sum(lows)
        if hidden_sum - low_sum < threshold:
            return False  # fewer than `threshold` meldingen the reader cannot place
        inf = math.inf
        kept_high, high_stale, most = self.high, self.high_stale, self.most
        highs = [most(part) if high_stale[part] else kept_high[part] for part in hidden_parts]
        unbounded = highs.count(inf)
        high_sum = sum(high for high in highs if high != inf)
        for part, low, high in zip(hidden_parts, lows, highs, strict=True):
            if counts[part] == 0:
                continue
            if high == inf:
                others_most = inf if unbounded > 1 else high_sum
            else:
                others_most = inf if unbounded else high_sum - high
            if min(high, hidden_sum - (low_sum - low)) - max(low, hidden_sum - others_most) < threshold:
                return False
        return True

    def grid_needs(self, total: int, margin: Sequence[int], rows: list[tuple[int, Sequence[int]]]) -> list[int]:
        """What a `Grid` needs hidden: nothing, or one cell of a row whose hidden part the reader knows."""
        counts, hidden = self.counts, self.hidden
        if hidden[total]:
            return []
        places = [place for place, part in enumerate(margin) if hidden[part]]
        left = sum(counts[margin[place]] for place in places)
        if left == 0:
            return []
        outside = [place for place in range(len(margin)) if not hidden[margin[place]]]
        best: tuple[int, int] | None = None  # (count, cell): the least to hide to make a known row unknown
        for row_total, parts in rows:
            if hidden[row_total] or any(hidden[parts[place]] for place in outside):
                continue  # the reader does not know what of this row lies in the hidden places
            left -= sum(counts[parts[place]] for place in places)
            shown = [(counts[parts[place]], parts[place]) for place in outside if counts[parts[place]] > 0]
            candidate = min(shown, default=(counts[row_total], row_total))
            if best is None or candidate < best:
                best = candidate
        if left == 0 or left >= self.threshold or best is None:
            return []
        return [best[1]]

    def smallest(self, cells: Sequence[int]) -> list[int]:
        """The shown cell with the smallest count (the first of equals), if any."""
        shown = [cell for cell in cells if not self.hidden[cell]]
        return [min(shown, key=self.counts.__getitem__)] if shown else []


def follows_from_shown(total: C, parts: Collection[C], summed: Collection[C], hidden: Collection[C]) -> bool:
    """Whether the sum of `summed` — some of the `parts` of a partition of `total` — can be worked out from
    the shown cells: all of `summed` are shown, or the total and every other part are. Such a sum tells the
    reader nothing the protected table does not already say, so it can be published; any other sum of
    hidden cells could give one of them away (a melding asks for jgz only, wijkteam only or both: `jgz`
    is `jgz only + both`, and shown beside the meldingen it says how many asked for wijkteam only)."""
    if not any(cell in hidden for cell in summed):
        return True
    return total not in hidden and not any(part in hidden for part in parts if part not in summed)

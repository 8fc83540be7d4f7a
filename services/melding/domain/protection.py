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
- where a relation's total is hidden, at least one of its parts is hidden too, or the total would be the sum
  of the shown parts;
- a 0 beside a hidden count (in a relation with a hidden part that is not 0, or under a hidden total that is
  not 0) is hidden too: `0 + 0 + x = 12 - 9` says that x is 3;
- to satisfy a relation, the smallest shown part is hidden next (the least information lost), and the total
  only when the relation has no part left to hide.

Hiding a cell can break another relation it is part of, so this runs until no relation needs anything more
(each step hides a cell, so it ends); relations under a hidden total go first. The rules are those of the
"hypercube" family of heuristics (τ-ARGUS, GHMITER, as CBS and Destatis use them): they do not solve the
optimal suppression problem, and what shows they suffice for the figures' table shape is the
integer-programming attack in tests/unit/melding/test_figures_attack.py.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from typing import Generic, NamedTuple, TypeVar

C = TypeVar("C", bound=Hashable)  # a cell's key


class Relation(NamedTuple, Generic[C]):
    """`total` is the sum of `parts` (each part counted once); or, not `adds_up`, each part is at most the
    total and the parts together at least it (a melding names one or more risk domains)."""

    total: C
    parts: Sequence[C]
    adds_up: bool = True


def protect(
    counts: Mapping[C, int],
    relations: Iterable[Relation[C]],
    *,
    threshold: int,
    unpublished: Iterable[C] = (),
) -> set[C]:
    """The cells to hide (see the module's docstring). Every cell a relation names must be in `counts`."""
    hidden = {cell for cell, count in counts.items() if 0 < count < threshold}
    hidden.update(unpublished)
    # A total of 0 has parts of 0: such a relation gives nothing away, and there are many in a sparse table.
    ties = [relation for relation in relations if counts[relation.total] > 0]
    of_cell: dict[C, list[int]] = defaultdict(list)
    for index, relation in enumerate(ties):
        of_cell[relation.total].append(index)
        for part in relation.parts:
            of_cell[part].append(index)
    made_of: dict[C, list[Relation[C]]] = defaultdict(list)
    for relation in ties:
        if relation.adds_up:
            made_of[relation.total].append(relation)

    def partly_known(cell: C) -> int:
        """What the shown parts of a hidden cell say it is at least."""
        return max((sum(counts[p] for p in r.parts if p not in hidden) for r in made_of.get(cell, ())), default=0)

    # Relations whose total is hidden go first: what they hide (a part of the hidden total) frees the total to
    # be another relation's hiding place, where the other relation would otherwise hide a shown sibling.
    first: deque[int] = deque(i for i, r in enumerate(ties) if r.total in hidden)
    then: deque[int] = deque(i for i, r in enumerate(ties) if r.total not in hidden)
    queued = set(range(len(ties)))
    while first or then:
        index = first.popleft() if first else then.popleft()
        queued.discard(index)
        more = _next_to_hide(ties[index], counts, hidden, threshold, partly_known)
        hidden.update(more)
        for other in (*(o for cell in more for o in of_cell[cell]), index) if more else ():
            if other not in queued:  # this relation too: it may need more still
                queued.add(other)
                (first if ties[other].total in hidden else then).append(other)
    return hidden


def _next_to_hide(
    relation: Relation[C],
    counts: Mapping[C, int],
    hidden: set[C],
    threshold: int,
    partly_known: Callable[[C], int],
) -> list[C]:
    """The next cells this relation needs hidden; none when it leaves enough unknown."""
    hidden_parts = [part for part in relation.parts if part in hidden]
    hiding = relation.total in hidden and counts[relation.total] > 0
    if hiding or (relation.adds_up and any(counts[part] > 0 for part in hidden_parts)):
        # A 0 shown beside a hidden count bounds it: 0 + 0 + x = 12 - 9 says x is 3.
        zeros = [part for part in relation.parts if part not in hidden and counts[part] == 0]
        if zeros:
            return zeros
    if not relation.adds_up:
        return []
    if relation.total in hidden:
        return [] if hidden_parts else _smallest(relation.parts, counts, hidden)
    # What the reader cannot tell apart: the hidden parts, less what their own shown parts give away (a
    # hidden quarter whose only melding month is shown is no hiding place).
    if not hidden_parts:
        return []
    unknown = 0
    for part in hidden_parts:  # summed only as far as needed: the country's relations have 300+ parts
        unknown += counts[part] - partly_known(part)
        if unknown >= threshold and len(hidden_parts) >= 2:
            return []
    if unknown == 0:
        return []
    return _smallest(relation.parts, counts, hidden, fallback=relation.total)


def _smallest(cells: Sequence[C], counts: Mapping[C, int], hidden: set[C], fallback: C | None = None) -> list[C]:
    """The shown cell with the smallest count (the first of equals); else `fallback`."""
    shown = [cell for cell in cells if cell not in hidden]
    if shown:
        return [min(shown, key=lambda cell: counts[cell])]
    return [] if fallback is None else [fallback]


def follows_from_shown(total: C, parts: Collection[C], summed: Collection[C], hidden: Collection[C]) -> bool:
    """Whether the sum of `summed` — some of the `parts` of a partition of `total` — can be worked out from
    the shown cells: all of `summed` are shown, or the total and every other part are. Such a sum tells the
    reader nothing the protected table does not already say, so it can be published; any other sum of
    hidden cells could give one of them away (a melding asks for jgz only, wijkteam only or both: `jgz`
    is `jgz only + both`, and shown beside the meldingen it says how many asked for wijkteam only)."""
    if not any(cell in hidden for cell in summed):
        return True
    return total not in hidden and not any(part in hidden for part in parts if part not in summed)

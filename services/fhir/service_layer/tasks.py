"""Task search over the v1 melding list: the database narrows by status and last change (`GET /v1/meldingen`
with `status` and `updated_since`), the facade tells the Task statuses a melding's deliveries decide apart
and cuts the page after `_count` matches, so that a page holds `_count` matches unless it is the last."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.fhir.domain.melding import task_resource
from services.fhir.domain.search import MAX_COUNT, TaskSearch
from shared.clock import FIRST_YEAR, LAST_YEAR
from shared.pagination import encode_cursor

# One page of `GET /v1/meldingen` for these query parameters (a v1 error is raised, as the routes answer it).
ListPage = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
# One melding by id (`GET /v1/meldingen/{id}`), None when the caller has none by that id.
ReadOne = Callable[[str], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class TaskPage:
    tasks: list[dict[str, Any]]
    next_cursor: str | None
    total: int | None


async def search_tasks(search: TaskSearch, *, list_page: ListPage, read_one: ReadOne) -> TaskPage:
    """The page of Tasks `search` asks for, its next page's cursor, and the number of all matches when asked."""
    if search.ids:
        found = [task_resource(m) for m in [await read_one(i) for i in search.ids] if m is not None]
        tasks = [t for t in found if search.matches(t)]
        return TaskPage([] if search.summary_count else tasks, None, len(tasks) if search.total else None)
    if search.summary_count:
        every, _ = await _scan(search, list_page, cursor=None, wanted=None)
        return TaskPage([], None, len(every))
    tasks, next_cursor = await _scan(search, list_page, cursor=search.cursor, wanted=search.count)
    total = None
    if search.total:
        if search.cursor is None and next_cursor is None:
            total = len(tasks)  # the first page is every match
        else:
            total = len((await _scan(search, list_page, cursor=None, wanted=None))[0])
    return TaskPage(tasks, next_cursor, total)


async def _scan(
    search: TaskSearch, list_page: ListPage, *, cursor: str | None, wanted: int | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Matches from `cursor` on, newest first: up to `wanted` of them and the cursor after the last one when
    one more exists (None: every match, no cursor)."""
    params: dict[str, Any] = {}
    if search.melding_statuses:
        params["status"] = list(search.melding_statuses)
    since = search.updated_since
    if since is not None and since.year > LAST_YEAR:
        return [], None  # nothing changed after the last year the platform takes a time in
    if since is not None and since.year >= FIRST_YEAR:  # (before the first: every melding)
        params["updated_since"] = since.isoformat()
    # the first page just large enough when every melding matches; the facade's filter may need more after it
    limit = min(MAX_COUNT, wanted + 1) if wanted is not None else MAX_COUNT
    matches: list[tuple[dict[str, Any], dict[str, Any]]] = []
    while True:
        page = await list_page({**params, "limit": limit, **({"cursor": cursor} if cursor else {})})
        for melding in page["items"]:
            task = task_resource(melding)
            if not search.matches(task):
                continue
            if wanted is not None and len(matches) == wanted:  # one more: the next page starts after the last
                last = matches[-1][0]
                return [t for _, t in matches], encode_cursor(_moment(last["created_at"]), str(last["id"]))
            matches.append((melding, task))
        cursor = page.get("next_cursor")
        if not cursor:
            return [t for _, t in matches], None
        limit = MAX_COUNT


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))

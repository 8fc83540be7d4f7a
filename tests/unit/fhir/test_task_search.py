"""Task search over the v1 melding list, without a server: the facade keeps asking v1 for pages until it has
`_count` matches (or there are no more), and its next page starts right after the last match it answered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.fhir.domain.search import TaskSearch
from services.fhir.service_layer.tasks import search_tasks
from shared.pagination import decode_cursor, encode_cursor

START = datetime(2026, 12, 1, 9, tzinfo=UTC)


def _melding(number: int, status: str) -> dict[str, Any]:
    at = (START + timedelta(minutes=number)).isoformat()
    return {
        "id": f"00000000-0000-4000-8000-{number:012d}",
        "status": status,
        "created_at": at,
        "updated_at": at,
        "sender": {"org_id": "10000001", "org_type": "verloskundige", "sub": "m.jansen"},
        "not_delivered_reason": None,
        "deliveries": [],
    }


class FakeMeldingList:
    """`GET /v1/meldingen` over `meldingen` (newest first), filtered by status as the database does."""

    def __init__(self, meldingen: list[dict[str, Any]]) -> None:
        self.meldingen = sorted(meldingen, key=lambda m: m["created_at"], reverse=True)
        self.calls: list[dict[str, Any]] = []

    async def list_page(self, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(params)
        found = [m for m in self.meldingen if not params.get("status") or m["status"] in params["status"]]
        if cursor := params.get("cursor"):
            at, item_id = decode_cursor(cursor)
            found = [m for m in found if (datetime.fromisoformat(m["created_at"]), m["id"]) < (at, item_id)]
        page = found[: params["limit"]]
        more = len(found) > params["limit"]
        last = page[-1] if page else None
        next_cursor = encode_cursor(datetime.fromisoformat(last["created_at"]), last["id"]) if more and last else None
        return {"items": page, "next_cursor": next_cursor}

    async def read_one(self, melding_id: str) -> dict[str, Any] | None:
        return next((m for m in self.meldingen if m["id"] == melding_id), None)


async def test_a_page_holds_count_matches_and_the_next_starts_after_the_last_one() -> None:
    # newest first: unroutable ones (rejected) between the accepted ones (requested) the search wants
    meldingen = [_melding(n, "accepted" if n % 3 == 0 else "unroutable") for n in range(30)]
    v1 = FakeMeldingList(meldingen)
    search = TaskSearch.of([("status", "requested"), ("_count", "4")])
    first = await search_tasks(search, list_page=v1.list_page, read_one=v1.read_one)
    wanted = [m["id"] for m in v1.meldingen if m["status"] == "accepted"]
    assert [t["id"] for t in first.tasks] == wanted[:4] and first.next_cursor and first.total is None
    assert {tuple(c["status"]) for c in v1.calls} == {("accepted",)}  # the database narrows first

    pages = [first]
    while pages[-1].next_cursor:
        after = TaskSearch.of([("status", "requested"), ("_count", "4"), ("_cursor", pages[-1].next_cursor)])
        pages.append(await search_tasks(after, list_page=v1.list_page, read_one=v1.read_one))
    assert [len(p.tasks) for p in pages] == [4, 4, 2]
    assert [t["id"] for p in pages for t in p.tasks] == wanted


async def test_statuses_the_deliveries_decide_are_told_apart_after_the_database_and_still_fill_a_page() -> None:
    meldingen = [_melding(n, "delivered") for n in range(12)]
    for n, melding in enumerate(meldingen):
        melding["deliveries"] = [
            {
                "delivery_id": f"d{n}",
                "org_id": "12345678",
                "org_name": "JGZ",
                "status": "closed" if n % 4 else "received",
            }
        ]
    v1 = FakeMeldingList(meldingen)
    search = TaskSearch.of([("status", "received"), ("_count", "2"), ("_total", "accurate")])
    page = await search_tasks(search, list_page=v1.list_page, read_one=v1.read_one)
    assert [t["status"] for t in page.tasks] == ["received", "received"] and page.total == 3
    assert page.next_cursor is not None


async def test_the_total_alone_and_tasks_by_id() -> None:
    meldingen = [_melding(n, "accepted") for n in range(5)]
    v1 = FakeMeldingList(meldingen)
    counted = await search_tasks(TaskSearch.of([("_summary", "count")]), list_page=v1.list_page, read_one=v1.read_one)
    assert counted.tasks == [] and counted.total == 5 and counted.next_cursor is None
    wanted = [meldingen[1]["id"], "00000000-0000-4000-8000-999999999999"]
    by_id = await search_tasks(TaskSearch.of([("_id", ",".join(wanted))]), list_page=v1.list_page, read_one=v1.read_one)
    assert [t["id"] for t in by_id.tasks] == [meldingen[1]["id"]]  # an id of no melding: no Task, no error
    assert v1.calls == [{"limit": 100}]  # listed for the count only: Tasks by id are read one by one

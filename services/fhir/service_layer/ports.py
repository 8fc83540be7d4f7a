"""What the FHIR facade's use cases need of their unit of work, as a Protocol: the real one
(`service_layer/unit_of_work.py`, with `adapters/repository.py`) satisfies it, and so must any in-memory fake
a unit test hands a use case (mypy checks both)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from services.fhir.adapters.repository import Target
from services.fhir.domain.subscription import Event, SubscriptionRequest, SubscriptionView
from shared.ports import AuditTrail, StagingOutbox, Transaction


class SubscriptionRecords(Protocol):
    """The subscriptions of the organisations, and the notifications waiting for their endpoints."""

    async def add(
        self, *, subscription_id: str, org_id: str, request: SubscriptionRequest, created_by: str, at: datetime
    ) -> SubscriptionView: ...

    async def lock_and_count(self, org_id: str) -> int: ...

    async def get(self, subscription_id: str, org_id: str) -> SubscriptionView | None: ...

    async def delete(self, subscription_id: str, org_id: str) -> bool: ...

    async def active_for(self, org_id: str) -> list[str]: ...

    async def active_of(self, org_ids: Collection[str]) -> dict[str, list[str]]: ...

    async def take_event_numbers(self, subscription_id: str, count: int) -> int: ...

    async def add_notifications(self, events: Sequence[tuple[str, Event]]) -> None: ...

    async def next_event_number(self, subscription_id: str) -> int: ...

    async def add_notification(self, subscription_id: str, event: Event) -> None: ...

    async def due(self, now: datetime, limit: int, *, per_organisation: int) -> list[tuple[str, str]]: ...

    async def claim(
        self, subscription_id: str, now: datetime, lease: timedelta, limit: int
    ) -> tuple[list[Event], int]: ...

    async def target(self, subscription_id: str) -> Target | None: ...

    async def sent(self, subscription_id: str, numbers: list[int], at: datetime) -> None: ...

    async def failed(
        self, subscription_id: str, first: int, *, attempts: int, error: str, retry_at: datetime
    ) -> None: ...

    async def set_error(self, subscription_id: str, error: str) -> None: ...

    async def heartbeats_due(self, now: datetime) -> list[tuple[str, str]]: ...

    async def touch(self, subscription_id: str, at: datetime) -> None: ...

    async def backlog(self, now: datetime) -> tuple[int, float, int]: ...


class FhirTransaction(Transaction, Protocol):
    """One transaction of the FHIR facade's unit of work, as its use cases use it."""

    @property
    def subscriptions(self) -> SubscriptionRecords: ...

    @property
    def outbox(self) -> StagingOutbox: ...

    @property
    def audit(self) -> AuditTrail: ...


TransactionFactory = Callable[[], FhirTransaction]

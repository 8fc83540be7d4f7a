"""Messages for recipients' queues, numbered per organisation when their transaction commits.

Every message on `kansrijk.deliveries.<org_id>` (delivery, retraction, reminder) carries `sequence`: 1, 2,
3, … per organisation, without gaps, in commit order (contract v1.1, "Recipients: sequence"). A use case
stages a message here; just before its transaction commits, the messages get their numbers — the
organisation's counter row is incremented and stays locked until the commit, so a concurrent transaction
(another routing replica) waits and continues after the last number, and a rollback gives its numbers
back — then go to the outbox and to the log `GET /v1/deliveries/messages` reads. Organisations are numbered
in one order (by id) in every transaction, so two transactions never wait on each other's counters; and the
numbering is the last thing before COMMIT (after the audit records, `HOOK_NUMBERING`), in two statements:
one organisation's transactions commit one at a time, so the counter is held for as short a time as can be.

The log keeps no personal data of its own: a full delivery is kept in its thin form and read back from
the delivery, which loses its content on retraction and at the retention purge like any other copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel

from services.routing.domain.model import LoggedMessage
from services.routing.service_layer.ports import RoutingRecords
from shared.clock import now
from shared.db import HOOK_NUMBERING, UnitOfWork
from shared.messaging.topology import DELIVERIES_EXCHANGE
from shared.ports import CommitHook, StagingOutbox
from shared.tracing import current_context

KEY = "recipient-queue"


@dataclass(frozen=True)
class _Staged:
    org_id: str
    message_type: str
    message: BaseModel  # what goes on the queue
    kept: BaseModel  # what the log keeps: the message, or a full delivery's thin form
    message_id: str
    delivery_id: str
    correlation_id: str
    request_id: str | None
    staged_in: dict[str, str] | None  # the trace context of the use case that staged it (a consumer's span)


class _Transaction(Protocol):
    """What the queue needs of the unit of work it is bound to (routing's, `RoutingUnitOfWork`, which owns
    the queue: described here rather than imported, so the two modules do not import each other)."""

    @property
    def routing(self) -> RoutingRecords: ...

    @property
    def outbox(self) -> StagingOutbox: ...

    def before_commit(self, key: str, hook: CommitHook, *, order: int = 0) -> None: ...


class RecipientQueue:
    """The recipients' queues as a use case sees them, bound to its unit of work."""

    def __init__(self, uow: _Transaction) -> None:
        self.uow = uow
        self._staged: list[_Staged] = []

    def stage(
        self,
        org_id: str,
        message_type: str,
        message: BaseModel,
        *,
        message_id: str,
        delivery_id: str,
        correlation_id: str,
        request_id: str | None,
        kept: BaseModel | None = None,
    ) -> None:
        """Put `message` on the organisation's queue when this transaction commits, under a stable
        `message_id` (recipients drop duplicates by it). `kept`: what the log may keep instead (a full
        delivery's thin form: the log holds no personal data)."""
        self._staged.append(
            _Staged(
                org_id,
                message_type,
                message,
                kept or message,
                message_id,
                delivery_id,
                correlation_id,
                request_id,
                current_context(),  # numbered at commit, outside the span of the message that caused it
            )
        )
        self.uow.before_commit(KEY, self._number, order=HOOK_NUMBERING)

    async def _number(self, uow: UnitOfWork, _key: str) -> None:
        staged, self._staged = self._staged, []
        at = now()
        logged: list[LoggedMessage] = []
        rows = []
        for org_id in sorted({s.org_id for s in staged}):
            mine = [s for s in staged if s.org_id == org_id]
            last = await self.uow.routing.take_sequences(org_id, len(mine))
            for sequence, s in enumerate(mine, start=last - len(mine) + 1):
                rows.append(
                    self.uow.outbox.row(
                        exchange=DELIVERIES_EXCHANGE,
                        routing_key=org_id,
                        message_type=s.message_type,
                        body={**s.message.model_dump(mode="json"), "sequence": sequence},
                        message_id=s.message_id,
                        correlation_id=s.correlation_id,
                        request_id=s.request_id,
                        staged_in=s.staged_in,
                        # The queue exists from the organisation's PUT on: a missing one is a retry, not a loss.
                        mandatory=True,
                    )
                )
                logged.append(
                    LoggedMessage(
                        org_id=org_id,
                        sequence=sequence,
                        message_id=s.message_id,
                        message_type=s.message_type,
                        delivery_id=s.delivery_id,
                        body={**s.kept.model_dump(mode="json"), "sequence": sequence},
                        full=s.kept is not s.message,
                    )
                )
        # The counters stay locked until COMMIT: this hook runs last, and writes in two statements.
        await self.uow.outbox.add_rows(rows)
        await self.uow.routing.log_recipient_messages(logged, at)

"""The FHIR facade's tables. It keeps no melding or consent of its own (it speaks for the v1 APIs); its
database holds its subscriptions, the notifications waiting to reach their endpoints (an outbox of HTTP
calls: nothing is lost while the facade or an endpoint is down), and the frame every service has."""

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table

from shared.audit import audit_tables
from shared.db import EncryptedText, UTCDateTime, new_metadata
from shared.messaging.consumer import processed_messages_table
from shared.messaging.outbox import outbox_table

metadata = new_metadata()

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(64), nullable=False, comment="the organisation whose Tasks it follows"),
    Column("endpoint", String(2000), nullable=False),
    Column("headers", EncryptedText("subscriptions.headers"), nullable=False, comment="JSON list, encrypted"),
    Column("heartbeat_seconds", Integer, nullable=True),
    Column("reason", String(500), nullable=False),
    Column("status", String(16), nullable=False, comment="active, error or off"),
    Column("error", String(500), nullable=True, comment="why it is in error"),
    Column("events", Integer, nullable=False, comment="events since it started: the last event number"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("last_sent_at", UTCDateTime(), nullable=True),
    Index("ix_subscriptions_org_id", "org_id", "status"),
)

# One row per organisation that made a Subscription: the lock its Subscriptions are counted under, so that
# a burst of creations at once cannot pass the limit per organisation.
subscription_owners = Table(
    "subscription_owners",
    metadata,
    Column("org_id", String(64), primary_key=True),
)

notifications = Table(
    "notifications",
    metadata,
    Column("subscription_id", String(36), ForeignKey("subscriptions.id", ondelete="CASCADE"), primary_key=True),
    Column("event_number", Integer, primary_key=True),
    Column("task_id", String(36), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("locked_until", UTCDateTime(), nullable=True),
    Column("sent_at", UTCDateTime(), nullable=True),
    Column("last_error", String(200), nullable=True, comment="the HTTP status or error type, no content"),
    Index("ix_notifications_pending", "sent_at", "next_attempt_at"),
)

outbox = outbox_table(metadata)
processed_messages = processed_messages_table(metadata)
audit = audit_tables(metadata)

"""The routing service's tables: the directory, the meldingen it routes, their deliveries, dead letters."""

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)

from shared.audit import audit_tables
from shared.consent_feed import consent_feed_table
from shared.db import EncryptedText, UTCDateTime, new_metadata
from shared.messaging.consumer import processed_messages_table
from shared.messaging.outbox import outbox_table

metadata = new_metadata()

gemeenten = Table(
    "gemeenten",
    metadata,
    Column("code", String(6), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("source", String(100), nullable=False, comment="'manual' or the CBS edition it was loaded from"),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime(), nullable=True, comment="no longer in the current edition (merged)"),
)

gemeente_ranges = Table(
    "gemeente_ranges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("gemeente_code", String(6), ForeignKey("gemeenten.code"), nullable=False, index=True),
    Column("from_pc4", String(4), nullable=False),
    Column("to_pc4", String(4), nullable=False),
    Index("ix_gemeente_ranges_span", "from_pc4", "to_pc4"),
)

straddling_areas = Table(
    "straddling_areas",
    metadata,
    Column("pc4", String(4), nullable=False),
    Column("gemeente_code", String(6), nullable=False),
    Column("share", Float, nullable=False),
    PrimaryKeyConstraint("pc4", "gemeente_code"),
)

directory_loads = Table(
    "directory_loads",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("edition", String(100), nullable=False),
    Column("gemeenten", Integer, nullable=False),
    Column("postcode_areas", Integer, nullable=False),
    Column("ended", Integer, nullable=False),
)

route_maps = Table(
    "route_maps",
    metadata,
    Column("gemeente_code", String(6), ForeignKey("gemeenten.code"), nullable=False),
    Column("effective_from", Date, nullable=False),
    Column("recipients", Text, nullable=False, comment="JSON: {type: {risk_domains: 'all' | [...], note}}"),
    Column("contact_deadline", Text, nullable=False, comment="JSON: {urgency: seconds}"),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("gemeente_code", "effective_from"),
)

organisations = Table(
    "organisations",
    metadata,
    Column("org_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("type", String(16), nullable=False),
    Column("active", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column(
        "delivery_mode",
        String(8),
        nullable=False,
        server_default="full",
        comment="full: the queue carries the melding; thin: ids and href only",
    ),
)

organisation_gemeenten = Table(
    "organisation_gemeenten",
    metadata,
    Column("org_id", String(64), ForeignKey("organisations.org_id"), nullable=False),
    Column("gemeente_code", String(6), nullable=False, index=True),
    PrimaryKeyConstraint("org_id", "gemeente_code"),
)

organisation_ranges = Table(
    "organisation_ranges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("org_id", String(64), ForeignKey("organisations.org_id"), nullable=False, index=True),
    Column("from_pc4", String(4), nullable=False),
    Column("to_pc4", String(4), nullable=False),
)

routed_meldingen = Table(
    "routed_meldingen",
    metadata,
    Column("melding_id", String(36), primary_key=True),
    Column("consent_id", String(64), nullable=False, index=True),
    Column("sender_org_id", String(64), nullable=False),
    Column("status", String(16), nullable=False, comment="new | waiting | routed | withdrawn | not_delivered"),
    Column(
        "accepted",
        EncryptedText("routed_meldingen.accepted"),
        nullable=True,
        comment="the melding.accepted body, encrypted; removed on withdrawal",
    ),
    Column("requested_types", String(32), nullable=False),
    Column("unroutable_types", String(32), nullable=False),
    Column("gemeente_code", String(6), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("expected_due_date", Date, nullable=True, comment="kept after the purge: it dates the retention"),
    Column("purged_at", UTCDateTime(), nullable=True),
    Column("skipped_types", Text, nullable=False, server_default="[]", comment="JSON: [{recipient_type, reason}]"),
    Column("not_delivered_reason", String(32), nullable=True, comment="route-map | consent-expired | consent-refused"),
    Column("returned", Text, nullable=False, server_default="[]", comment="JSON: [{recipient_type, org_id, reason}]"),
    Column(
        "bsn_ref",
        String(64),
        nullable=True,
        comment="keyed hash of the BSN: one pregnancy's meldingen are linked by it",
    ),
    Index("ix_routed_meldingen_bsn_ref", "bsn_ref"),
    Index("ix_routed_meldingen_expected_due_date", "expected_due_date"),
    Index("ix_routed_meldingen_status", "status", "created_at"),
)

consent_states = Table(
    "consent_states",
    metadata,
    Column("consent_id", String(64), primary_key=True, comment="locked by routing and withdrawal alike"),
    Column("withdrawn_at", UTCDateTime(), nullable=True),
)
consent_feed = consent_feed_table(metadata)

deliveries = Table(
    "deliveries",
    metadata,
    Column("delivery_id", String(36), primary_key=True),
    Column("melding_id", String(36), ForeignKey("routed_meldingen.melding_id"), nullable=False, index=True),
    Column("org_id", String(64), nullable=False),
    Column("org_name", String(200), nullable=False),
    Column("recipient_type", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_note", EncryptedText("deliveries.status_note"), nullable=True),
    Column(
        "message",
        EncryptedText("deliveries.message"),
        nullable=True,
        comment="the melding.delivered body, encrypted; replaced on retraction",
    ),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("contact_due_at", UTCDateTime(), nullable=True, comment="delivered at + the route map's deadline"),
    Column("overdue_at", UTCDateTime(), nullable=True, comment="when it passed its deadline (its reminder sent)"),
    Column("contact_at", Date, nullable=True),
    Column("outcome", String(32), nullable=True),
    Column("returned_reason", String(32), nullable=True),
    # One live delivery per melding and type; a returned one makes way for the next.
    Index(
        "uq_deliveries_melding_type_live",
        "melding_id",
        "recipient_type",
        unique=True,
        postgresql_where=text("status <> 'returned'"),
        sqlite_where=text("status <> 'returned'"),
    ),
    Index("ix_deliveries_due", "overdue_at", "contact_due_at"),
    Index("ix_deliveries_org_created", "org_id", "created_at"),
)

# A sender's cancellation, kept by melding id: it may arrive before the melding itself (another queue).
cancellations = Table(
    "cancellations",
    metadata,
    Column("melding_id", String(36), primary_key=True, comment="locked by routing and cancellation alike"),
    Column("reason", String(32), nullable=True),
    Column("cancelled_at", UTCDateTime(), nullable=True),
)

# Every message on a recipient's queue is numbered per organisation, 1, 2, 3, ... in commit order: the
# counter's row is locked by the commit that numbers, so numbers are neither repeated nor skipped.
recipient_sequences = Table(
    "recipient_sequences",
    metadata,
    Column("org_id", String(64), primary_key=True),
    Column("last_sequence", Integer, nullable=False, comment="locked by each commit that numbers"),
)

# What went on each recipient's queue, by number: `GET /v1/deliveries/messages?after_sequence=N`.
recipient_messages = Table(
    "recipient_messages",
    metadata,
    Column("org_id", String(64), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("message_id", String(100), nullable=False),
    Column("message_type", String(32), nullable=False),
    Column("delivery_id", String(36), nullable=False),
    Column(
        "body",
        EncryptedText("recipient_messages.body"),
        nullable=False,
        comment="the message as queued, less personal data (a full delivery's is read from its delivery)",
    ),
    Column("full", Boolean, nullable=False, comment="a full delivery: its content lives in deliveries"),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("org_id", "sequence"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("queue", String(200), nullable=False),
    Column("message_id", String(100), nullable=True),
    Column("message_type", String(100), nullable=True),
    Column("body", EncryptedText("dead_letters.body"), nullable=False),
    Column("body_encoding", String(8), nullable=False, comment="utf-8, or base64 for an unreadable body"),
    Column("correlation_id", String(128), nullable=True),
    Column("reason", String(32), nullable=True),
    Column("died_at", UTCDateTime(), nullable=False),
    Column("replayed_at", UTCDateTime(), nullable=True),
)

outbox = outbox_table(metadata)
processed_messages = processed_messages_table(metadata)
audit = audit_tables(metadata)

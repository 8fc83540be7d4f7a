"""The melding service's tables. The melding's personal content is one JSON document (`content`)."""

from sqlalchemy import Column, Date, ForeignKey, Index, Integer, PrimaryKeyConstraint, String, Table, Text

from shared.audit import audit_tables
from shared.consent_feed import consent_feed_table
from shared.db import EncryptedText, UTCDateTime, new_metadata
from shared.idempotency import idempotency_table
from shared.messaging.consumer import processed_messages_table
from shared.messaging.outbox import outbox_table

metadata = new_metadata()

meldingen = Table(
    "meldingen",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("sender_org_id", String(64), nullable=False),
    Column("sender_org_type", String(32), nullable=False),
    Column("sender_sub", String(200), nullable=False),
    Column("consent_id", String(64), nullable=False),
    Column("consent", Text, nullable=False, comment="JSON: id, recipient_types, valid_until"),
    Column(
        "content",
        EncryptedText("meldingen.content"),
        nullable=True,
        comment="JSON: patient, pregnancy, risk domains, note, contact; encrypted; NULL once purged",
    ),
    Column("gemeente_code", String(6), nullable=True),
    Column("gemeente_name", String(100), nullable=True),
    Column("unroutable_types", String(32), nullable=False, default=""),
    Column("routing_reported_unroutable", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("withdrawn_at", UTCDateTime(), nullable=True),
    Column("expected_due_date", Date, nullable=True, comment="kept after the purge: it dates the retention"),
    Column("purged_at", UTCDateTime(), nullable=True),
    Column(
        "skeleton",
        Text,
        nullable=True,
        comment="JSON: pregnancy, risk domains, recipient types, urgency; from intake on, kept after the purge",
    ),
    Column("skipped_types", Text, nullable=False, server_default="[]", comment="JSON: [{recipient_type, reason}]"),
    Column("not_delivered_reason", String(32), nullable=True, comment="route-map | consent-expired | consent-refused"),
    Column("cancelled_at", UTCDateTime(), nullable=True),
    Column("cancel_reason", String(32), nullable=True),
    Column("bsn_ref", String(64), nullable=True, comment="keyed hash of the BSN: repeated meldingen are found by it"),
    Index("ix_meldingen_sender_patient", "sender_org_id", "bsn_ref"),
    Index("ix_meldingen_expected_due_date", "expected_due_date"),
    Index("ix_meldingen_sender_created", "sender_org_id", "created_at"),
    Index("ix_meldingen_consent_id", "consent_id"),
    Index("ix_meldingen_gemeente_created", "gemeente_code", "created_at"),
    Index("ix_meldingen_created", "created_at"),
)

melding_deliveries = Table(
    "melding_deliveries",
    metadata,
    Column("delivery_id", String(36), primary_key=True),
    Column("melding_id", String(36), ForeignKey("meldingen.id"), nullable=False, index=True),
    Column("org_id", String(64), nullable=False),
    Column("org_name", String(200), nullable=False),
    Column("recipient_type", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("risk_domains", String(300), nullable=False, server_default="", comment="comma-separated: its share"),
    Column("contact_due_at", UTCDateTime(), nullable=True),
    Column("overdue", Integer, nullable=False, server_default="0"),
    Column("contact_at", Date, nullable=True),
    Column("outcome", String(32), nullable=True),
    Column("returned_reason", String(32), nullable=True),
)

melding_history = Table(
    "melding_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("melding_id", String(36), ForeignKey("meldingen.id"), nullable=False, index=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("event", String(32), nullable=False),
    Column("detail", String(200), nullable=True),
)

# One row per sending organisation and patient (keyed hash), locked by each intake: two meldingen of one
# organisation for one patient never pass the repeated-melding check side by side.
sender_patients = Table(
    "sender_patients",
    metadata,
    Column("org_id", String(64), nullable=False),
    Column("bsn_ref", String(64), nullable=False),
    PrimaryKeyConstraint("org_id", "bsn_ref"),
)

consent_states = Table(
    "consent_states",
    metadata,
    Column("consent_id", String(64), primary_key=True, comment="locked by intake and withdrawal alike"),
    Column("withdrawn_at", UTCDateTime(), nullable=True),
    # What `consent.recorded` told (decision 6); NULL: not heard of, intake asks the consent service.
    Column(
        "org_id",
        String(64),
        nullable=True,
        comment="the recording organisation; NULL: not heard of (intake asks the consent service)",
    ),
    Column("patient_ref", String(64), nullable=True, comment="keyed hash of the BSN"),
    Column("scope", Text, nullable=True, comment="JSON: recipient_types, risk_domains, informed_about, valid_until"),
)
consent_feed = consent_feed_table(metadata)

outbox = outbox_table(metadata)
processed_messages = processed_messages_table(metadata)
idempotency_keys = idempotency_table(metadata)
audit = audit_tables(metadata)

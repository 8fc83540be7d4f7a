"""The consent service's tables. Its database is its own: no other service reads it."""

from sqlalchemy import Column, Date, Index, String, Table

from shared.audit import audit_tables
from shared.db import EncryptedText, UTCDateTime, new_metadata
from shared.idempotency import idempotency_table
from shared.messaging.outbox import outbox_table

metadata = new_metadata()

consents = Table(
    "consents",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("bsn", EncryptedText("consents.bsn"), nullable=False),
    Column("bsn_ref", String(64), nullable=False, comment="keyed hash of the BSN: what lookups compare"),
    Column("recipient_types", String(64), nullable=False, comment="comma-separated, sorted"),
    Column("purpose", String(64), nullable=False),
    Column("method", String(16), nullable=False),
    Column("given_at", Date, nullable=False),
    Column("valid_until", Date, nullable=False),
    Column("recorded_by_org_id", String(64), nullable=False),
    Column("recorded_by_org_type", String(32), nullable=False),
    Column("recorded_by_sub", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("withdrawn_at", UTCDateTime(), nullable=True),
    Column("withdrawal_reason", String(500), nullable=True),
    Column("withdrawn_by", String(16), nullable=True, comment="organisation | patient; NULL: not withdrawn"),
    Column("risk_domains", String(300), nullable=True, comment="comma-separated, sorted; NULL: every domain"),
    Column("informed_about", String(100), nullable=False, server_default="", comment="comma-separated, sorted"),
    Index("ix_consents_org_bsn_ref", "recorded_by_org_id", "bsn_ref"),
    Index("ix_consents_bsn_ref", "bsn_ref"),
)

outbox = outbox_table(metadata)
idempotency_keys = idempotency_table(metadata)
audit = audit_tables(metadata)

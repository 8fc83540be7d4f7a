"""Meldingen, deliveries, history, outbox, processed messages, idempotency keys, audit log

Revision ID: 0001
Revises:
Create Date: 2026-11-23 10:46:05.661554
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("service", sa.String(length=32), nullable=False),
        sa.Column("actor_sub", sa.String(length=200), nullable=False),
        sa.Column("actor_org_id", sa.String(length=64), nullable=False),
        sa.Column("actor_org_type", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.Column("patient_bsn", sa.String(length=9), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_at", ["at"], unique=False)

    op.create_table(
        "idempotency_keys",
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_table(
        "meldingen",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sender_org_id", sa.String(length=64), nullable=False),
        sa.Column("sender_org_type", sa.String(length=32), nullable=False),
        sa.Column("sender_sub", sa.String(length=200), nullable=False),
        sa.Column("consent_id", sa.String(length=64), nullable=False),
        sa.Column("consent", sa.Text(), nullable=False, comment="JSON: id, recipient_types, valid_until"),
        sa.Column(
            "content", sa.Text(), nullable=False, comment="JSON: patient, pregnancy, risk domains, note, contact"
        ),
        sa.Column("gemeente_code", sa.String(length=6), nullable=True),
        sa.Column("gemeente_name", sa.String(length=100), nullable=True),
        sa.Column("unroutable_types", sa.String(length=32), nullable=False),
        sa.Column("routing_reported_unroutable", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("withdrawn_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meldingen")),
    )
    with op.batch_alter_table("meldingen", schema=None) as batch_op:
        batch_op.create_index("ix_meldingen_consent_id", ["consent_id"], unique=False)
        batch_op.create_index("ix_meldingen_sender_created", ["sender_org_id", "created_at"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", sa.String(length=64), nullable=False, comment="the AMQP message_id"),
        sa.Column("exchange", sa.String(length=100), nullable=False),
        sa.Column("routing_key", sa.String(length=200), nullable=False),
        sa.Column("message_type", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False, comment="the exact JSON published"),
        sa.Column("correlation_id", sa.String(length=128), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True, comment="sent as the x-request-id header"),
        sa.Column("mandatory", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_pending", ["sent_at", "created_at"], unique=False)

    op.create_table(
        "processed_messages",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("processed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_id", name=op.f("pk_processed_messages")),
    )
    op.create_table(
        "melding_deliveries",
        sa.Column("delivery_id", sa.String(length=36), nullable=False),
        sa.Column("melding_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("org_name", sa.String(length=200), nullable=False),
        sa.Column("recipient_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["melding_id"], ["meldingen.id"], name=op.f("fk_melding_deliveries_melding_id_meldingen")
        ),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_melding_deliveries")),
    )
    with op.batch_alter_table("melding_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_melding_deliveries_melding_id"), ["melding_id"], unique=False)

    op.create_table(
        "melding_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("melding_id", sa.String(length=36), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["melding_id"], ["meldingen.id"], name=op.f("fk_melding_history_melding_id_meldingen")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_melding_history")),
    )
    with op.batch_alter_table("melding_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_melding_history_melding_id"), ["melding_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("melding_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_melding_history_melding_id"))

    op.drop_table("melding_history")
    with op.batch_alter_table("melding_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_melding_deliveries_melding_id"))

    op.drop_table("melding_deliveries")
    op.drop_table("processed_messages")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_pending")

    op.drop_table("outbox")
    with op.batch_alter_table("meldingen", schema=None) as batch_op:
        batch_op.drop_index("ix_meldingen_sender_created")
        batch_op.drop_index("ix_meldingen_consent_id")

    op.drop_table("meldingen")
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_at")

    op.drop_table("audit_log")

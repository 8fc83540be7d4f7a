"""The FHIR facade's database: the outbox and the chained, append-only audit log every service has.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from shared import migration_steps as steps
from shared.db import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.String(64), nullable=False, comment="the AMQP message_id"),
        sa.Column("exchange", sa.String(100), nullable=False),
        sa.Column("routing_key", sa.String(200), nullable=False),
        sa.Column("message_type", sa.String(100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False, comment="the exact JSON published, encrypted"),
        sa.Column("correlation_id", sa.String(128), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True, comment="sent as the x-request-id header"),
        sa.Column("trace_context", sa.Text(), nullable=True, comment="JSON: the W3C trace context it was staged in"),
        sa.Column("mandatory", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index("ix_outbox_pending", "outbox", ["sent_at", "created_at"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("chain", sa.Integer(), nullable=False, comment="which of the service's hash chains"),
        sa.Column("seq", sa.Integer(), nullable=False, comment="position in its chain"),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("actor_sub", sa.String(200), nullable=False),
        sa.Column("actor_org_id", sa.String(64), nullable=False),
        sa.Column("actor_org_type", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=True),
        sa.Column("patient_ref", sa.String(64), nullable=True, comment="keyed hash of the BSN (shared.crypto)"),
        sa.Column("patient_bsn", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(64), nullable=False),
        sa.Column(
            "consent_checked", sa.Boolean(), nullable=True, comment="whether a consent check passed (NULL: none)"
        ),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("chain", "seq", name=op.f("uq_audit_log_chain")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at", "id"])
    op.create_index("ix_audit_log_patient_ref", "audit_log", ["patient_ref"])
    op.create_index("ix_audit_log_actor_org_id", "audit_log", ["actor_org_id", "at"])
    op.create_table(
        "audit_chain",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain")),
    )
    steps.create_append_only_triggers()


def downgrade() -> None:
    steps.drop_append_only_triggers()
    op.drop_table("audit_chain")
    op.drop_index("ix_audit_log_actor_org_id", table_name="audit_log")
    op.drop_index("ix_audit_log_patient_ref", table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")

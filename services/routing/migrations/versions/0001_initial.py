"""Directory, routed meldingen, deliveries, dead letters, outbox, processed messages, audit log

Revision ID: 0001
Revises:
Create Date: 2026-11-23 10:52:32.776192
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
        "consent_states",
        sa.Column("consent_id", sa.String(length=64), nullable=False, comment="locked by routing and withdrawal alike"),
        sa.Column("withdrawn_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("consent_id", name=op.f("pk_consent_states")),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=True),
        sa.Column("message_type", sa.String(length=100), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "body_encoding", sa.String(length=8), nullable=False, comment="utf-8, or base64 for an unreadable body"
        ),
        sa.Column("correlation_id", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("died_at", UTCDateTime(), nullable=False),
        sa.Column("replayed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    op.create_table(
        "directory_loads",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("edition", sa.String(length=100), nullable=False),
        sa.Column("gemeenten", sa.Integer(), nullable=False),
        sa.Column("postcode_areas", sa.Integer(), nullable=False),
        sa.Column("ended", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_loads")),
    )
    op.create_table(
        "gemeenten",
        sa.Column("code", sa.String(length=6), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "source", sa.String(length=100), nullable=False, comment="'manual' or the CBS edition it was loaded from"
        ),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True, comment="no longer in the current edition (merged)"),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_gemeenten")),
    )
    op.create_table(
        "organisations",
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_organisations")),
    )
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
        "routed_meldingen",
        sa.Column("melding_id", sa.String(length=36), nullable=False),
        sa.Column("consent_id", sa.String(length=64), nullable=False),
        sa.Column("sender_org_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False, comment="waiting | routed | withdrawn | refused"),
        sa.Column("accepted", sa.Text(), nullable=True, comment="the melding.accepted body; removed on withdrawal"),
        sa.Column("requested_types", sa.String(length=32), nullable=False),
        sa.Column("unroutable_types", sa.String(length=32), nullable=False),
        sa.Column("gemeente_code", sa.String(length=6), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("melding_id", name=op.f("pk_routed_meldingen")),
    )
    with op.batch_alter_table("routed_meldingen", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_routed_meldingen_consent_id"), ["consent_id"], unique=False)
        batch_op.create_index("ix_routed_meldingen_status", ["status", "created_at"], unique=False)

    op.create_table(
        "straddling_areas",
        sa.Column("pc4", sa.String(length=4), nullable=False),
        sa.Column("gemeente_code", sa.String(length=6), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("pc4", "gemeente_code", name=op.f("pk_straddling_areas")),
    )
    op.create_table(
        "deliveries",
        sa.Column("delivery_id", sa.String(length=36), nullable=False),
        sa.Column("melding_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("org_name", sa.String(length=200), nullable=False),
        sa.Column("recipient_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_note", sa.String(length=500), nullable=True),
        sa.Column("message", sa.Text(), nullable=True, comment="the melding.delivered body; replaced on retraction"),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["melding_id"], ["routed_meldingen.melding_id"], name=op.f("fk_deliveries_melding_id_routed_meldingen")
        ),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("melding_id", "recipient_type", name="uq_deliveries_melding_type"),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deliveries_melding_id"), ["melding_id"], unique=False)
        batch_op.create_index("ix_deliveries_org_created", ["org_id", "created_at"], unique=False)

    op.create_table(
        "gemeente_ranges",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("gemeente_code", sa.String(length=6), nullable=False),
        sa.Column("from_pc4", sa.String(length=4), nullable=False),
        sa.Column("to_pc4", sa.String(length=4), nullable=False),
        sa.ForeignKeyConstraint(
            ["gemeente_code"], ["gemeenten.code"], name=op.f("fk_gemeente_ranges_gemeente_code_gemeenten")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gemeente_ranges")),
    )
    with op.batch_alter_table("gemeente_ranges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gemeente_ranges_gemeente_code"), ["gemeente_code"], unique=False)
        batch_op.create_index("ix_gemeente_ranges_span", ["from_pc4", "to_pc4"], unique=False)

    op.create_table(
        "organisation_gemeenten",
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("gemeente_code", sa.String(length=6), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.org_id"], name=op.f("fk_organisation_gemeenten_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("org_id", "gemeente_code", name=op.f("pk_organisation_gemeenten")),
    )
    with op.batch_alter_table("organisation_gemeenten", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_organisation_gemeenten_gemeente_code"), ["gemeente_code"], unique=False)

    op.create_table(
        "organisation_ranges",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("from_pc4", sa.String(length=4), nullable=False),
        sa.Column("to_pc4", sa.String(length=4), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.org_id"], name=op.f("fk_organisation_ranges_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisation_ranges")),
    )
    with op.batch_alter_table("organisation_ranges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_organisation_ranges_org_id"), ["org_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("organisation_ranges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organisation_ranges_org_id"))

    op.drop_table("organisation_ranges")
    with op.batch_alter_table("organisation_gemeenten", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organisation_gemeenten_gemeente_code"))

    op.drop_table("organisation_gemeenten")
    with op.batch_alter_table("gemeente_ranges", schema=None) as batch_op:
        batch_op.drop_index("ix_gemeente_ranges_span")
        batch_op.drop_index(batch_op.f("ix_gemeente_ranges_gemeente_code"))

    op.drop_table("gemeente_ranges")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_org_created")
        batch_op.drop_index(batch_op.f("ix_deliveries_melding_id"))

    op.drop_table("deliveries")
    op.drop_table("straddling_areas")
    with op.batch_alter_table("routed_meldingen", schema=None) as batch_op:
        batch_op.drop_index("ix_routed_meldingen_status")
        batch_op.drop_index(batch_op.f("ix_routed_meldingen_consent_id"))

    op.drop_table("routed_meldingen")
    op.drop_table("processed_messages")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_pending")

    op.drop_table("outbox")
    op.drop_table("organisations")
    op.drop_table("gemeenten")
    op.drop_table("directory_loads")
    op.drop_table("dead_letters")
    op.drop_table("consent_states")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_at")

    op.drop_table("audit_log")

"""Personal data protected: meldingen, deliveries, dead letters and outbox encrypted, retention columns,
audit log chained

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from shared import migration_steps as steps
from shared.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    steps.chain_audit_log()
    with op.batch_alter_table("routed_meldingen") as batch:
        batch.add_column(sa.Column("expected_due_date", sa.Date(), nullable=True))
        batch.add_column(sa.Column("purged_at", UTCDateTime(), nullable=True))
    steps.copy_json_field(
        "routed_meldingen", "melding_id", "accepted", "expected_due_date", ("content", "pregnancy", "expected_due_date")
    )
    op.create_index("ix_routed_meldingen_expected_due_date", "routed_meldingen", ["expected_due_date"])
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("status_note", type_=sa.Text(), existing_nullable=True)
    steps.encrypt_column("routed_meldingen", "melding_id", "accepted")
    steps.encrypt_column("deliveries", "delivery_id", "message")
    steps.encrypt_column("deliveries", "delivery_id", "status_note")
    steps.encrypt_column("dead_letters", "id", "body")
    steps.encrypt_column("outbox", "id", "body")
    steps.set_comments("outbox", {"body": "the exact JSON published, encrypted"})
    steps.set_comments(
        "routed_meldingen",
        {
            "accepted": "the melding.accepted body, encrypted; removed on withdrawal",
            "expected_due_date": "kept after the purge: it dates the retention",
        },
    )
    steps.set_comments("deliveries", {"message": "the melding.delivered body, encrypted; replaced on retraction"})


def downgrade() -> None:
    steps.set_comments("outbox", {"body": "the exact JSON published"})
    steps.set_comments("routed_meldingen", {"accepted": None})
    steps.set_comments("deliveries", {"message": None})
    for table, key, column in (
        ("outbox", "id", "body"),
        ("dead_letters", "id", "body"),
        ("deliveries", "delivery_id", "status_note"),
        ("deliveries", "delivery_id", "message"),
        ("routed_meldingen", "melding_id", "accepted"),
    ):
        steps.decrypt_column(table, key, column)
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("status_note", type_=sa.String(500), existing_nullable=True)
    op.drop_index("ix_routed_meldingen_expected_due_date", table_name="routed_meldingen")
    with op.batch_alter_table("routed_meldingen") as batch:
        batch.drop_column("purged_at")
        batch.drop_column("expected_due_date")
    steps.unchain_audit_log()

"""Personal data protected: content and outbox encrypted, retention columns, audit log chained

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
    with op.batch_alter_table("meldingen") as batch:
        batch.alter_column("content", existing_type=sa.Text(), nullable=True)
        batch.add_column(sa.Column("expected_due_date", sa.Date(), nullable=True))
        batch.add_column(sa.Column("purged_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("skeleton", sa.Text(), nullable=True))
    steps.copy_json_field("meldingen", "id", "content", "expected_due_date", ("pregnancy", "expected_due_date"))
    op.create_index("ix_meldingen_expected_due_date", "meldingen", ["expected_due_date"])
    steps.encrypt_column("meldingen", "id", "content")
    steps.encrypt_column("outbox", "id", "body")
    steps.set_comments("outbox", {"body": "the exact JSON published, encrypted"})
    steps.set_comments(
        "meldingen",
        {
            "content": "JSON: patient, pregnancy, risk domains, note, contact; encrypted; NULL once purged",
            "expected_due_date": "kept after the purge: it dates the retention",
            "skeleton": "JSON left after the purge: risk domains, recipient types",
        },
    )


def downgrade() -> None:
    steps.decrypt_column("outbox", "id", "body")
    steps.set_comments("outbox", {"body": "the exact JSON published"})
    steps.set_comments("meldingen", {"content": None})
    steps.decrypt_column("meldingen", "id", "content")
    op.drop_index("ix_meldingen_expected_due_date", table_name="meldingen")
    with op.batch_alter_table("meldingen") as batch:
        batch.drop_column("skeleton")
        batch.drop_column("purged_at")
        batch.drop_column("expected_due_date")
    steps.unchain_audit_log()

"""The recipient's answer, the sender's cancellation and repeated meldingen, as the sender sees them

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("melding_deliveries") as batch:
        batch.add_column(sa.Column("contact_due_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("overdue", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("contact_at", sa.Date(), nullable=True))
        batch.add_column(sa.Column("outcome", sa.String(32), nullable=True))
        batch.add_column(sa.Column("returned_reason", sa.String(32), nullable=True))
    with op.batch_alter_table("meldingen") as batch:
        batch.add_column(sa.Column("cancelled_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("cancel_reason", sa.String(32), nullable=True))
        batch.add_column(
            sa.Column(
                "bsn_ref",
                sa.String(64),
                nullable=True,
                comment="keyed hash of the BSN: repeated meldingen are found by it",
            )
        )
    op.create_index("ix_meldingen_sender_patient", "meldingen", ["sender_org_id", "bsn_ref"])
    op.create_table(
        "sender_patients",
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("bsn_ref", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "bsn_ref", name="pk_sender_patients"),
    )


def downgrade() -> None:
    op.drop_table("sender_patients")
    op.drop_index("ix_meldingen_sender_patient", table_name="meldingen")
    with op.batch_alter_table("meldingen") as batch:
        batch.drop_column("bsn_ref")
        batch.drop_column("cancel_reason")
        batch.drop_column("cancelled_at")
    with op.batch_alter_table("melding_deliveries") as batch:
        for column in ("returned_reason", "outcome", "contact_at", "overdue", "contact_due_at"):
            batch.drop_column(column)

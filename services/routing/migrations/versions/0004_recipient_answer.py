"""The recipient's answer, the sender's cancellation, one pregnancy: overdue, outcome, returns, cancellations

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

LIVE = sa.text("status <> 'returned'")


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("uq_deliveries_melding_type", type_="unique")
        batch.add_column(
            sa.Column(
                "overdue_at", UTCDateTime(), nullable=True, comment="when it passed its deadline (its reminder sent)"
            )
        )
        batch.add_column(sa.Column("contact_at", sa.Date(), nullable=True))
        batch.add_column(sa.Column("outcome", sa.String(32), nullable=True))
        batch.add_column(sa.Column("returned_reason", sa.String(32), nullable=True))
    op.create_index(
        "uq_deliveries_melding_type_live",
        "deliveries",
        ["melding_id", "recipient_type"],
        unique=True,
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )
    op.create_index("ix_deliveries_due", "deliveries", ["overdue_at", "contact_due_at"])
    with op.batch_alter_table("routed_meldingen") as batch:
        batch.add_column(
            sa.Column(
                "bsn_ref",
                sa.String(64),
                nullable=True,
                comment="keyed hash of the BSN: one pregnancy's meldingen are linked by it",
            )
        )
        batch.add_column(
            sa.Column(
                "returned",
                sa.Text(),
                nullable=False,
                server_default="[]",
                comment="JSON: [{recipient_type, org_id, reason}]",
            )
        )
    op.create_index("ix_routed_meldingen_bsn_ref", "routed_meldingen", ["bsn_ref"])
    op.create_table(
        "cancellations",
        sa.Column("melding_id", sa.String(36), nullable=False, comment="locked by routing and cancellation alike"),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("cancelled_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("melding_id", name="pk_cancellations"),
    )


def downgrade() -> None:
    op.drop_table("cancellations")
    op.drop_index("ix_routed_meldingen_bsn_ref", table_name="routed_meldingen")
    with op.batch_alter_table("routed_meldingen") as batch:
        batch.drop_column("returned")
        batch.drop_column("bsn_ref")
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    op.drop_index("uq_deliveries_melding_type_live", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("returned_reason")
        batch.drop_column("outcome")
        batch.drop_column("contact_at")
        batch.drop_column("overdue_at")
        batch.create_unique_constraint("uq_deliveries_melding_type", ["melding_id", "recipient_type"])

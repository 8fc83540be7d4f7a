"""Route maps reach the sender: skipped types, not_delivered and each delivery's share of the risk domains

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("meldingen") as batch:
        batch.add_column(
            sa.Column(
                "skipped_types",
                sa.Text(),
                nullable=False,
                server_default="[]",
                comment="JSON: [{recipient_type, reason}]",
            )
        )
        batch.add_column(
            sa.Column(
                "not_delivered_reason",
                sa.String(32),
                nullable=True,
                comment="route-map | consent-expired | consent-refused",
            )
        )
    with op.batch_alter_table("melding_deliveries") as batch:
        batch.add_column(
            sa.Column(
                "risk_domains", sa.String(300), nullable=False, server_default="", comment="comma-separated: its share"
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("melding_deliveries") as batch:
        batch.drop_column("risk_domains")
    with op.batch_alter_table("meldingen") as batch:
        batch.drop_column("not_delivered_reason")
        batch.drop_column("skipped_types")

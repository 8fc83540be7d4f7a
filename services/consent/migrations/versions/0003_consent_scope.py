"""Consent scope and evidence: the risk domains consented to (NULL: all) and what the patient was told

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consents") as batch:
        batch.add_column(
            sa.Column(
                "risk_domains", sa.String(300), nullable=True, comment="comma-separated, sorted; NULL: every domain"
            )
        )
        batch.add_column(
            sa.Column(
                "informed_about", sa.String(100), nullable=False, server_default="", comment="comma-separated, sorted"
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("consents") as batch:
        batch.drop_column("informed_about")
        batch.drop_column("risk_domains")

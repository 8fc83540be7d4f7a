"""The lock a sender's Subscriptions are counted under (a limit per organisation, kept under a burst).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscription_owners",
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_subscription_owners")),
    )


def downgrade() -> None:
    op.drop_table("subscription_owners")

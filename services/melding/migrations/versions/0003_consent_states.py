"""Consent states: the lock that intake and a consent's withdrawal take in turn

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_states",
        sa.Column("consent_id", sa.String(length=64), nullable=False, comment="locked by intake and withdrawal alike"),
        sa.Column("withdrawn_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("consent_id", name=op.f("pk_consent_states")),
    )
    # The withdrawals applied before this table existed, so that intake refuses their consents too.
    op.execute(
        "INSERT INTO consent_states (consent_id, withdrawn_at) SELECT consent_id, MIN(withdrawn_at) "
        "FROM meldingen WHERE withdrawn_at IS NOT NULL GROUP BY consent_id"
    )


def downgrade() -> None:
    op.drop_table("consent_states")

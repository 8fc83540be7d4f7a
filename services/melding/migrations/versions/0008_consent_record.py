"""The melding service's own record of consents (decision 6): what each allows, and the consent feed's heartbeat

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from shared.migration_steps import create_consent_feed, drop_consent_feed

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consent_states") as batch:
        batch.add_column(
            sa.Column(
                "org_id",
                sa.String(length=64),
                nullable=True,
                comment="the recording organisation; NULL: not heard of (intake asks the consent service)",
            )
        )
        batch.add_column(sa.Column("patient_ref", sa.String(length=64), nullable=True, comment="keyed hash of the BSN"))
        batch.add_column(
            sa.Column(
                "scope",
                sa.Text(),
                nullable=True,
                comment="JSON: recipient_types, risk_domains, informed_about, valid_until",
            )
        )
    create_consent_feed()


def downgrade() -> None:
    drop_consent_feed()
    with op.batch_alter_table("consent_states") as batch:
        batch.drop_column("scope")
        batch.drop_column("patient_ref")
        batch.drop_column("org_id")

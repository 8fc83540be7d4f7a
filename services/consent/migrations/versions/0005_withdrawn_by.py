"""Who withdrew a consent (the recording organisation or the woman herself), and her consents found by her keyed
BSN alone (her own view)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consents") as batch:
        batch.add_column(
            sa.Column(
                "withdrawn_by", sa.String(16), nullable=True, comment="organisation | patient; NULL: not withdrawn"
            )
        )
        batch.create_index("ix_consents_bsn_ref", ["bsn_ref"])
    # Before the woman could withdraw herself, every withdrawal was the recording organisation's.
    op.execute("UPDATE consents SET withdrawn_by = 'organisation' WHERE withdrawn_at IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("consents") as batch:
        batch.drop_index("ix_consents_bsn_ref")
        batch.drop_column("withdrawn_by")

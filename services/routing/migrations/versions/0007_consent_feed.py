"""The consent feed's heartbeat: routing trusts its own record of withdrawals while it is current

Revision ID: 0007
Revises: 0006
"""

from shared.migration_steps import create_consent_feed, drop_consent_feed

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_consent_feed()


def downgrade() -> None:
    drop_consent_feed()

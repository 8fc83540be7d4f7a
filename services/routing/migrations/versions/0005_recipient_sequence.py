"""The recipient's kit: a gapless sequence per organisation, the messages kept for re-fetching, thin delivery

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from shared.db import EncryptedText, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organisations") as batch:
        batch.add_column(
            sa.Column(
                "delivery_mode",
                sa.String(8),
                nullable=False,
                server_default="full",
                comment="full: the queue carries the melding; thin: ids and href only",
            )
        )
    op.create_table(
        "recipient_sequences",
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("last_sequence", sa.Integer(), nullable=False, comment="locked by each commit that numbers"),
        sa.PrimaryKeyConstraint("org_id", name="pk_recipient_sequences"),
    )
    op.create_table(
        "recipient_messages",
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(100), nullable=False),
        sa.Column("message_type", sa.String(32), nullable=False),
        sa.Column("delivery_id", sa.String(36), nullable=False),
        sa.Column(
            "body",
            EncryptedText("recipient_messages.body"),
            nullable=False,
            comment="the message as queued, less personal data (a full delivery's is read from its delivery)",
        ),
        sa.Column("full", sa.Boolean(), nullable=False, comment="a full delivery: its content lives in deliveries"),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "sequence", name="pk_recipient_messages"),
    )


def downgrade() -> None:
    op.drop_table("recipient_messages")
    op.drop_table("recipient_sequences")
    with op.batch_alter_table("organisations") as batch:
        batch.drop_column("delivery_mode")

"""The outbox keeps the W3C trace context a message was staged in (shared.tracing)

Revision ID: 0004
Revises: 0003
"""

from shared.migration_steps import add_outbox_trace_context, drop_outbox_trace_context

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_trace_context()


def downgrade() -> None:
    drop_outbox_trace_context()

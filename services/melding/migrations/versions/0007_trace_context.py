"""The outbox keeps the W3C trace context a message was staged in (shared.tracing)

Revision ID: 0007
Revises: 0006
"""

from shared.migration_steps import add_outbox_trace_context, drop_outbox_trace_context

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_trace_context()


def downgrade() -> None:
    drop_outbox_trace_context()

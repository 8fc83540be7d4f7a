"""The outbox keeps the W3C trace context a message was staged in (shared.tracing)

Revision ID: 0006
Revises: 0005
"""

from shared.migration_steps import add_outbox_trace_context, drop_outbox_trace_context

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_trace_context()


def downgrade() -> None:
    drop_outbox_trace_context()

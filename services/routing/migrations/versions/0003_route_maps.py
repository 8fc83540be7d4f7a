"""Route maps (routekaarten) by gemeente, versioned; skipped types and not_delivered; contact due dates

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from shared import migration_steps as steps
from shared.db import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "route_maps",
        sa.Column("gemeente_code", sa.String(6), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False, comment="JSON: {type: {risk_domains: 'all' | [...], note}}"),
        sa.Column("contact_deadline", sa.Text(), nullable=False, comment="JSON: {urgency: seconds}"),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("gemeente_code", "effective_from", name="pk_route_maps"),
        sa.ForeignKeyConstraint(["gemeente_code"], ["gemeenten.code"], name="fk_route_maps_gemeente_code_gemeenten"),
    )
    with op.batch_alter_table("routed_meldingen") as batch:
        batch.add_column(
            sa.Column(
                "skipped_types",
                sa.Text(),
                nullable=False,
                server_default="[]",
                comment="JSON: [{recipient_type, reason}]",
            )
        )
        batch.add_column(
            sa.Column(
                "not_delivered_reason",
                sa.String(32),
                nullable=True,
                comment="route-map | consent-expired | consent-refused",
            )
        )
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(
            sa.Column("contact_due_at", UTCDateTime(), nullable=True, comment="delivered at + the route map's deadline")
        )
    steps.set_comments("routed_meldingen", {"status": "new | waiting | routed | withdrawn | not_delivered"})


def downgrade() -> None:
    steps.set_comments("routed_meldingen", {"status": "waiting | routed | withdrawn | refused"})
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("contact_due_at")
    with op.batch_alter_table("routed_meldingen") as batch:
        batch.drop_column("not_delivered_reason")
        batch.drop_column("skipped_types")
    op.drop_table("route_maps")

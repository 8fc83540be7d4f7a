"""Personal data protected: BSN encrypted and looked up by keyed hash, outbox encrypted, audit log chained

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from shared import migration_steps as steps

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    steps.chain_audit_log()
    op.drop_index("ix_consents_org_bsn", table_name="consents")
    with op.batch_alter_table("consents") as batch:
        batch.alter_column("bsn", type_=sa.Text(), existing_nullable=False)
        batch.add_column(sa.Column("bsn_ref", sa.String(64), nullable=True))
    bind = op.get_bind()
    consents = sa.table("consents", sa.column("id"), sa.column("bsn", sa.Text), sa.column("bsn_ref"))
    rows = bind.execute(sa.select(consents.c.id, consents.c.bsn)).all()
    if rows:
        ring = steps.needs_cipher("consents")
        for consent_id, bsn in rows:
            bind.execute(sa.update(consents).where(consents.c.id == consent_id).values(bsn_ref=ring.bsn_ref(bsn)))
    steps.encrypt_column("consents", "id", "bsn")
    with op.batch_alter_table("consents") as batch:
        batch.alter_column("bsn_ref", existing_type=sa.String(64), nullable=False)
    op.create_index("ix_consents_org_bsn_ref", "consents", ["recorded_by_org_id", "bsn_ref"])
    steps.encrypt_column("outbox", "id", "body")
    steps.set_comments("outbox", {"body": "the exact JSON published, encrypted"})
    steps.set_comments("consents", {"bsn": None, "bsn_ref": "keyed hash of the BSN: what lookups compare"})


def downgrade() -> None:
    steps.decrypt_column("outbox", "id", "body")
    steps.set_comments("outbox", {"body": "the exact JSON published"})
    op.drop_index("ix_consents_org_bsn_ref", table_name="consents")
    steps.decrypt_column("consents", "id", "bsn")
    with op.batch_alter_table("consents") as batch:
        batch.drop_column("bsn_ref")
        batch.alter_column("bsn", type_=sa.String(9), existing_nullable=False)
    op.create_index("ix_consents_org_bsn", "consents", ["recorded_by_org_id", "bsn"])
    steps.unchain_audit_log()

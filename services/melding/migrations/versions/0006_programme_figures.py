"""Programme figures: a skeleton from intake on, anonymous after the purge; indexes by period and gemeente

Revision ID: 0006
Revises: 0005
"""

import json
from typing import Any

from alembic import op

from shared import migration_steps as steps

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The skeleton's fields as of this revision (services/melding/domain/model.py::SKELETON_FIELDS then).
SKELETON_FIELDS = ("pregnancy", "risk_domains", "recipient_types", "urgency")


def _skeleton(content: dict[str, Any]) -> str:
    return json.dumps({name: content.get(name) for name in SKELETON_FIELDS})


def upgrade() -> None:
    # What was purged before keeps no keyed hash of its patient's BSN either: the skeleton is anonymous.
    op.execute("UPDATE meldingen SET bsn_ref = NULL WHERE purged_at IS NOT NULL")
    steps.derive_from_encrypted_json("meldingen", "id", "content", "skeleton", _skeleton)
    steps.set_comments(
        "meldingen",
        {"skeleton": "JSON: pregnancy, risk domains, recipient types, urgency; from intake on, kept after the purge"},
    )
    op.create_index("ix_meldingen_gemeente_created", "meldingen", ["gemeente_code", "created_at"])
    op.create_index("ix_meldingen_created", "meldingen", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_meldingen_created", table_name="meldingen")
    op.drop_index("ix_meldingen_gemeente_created", table_name="meldingen")
    steps.set_comments("meldingen", {"skeleton": "JSON left after the purge: risk domains, recipient types"})
    op.execute("UPDATE meldingen SET skeleton = NULL WHERE content IS NOT NULL")

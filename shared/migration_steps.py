"""Steps the services' migrations share: encrypting existing columns, the chained audit log, its triggers.

Data steps need the key ring: `kansrijk migrate` (and `serve`/`up`, which migrate first) pass it from the
settings, and the migration's engine carries it (`shared.migrations`), so ORM tables encrypt as usual. A
database with rows to convert and no key ring stops the migration with a clear message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from shared.audit import AUDIT_CHAINS, GENESIS, audit_tables, record_hash
from shared.crypto import FieldCipher
from shared.db import new_metadata


def cipher() -> FieldCipher | None:
    return context.config.attributes.get("cipher")


def needs_cipher(what: str) -> FieldCipher:
    found = cipher()
    if found is None:
        raise RuntimeError(
            f"{what} holds rows to convert: run the migration through `kansrijk migrate`, which has the encryption keys"
        )
    return found


def rewrite_column(table: str, key: str, column: str, change: Callable[[FieldCipher, str], str]) -> None:
    """Apply `change` to every non-NULL value of `table.column` (rows addressed by `key`)."""
    bind = op.get_bind()
    plain = sa.table(table, sa.column(key), sa.column(column, sa.Text))
    rows = bind.execute(sa.select(plain.c[key], plain.c[column]).where(plain.c[column].is_not(None))).all()
    if not rows:
        return
    ring = needs_cipher(table)
    for row_key, value in rows:
        bind.execute(sa.update(plain).where(plain.c[key] == row_key).values({column: change(ring, value)}))


def encrypt_column(table: str, key: str, column: str) -> None:
    rewrite_column(table, key, column, lambda ring, value: ring.encrypt(value, f"{table}.{column}"))


def decrypt_column(table: str, key: str, column: str) -> None:
    rewrite_column(table, key, column, lambda ring, value: ring.decrypt(value, f"{table}.{column}"))


def set_comments(table: str, comments: dict[str, str | None]) -> None:
    """Column comments (documentation in the database; PostgreSQL keeps them, SQLite has none)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for column, comment in comments.items():
        value = "NULL" if comment is None else "'" + comment.replace("'", "''") + "'"
        op.execute(f'COMMENT ON COLUMN "{table}"."{column}" IS {value}')


# --- the audit log --------------------------------------------------------------------------------------

OLD_AUDIT_COLUMNS = ("id", "at", "service", "actor_sub", "actor_org_id", "actor_org_type", "action",
                     "resource_type", "resource_id", "patient_bsn", "outcome", "request_id")  # fmt: skip


def _old_audit_table(metadata: sa.MetaData, name: str) -> sa.Table:
    from shared.db import UTCDateTime

    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        *(
            sa.Column(c, sa.String(200), nullable=c not in ("resource_id", "patient_bsn", "request_id"))
            for c in OLD_AUDIT_COLUMNS[2:]
        ),
    )


def chain_audit_log() -> None:
    """0001's audit log → the chained one: existing records keep their order (time, id) on chain 1 and get
    seq, keyed patient hash, encrypted BSN and hashes; the other chains start empty."""
    bind = op.get_bind()
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.rename_table("audit_log", "audit_log_0001")
    if bind.dialect.name == "postgresql":  # its constraint names are schema-wide and a rename keeps them
        op.execute("ALTER TABLE audit_log_0001 RENAME CONSTRAINT pk_audit_log TO pk_audit_log_0001")
    tables = audit_tables(new_metadata())
    tables.log.create(bind)
    tables.chain.create(bind)
    old = _old_audit_table(sa.MetaData(), "audit_log_0001")
    rows = bind.execute(sa.select(old).order_by(old.c.at, old.c.id)).all()
    seq, previous = 0, GENESIS
    if rows:
        ring = needs_cipher("audit_log")
        records = []
        for row in rows:
            seq += 1
            record = {
                **row._mapping,
                "chain": 1,
                "seq": seq,
                "prev_hash": previous,
                "consent_checked": None,
                "patient_ref": ring.bsn_ref(row.patient_bsn) if row.patient_bsn else None,
            }
            record["hash"] = previous = record_hash(record)
            records.append(record)
        bind.execute(tables.log.insert(), records)  # patient_bsn is encrypted on the way in
    bind.execute(
        tables.chain.insert(),
        [{"id": 1, "seq": seq, "hash": previous}]
        + [{"id": n, "seq": 0, "hash": GENESIS} for n in range(2, AUDIT_CHAINS + 1)],
    )
    op.drop_table("audit_log_0001")
    create_append_only_triggers()


def unchain_audit_log() -> None:
    bind = op.get_bind()
    drop_append_only_triggers()
    tables = audit_tables(new_metadata())
    count = bind.execute(sa.select(sa.func.count()).select_from(tables.log)).scalar_one()
    if count:
        needs_cipher("audit_log")
    rows = [dict(r._mapping) for r in bind.execute(sa.select(tables.log).order_by(tables.log.c.at, tables.log.c.id))]
    op.drop_table("audit_chain")
    op.drop_table("audit_log")
    old = _old_audit_table(sa.MetaData(), "audit_log")
    op.create_table("audit_log", *[c.copy() for c in old.columns])
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    if rows:
        bind.execute(old.insert(), [{c: r[c] for c in OLD_AUDIT_COLUMNS} for r in rows])


def create_append_only_triggers() -> None:
    """The database itself refuses to change audit records or delete any younger than the retention."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
            BEGIN
                IF TG_OP = 'DELETE' AND OLD.at < now() - interval '5 years 2 days' THEN
                    RETURN OLD;
                END IF;
                RAISE EXCEPTION 'audit_log is append-only';
            END $$ LANGUAGE plpgsql""")
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
        )
        op.execute(
            "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
            "WHEN OLD.at >= datetime('now', '-5 years', '-2 days') "
            "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
        )


def drop_append_only_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")


def copy_json_field(table: str, key: str, source: str, target: str, path: tuple[str, ...]) -> None:
    """Set `target` from the (still plain) JSON document in `source` at `path`, where present."""
    import json

    bind = op.get_bind()
    plain = sa.table(table, sa.column(key), sa.column(source, sa.Text), sa.column(target))
    for row_key, document in bind.execute(sa.select(plain.c[key], plain.c[source]).where(plain.c[source].is_not(None))):
        value: Any = json.loads(document)
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        if value is not None:
            bind.execute(sa.update(plain).where(plain.c[key] == row_key).values({target: value}))

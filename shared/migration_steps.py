"""Steps the services' migrations share: encrypting existing columns, the chained audit log, its triggers.

Data steps need the key ring: `kansrijk migrate` (and `serve`/`up`, which migrate first) pass it from the
settings, and the migration's engine carries it (`shared.migrations`), so ORM tables encrypt as usual. A
database with rows to convert and no key ring stops the migration with a clear message.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from shared.crypto import FieldCipher
from shared.db import EncryptedText, UTCDateTime


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

# shared.db's naming convention as 0002 used it (constraint names must not change under an old migration).
NAMING_CONVENTION_0002 = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

OLD_AUDIT_COLUMNS = ("id", "at", "service", "actor_sub", "actor_org_id", "actor_org_type", "action",
                     "resource_type", "resource_id", "patient_bsn", "outcome", "request_id")  # fmt: skip


def _old_audit_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        *(
            sa.Column(c, sa.String(200), nullable=c not in ("resource_id", "patient_bsn", "request_id"))
            for c in OLD_AUDIT_COLUMNS[2:]
        ),
    ]


def _old_audit_table(metadata: sa.MetaData, name: str) -> sa.Table:
    return sa.Table(name, metadata, *_old_audit_columns())


# The chained audit log as migration 0002 creates it, frozen here: its tables, its chains and its hash stay
# what they were then, whatever shared.audit becomes (a later change to the audit log is a migration of its
# own, and a fresh database still upgrades through 0002 as it always did). The BSN column is encrypted with
# the key ring's versioned format (shared.crypto), which stays readable by every later version.
AUDIT_CHAINS_0002 = 16
GENESIS_0002 = "0" * 64
HASHED_FIELDS_0002 = ("id", "chain", "seq", "at", "service", "actor_sub", "actor_org_id", "actor_org_type", "action",
                      "resource_type", "resource_id", "patient_ref", "outcome", "consent_checked", "request_id",
                      "prev_hash")  # fmt: skip


def _audit_tables_0002(metadata: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    log = sa.Table(
        "audit_log",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("chain", sa.Integer, nullable=False, comment="which of the service's hash chains"),
        sa.Column("seq", sa.Integer, nullable=False, comment="position in its chain"),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("actor_sub", sa.String(200), nullable=False),
        sa.Column("actor_org_id", sa.String(64), nullable=False),
        sa.Column("actor_org_type", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=True),
        sa.Column("patient_ref", sa.String(64), nullable=True, comment="keyed hash of the BSN (shared.crypto)"),
        sa.Column("patient_bsn", EncryptedText("audit_log.patient_bsn"), nullable=True),
        sa.Column("outcome", sa.String(64), nullable=False),
        sa.Column("consent_checked", sa.Boolean, nullable=True, comment="whether a consent check passed (NULL: none)"),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("chain", "seq", name="uq_audit_log_chain"),
        sa.Index("ix_audit_log_at", "at", "id"),
        sa.Index("ix_audit_log_patient_ref", "patient_ref"),
        sa.Index("ix_audit_log_actor_org_id", "actor_org_id", "at"),
    )
    chain = sa.Table(
        "audit_chain",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    return log, chain


def _record_hash_0002(values: dict[str, Any]) -> str:
    canonical = {name: values.get(name) for name in HASHED_FIELDS_0002}
    canonical["at"] = values["at"].isoformat(timespec="microseconds")
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def chain_audit_log() -> None:
    """0001's audit log → the chained one: existing records keep their order (time, id) on chain 1 and get
    seq, keyed patient hash, encrypted BSN and hashes; the other chains start empty."""
    bind = op.get_bind()
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.rename_table("audit_log", "audit_log_0001")
    if bind.dialect.name == "postgresql":  # its constraint names are schema-wide and a rename keeps them
        op.execute("ALTER TABLE audit_log_0001 RENAME CONSTRAINT pk_audit_log TO pk_audit_log_0001")
    log, chain = _audit_tables_0002(sa.MetaData(naming_convention=NAMING_CONVENTION_0002))
    log.create(bind)
    chain.create(bind)
    old = _old_audit_table(sa.MetaData(), "audit_log_0001")
    rows = bind.execute(sa.select(old).order_by(old.c.at, old.c.id)).all()
    seq, previous = 0, GENESIS_0002
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
            record["hash"] = previous = _record_hash_0002(record)
            records.append(record)
        bind.execute(log.insert(), records)  # patient_bsn is encrypted on the way in
    bind.execute(
        chain.insert(),
        [{"id": 1, "seq": seq, "hash": previous}]
        + [{"id": n, "seq": 0, "hash": GENESIS_0002} for n in range(2, AUDIT_CHAINS_0002 + 1)],
    )
    op.drop_table("audit_log_0001")
    create_append_only_triggers()


def unchain_audit_log() -> None:
    bind = op.get_bind()
    drop_append_only_triggers()
    log, _ = _audit_tables_0002(sa.MetaData(naming_convention=NAMING_CONVENTION_0002))
    count = bind.execute(sa.select(sa.func.count()).select_from(log)).scalar_one()
    if count:
        needs_cipher("audit_log")
    rows = [dict(r._mapping) for r in bind.execute(sa.select(log).order_by(log.c.at, log.c.id))]
    op.drop_table("audit_chain")
    op.drop_table("audit_log")
    op.create_table("audit_log", *_old_audit_columns())
    old = _old_audit_table(sa.MetaData(), "audit_log")
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
    bind = op.get_bind()
    plain = sa.table(table, sa.column(key), sa.column(source, sa.Text), sa.column(target))
    for row_key, document in bind.execute(sa.select(plain.c[key], plain.c[source]).where(plain.c[source].is_not(None))):
        value: Any = json.loads(document)
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        if value is not None:
            bind.execute(sa.update(plain).where(plain.c[key] == row_key).values({target: value}))


def derive_from_encrypted_json(
    table: str, key: str, source: str, target: str, derive: Callable[[dict[str, Any]], Any]
) -> None:
    """Set `target` (where NULL) to `derive(document)` for the encrypted JSON document in `source`."""
    bind = op.get_bind()
    plain = sa.table(table, sa.column(key), sa.column(source, sa.Text), sa.column(target))
    rows = bind.execute(
        sa.select(plain.c[key], plain.c[source]).where(plain.c[source].is_not(None), plain.c[target].is_(None))
    ).all()
    if not rows:
        return
    ring = needs_cipher(table)
    for row_key, value in rows:
        document = json.loads(ring.decrypt(value, f"{table}.{source}"))
        bind.execute(sa.update(plain).where(plain.c[key] == row_key).values({target: derive(document)}))


# --- the outbox keeps the trace context a message was staged in (shared.tracing); every service's outbox ---


def add_outbox_trace_context() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(
            sa.Column("trace_context", sa.Text(), nullable=True, comment="JSON: the W3C trace context it was staged in")
        )


def drop_outbox_trace_context() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("trace_context")


# --- the consent feed (shared.consent_feed): when a service last heard the consent service's heartbeat ---


def create_consent_feed() -> None:
    op.create_table(
        "consent_feed",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("heard_at", UTCDateTime(), nullable=False, comment="the last consent.heartbeat applied"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_feed")),
    )


def drop_consent_feed() -> None:
    op.drop_table("consent_feed")

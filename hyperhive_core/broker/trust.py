"""Trust between hosts on a shared PostgreSQL database, enforced by the database itself.

Each host's daemon connects with its own role, mapped to its host in `host_role`. Row-level
security then lets a role place agents only on its own host, and store a message only when its
sender is one of those agents (or the operator, whom every host's host.sock speaks for): a daemon
that is compromised, or simply wrong, cannot write as another host's agent, whatever its Python
does. Reading, handing out and acknowledging stay open to every daemon (the operator's inbox is
shared). The tables belong to the administrator who runs `apply_trust`; daemons' roles get only
row privileges, so RLS binds them (a table's owner would bypass it).
"""

import re
from collections.abc import Mapping

import anyio
import psycopg
from psycopg import sql

from hyperhive_core.broker.migrations import Migration
from hyperhive_core.broker.placement import SCHEMA as PLACEMENT_SCHEMA
from hyperhive_core.broker.postgres import create_schema, open_pg_engine, pg_storage_error
from hyperhive_core.names import OPERATOR

ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")

TRUST_DDL: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS host_role (role name PRIMARY KEY, host text NOT NULL)",
    "ALTER TABLE message ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE placement ENABLE ROW LEVEL SECURITY",
    "DROP POLICY IF EXISTS hive_read ON message",
    "CREATE POLICY hive_read ON message FOR SELECT USING (true)",
    "DROP POLICY IF EXISTS hive_hand_out ON message",
    "CREATE POLICY hive_hand_out ON message FOR UPDATE USING (true) WITH CHECK (true)",
    "DROP POLICY IF EXISTS hive_send_as_own ON message",
    "CREATE POLICY hive_send_as_own ON message FOR INSERT WITH CHECK ("
    f"sender = '{OPERATOR}' OR EXISTS (SELECT 1 FROM placement p JOIN host_role h ON h.host = p.host "
    "WHERE p.name = message.sender AND h.role = current_user))",
    "DROP POLICY IF EXISTS hive_read_placement ON placement",
    "CREATE POLICY hive_read_placement ON placement FOR SELECT USING (true)",
    "DROP POLICY IF EXISTS hive_place_own ON placement",
    "CREATE POLICY hive_place_own ON placement FOR ALL "
    "USING (host IN (SELECT host FROM host_role WHERE role = current_user)) "
    "WITH CHECK (host IN (SELECT host FROM host_role WHERE role = current_user))",
)


def grant_host(role: str, host: str) -> list[sql.Composed]:
    """The statements that let `role` (an existing login role) run the daemon of `host`.

    Raises:
        ValueError: `role` is not a plain lower-case SQL name.
    """
    if not ROLE.fullmatch(role):
        raise ValueError(f"role {role!r} is not a plain SQL name; use lower-case letters, digits and _")
    who = sql.Identifier(role)
    return [
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(who),
        sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(who),
        sql.SQL("REVOKE ALL ON host_role FROM {}").format(who),
        sql.SQL("GRANT SELECT ON host_role TO {}").format(who),
        sql.SQL(
            "INSERT INTO host_role (role, host) VALUES ({}, {}) ON CONFLICT (role) DO UPDATE SET host = EXCLUDED.host"
        ).format(sql.Literal(role), sql.Literal(host)),
    ]


async def prepare_database(conninfo: str, grants: Mapping[str, str]) -> list[Migration]:
    """As the database's administrator: apply the schema's pending migrations and, with `grants`
    (role -> host), the trust rules and each host role's rights (again for the roles granted before,
    which a new table needs). Idempotent; returns what it applied.

    Raises:
        ValueError: a role is not a plain SQL name.
        SchemaVersionError: the database is newer than this code.
        StorageError: the server refused (or cannot be reached).
    """
    for role in grants:
        grant_host(role, "")  # a bad name fails before anything is done
    engine = open_pg_engine(conninfo)
    try:
        applied = await anyio.to_thread.run_sync(create_schema, engine)
    finally:
        engine.dispose()
    try:
        async with await psycopg.AsyncConnection.connect(conninfo) as conn, conn.transaction():
            # Placement's tables, for a database made before they were part of the schema. (Not by
            # opening a store: that would recover leases other hosts' daemons hold right now.)
            for statement in PLACEMENT_SCHEMA:
                await conn.execute(statement.encode())
            granted: list[tuple[str, str]] = []
            if await (await conn.execute("SELECT to_regclass('host_role') IS NOT NULL")).fetchone() == (True,):
                rows = await (await conn.execute("SELECT role, host FROM host_role")).fetchall()
                granted = [(str(role), str(host)) for role, host in rows]
            # The roles granted before get the rights again: a migration may have added a table since.
            statements = [q for role, host in sorted(granted) if role not in grants for q in grant_host(role, host)]
            statements += [q for role, host in sorted(grants.items()) for q in grant_host(role, host)]
            if statements:
                for statement in TRUST_DDL:
                    await conn.execute(statement.encode())
                for query in statements:
                    await conn.execute(query)
    except psycopg.Error as exc:
        raise pg_storage_error(exc) from exc
    return applied

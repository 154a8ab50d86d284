"""Operations on a hive's PostgreSQL database: a backup with `pg_dump`, and the doctor's findings.

`pg_dump` and `pg_restore` are PostgreSQL's client tools (Debian's `postgresql` or
`postgresql-client` package installs them under /usr/lib/postgresql/<major>/bin). A backup is
written to a temp file beside its destination and renamed once complete, so a file at the
destination is always a whole dump. No output here carries the URL's secrets: the URL holds none
(`dburl.check_database_url`), and what a tool prints is redacted all the same.
"""

import os
import re
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg

from hyperhive_core.broker.dburl import shown
from hyperhive_core.broker.migrations import LATEST
from hyperhive_core.errors import ConfigError, StorageError

Status = Literal["ok", "warn", "fail"]
# userinfo's password in a URL (user:secret@), and key=value secrets in a conninfo or a URL's query.
_URL_PASSWORD = re.compile(r"(://[^:/?@\s]*):[^@\s]*@")
_PARAM_PASSWORD = re.compile(r"\b((?:ssl)?password)=[^&\s]*", re.IGNORECASE)
# Seconds a dump may take before it is given up (a hive's database is small; a stuck server is not).
DUMP_TIMEOUT_S = 3600.0


def redact(text: str) -> str:
    """`text` with any password a URL or a conninfo in it carries replaced by ***."""
    return _PARAM_PASSWORD.sub(r"\1=***", _URL_PASSWORD.sub(r"\1:***@", text))


def pg_tool(name: str) -> Path:
    """Where PostgreSQL's client tool `name` (pg_dump, pg_restore) is: Debian's newest, or PATH's.

    Raises:
        ConfigError: it is not installed.
    """
    debian = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parent.parent.name))
    if debian:
        return debian[-1]
    found = shutil.which(name)
    if found is None:
        raise ConfigError(
            f"{name} (PostgreSQL's client tools) is not installed on this host: install them "
            "(Debian: apt-get install postgresql-client), then try again"
        )
    return Path(found)


def backup_postgres(url: str, dest: Path) -> int:
    """Dump the hive database `url` names to `dest` (which must not exist) in pg_dump's custom format;
    returns its bytes. Blocking.

    Raises:
        ConfigError: `dest` exists or cannot be written, or pg_dump is missing.
        StorageError: pg_dump failed (its words, redacted).
    """
    if dest.exists():
        raise ConfigError(f"{dest} exists; choose a new file for the backup (nothing was overwritten)")
    tmp = dest.with_name(dest.name + ".part")
    command = [str(pg_tool("pg_dump")), "--format=custom", "--no-password", f"--file={tmp}", f"--dbname={url}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=DUMP_TIMEOUT_S, check=False)
        if done.returncode != 0:
            tmp.unlink(missing_ok=True)
            detail = redact(done.stderr.strip()) or f"exit status {done.returncode}"
            raise StorageError(f"pg_dump of {shown(url)} failed: {detail}; nothing was written to {dest}")
        os.chmod(tmp, 0o600)
        os.replace(tmp, dest)
    except subprocess.TimeoutExpired as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"pg_dump of {shown(url)} took over {DUMP_TIMEOUT_S:.0f} s; nothing was written") from exc
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write the backup {dest}: {exc}") from exc
    return dest.stat().st_size


def restore_hint(path: Path) -> str:
    """How to start a database from the backup at `path`."""
    return (
        "restore it into a new, empty database with: pg_restore --no-owner --dbname=postgresql://OWNER@HOST/NEWDB "
        f"{path} (then hivectl migrate --database … --grant ROLE=HOST for the hosts' roles)"
    )


@dataclass(frozen=True, slots=True)
class Finding:
    """One check of the doctor on the database."""

    name: str
    status: Status
    detail: str


def _table_exists(conn: psycopg.Connection[tuple[object, ...]], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def check_postgres(url: str, *, down_after_s: float, now: float | None = None) -> list[Finding]:
    """What is right and wrong with the hive database `url` names, each problem with what to do; blocking."""
    now = time.time() if now is None else now
    where = shown(url)
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            found = [Finding("database", "ok", f"{where}: PostgreSQL {version[0] if version else '?'}, reachable")]
            found.append(_schema(conn, where))
            if not _table_exists(conn, "message"):
                return found
            found.append(_trust(conn))
            found.extend(_hosts(conn, where, down_after_s=down_after_s, now=now))
            counts = Counter(
                {str(s): int(n) for s, n in conn.execute("SELECT state::text, count(*) FROM message GROUP BY state")}
            )
            shown_counts = ", ".join(f"{s.lower()} {counts[s]:,}" for s in ("QUEUED", "DELIVERED", "ACKED"))
            found.append(Finding("messages", "ok", shown_counts))
            return found
    except psycopg.Error as exc:
        message = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__)
        return [
            Finding(
                "database",
                "fail",
                f"cannot reach or read {where} ({message}); check that the server runs, that --database names it "
                "and that its password file (passfile=) has the role's line",
            )
        ]


def _schema(conn: psycopg.Connection[tuple[object, ...]], where: str) -> Finding:
    if _table_exists(conn, "schema_version"):
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
        current = int(str(row[0])) if row else 0
    else:
        current = 1 if _table_exists(conn, "message") else 0
    if current > LATEST:
        return Finding(
            "schema",
            "fail",
            f"version {current}, newer than this hyperhive knows ({LATEST}): upgrade hyperhive on this host",
        )
    if current < LATEST:
        return Finding(
            "schema",
            "fail",
            f"version {current}, this hyperhive needs {LATEST}: run `hivectl migrate --database {where}` "
            "as the schema owner",
        )
    return Finding("schema", "ok", f"version {current} (the latest)")


def _trust(conn: psycopg.Connection[tuple[object, ...]]) -> Finding:
    secured = {
        str(name): bool(on)
        for name, on in conn.execute(
            "SELECT relname, relrowsecurity FROM pg_class WHERE relname IN ('message', 'placement') "
            "AND relnamespace = current_schema()::regnamespace"
        )
    }
    roles = (
        [f"{role} runs {host}" for role, host in conn.execute("SELECT role, host FROM host_role ORDER BY role")]
        if _table_exists(conn, "host_role")
        else []
    )
    if not roles:
        return Finding(
            "trust",
            "warn",
            "no host roles: every daemon writes as the schema owner, and nothing stops one writing as another "
            "host's agent; give each host its role with hivectl migrate --database … --grant ROLE=HOST",
        )
    off = sorted(name for name in ("message", "placement") if not secured.get(name))
    if off:
        return Finding(
            "trust",
            "fail",
            f"row-level security is off on {', '.join(off)}, so host roles are not bound to their agents: "
            "run hivectl migrate --database … --grant ROLE=HOST as the schema owner to turn it on",
        )
    return Finding("trust", "ok", f"row-level security on; {'; '.join(roles)}")


def _hosts(
    conn: psycopg.Connection[tuple[object, ...]], where: str, *, down_after_s: float, now: float
) -> list[Finding]:
    if not _table_exists(conn, "daemon_host"):
        return [Finding("hosts", "ok", "no daemon has run on this database yet")]
    leased = {
        str(host): int(str(n))
        for host, n in conn.execute(
            "SELECT lease_host, count(*) FROM message WHERE state = 'DELIVERED' AND leased "
            "AND lease_host IS NOT NULL GROUP BY lease_host"
        )
    }
    found: list[Finding] = []
    for host, beat, agents in conn.execute(
        "SELECT d.host, d.heartbeat_at, (SELECT count(*) FROM placement p WHERE p.host = d.host) "
        "FROM daemon_host d ORDER BY d.host"
    ):
        age = now - float(str(beat))
        held = leased.get(str(host), 0)
        if age <= down_after_s:
            found.append(Finding(f"host {host}", "ok", f"up (heartbeat {age:.0f} s ago), {agents} agents"))
            continue
        if not int(str(agents)) and not held:
            continue  # a host that stopped with nothing left on it: no longer part of the hive
        found.append(
            Finding(
                f"host {host}",
                "fail",
                f"down: no heartbeat for {age:,.0f} s; {agents} agents placed on it, {held} messages leased by its "
                "daemon (they come back once another host runs its agents): start `hivectl serve "
                f"--database {where}` on {host}, or re-place its agents on a live host",
            )
        )
    return found or [Finding("hosts", "ok", "no daemon has run on this database yet")]

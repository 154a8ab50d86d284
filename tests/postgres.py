"""A real PostgreSQL for the tests: one server per test session in a temp dir, a fresh database per test.

`initdb` and `pg_ctl` from Debian's `postgresql` package (or PATH) start a server that listens only
on a unix socket in its temp dir; it is stopped when the session ends. The hive's tables are
created once in a template database, and each test gets its own copy (`CREATE DATABASE … TEMPLATE`),
which takes a few milliseconds. PostgreSQL refuses to run as root: as root the server runs as the
`postgres` user the package creates.
"""

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from hyperhive_core.broker.postgres import create_schema, open_pg_engine

# Enough connections for several daemons' pools at once.
SERVER_OPTIONS = ("-c", "max_connections=300")
# For tests only: no fsync (a test never survives power loss). Benchmarks keep it on.
NO_FSYNC = ("-c", "fsync=off", "-c", "full_page_writes=off")
TEMPLATE = "hive_template"
START_TIMEOUT_S = 60


def postgres_bin() -> Path | None:
    """The directory of `initdb` and `pg_ctl`: Debian's newest, or PATH's; None without PostgreSQL."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if debian:
        return debian[-1].parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


@dataclass(frozen=True, slots=True)
class Tls:
    """A test CA and a server certificate it signed, for 127.0.0.1 and localhost."""

    ca: Path
    cert: Path
    key: Path


@dataclass
class PgServer:
    """A running test server: its socket dir and port, and the databases it made."""

    root: Path
    port: int
    tls: Tls | None = None
    _names: Iterator[int] = field(default_factory=itertools.count)

    def url(self, database: str, *, user: str = "postgres") -> str:
        """A connection URL for `database` over the server's unix socket."""
        return f"postgresql://{user}@/{database}?host={self.root}&port={self.port}"

    def execute(self, sql: str) -> None:
        """Run one statement as the superuser, outside a transaction (CREATE DATABASE needs that)."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.encode())

    def new_database(self) -> str:
        """A fresh database with the hive's tables; returns its URL."""
        name = f"hive_{os.getpid()}_{next(self._names)}"
        self.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE} STRATEGY FILE_COPY")
        return self.url(name)


def _run(args: list[str | Path], server_user: pwd.struct_passwd | None) -> None:
    user, group = (server_user.pw_name, server_user.pw_gid) if server_user else (None, None)
    done = subprocess.run(args, capture_output=True, text=True, user=user, group=group, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stdout}{done.stderr}")


def make_tls(directory: Path) -> Tls:
    """Make a CA and a server certificate (SAN 127.0.0.1, localhost) with `openssl` in `directory`."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is not installed (Debian: apt-get install openssl)")
    tls = Tls(directory / "ca.crt", directory / "server.crt", directory / "server.key")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for args in (
        ["req", "-x509", *ec, "-keyout", directory / "ca.key", "-out", tls.ca, "-days", "2", "-subj", "/CN=hive CA"],
        ["req", *ec, "-keyout", tls.key, "-out", directory / "server.csr", "-subj", "/CN=localhost"],
        [
            "x509", "-req", "-in", directory / "server.csr", "-CA", tls.ca, "-CAkey", directory / "ca.key",
            "-CAcreateserial", "-out", tls.cert, "-days", "2", "-extfile", directory / "san.ext",
        ],
    ):  # fmt: skip
        _run([openssl, *args], None)
    return tls


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_postgres(bindir: Path, *, durable: bool = False, tls: bool = False) -> Generator[PgServer]:
    """Start a PostgreSQL server in a new temp dir with the hive's template database; stop it after.

    `durable`: fsync as a real server does (benchmarks); tests run without it. `tls`: it also listens
    on 127.0.0.1, with TLS only there (`PgServer.tls` has the CA that signed its certificate).
    """
    root = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
    server_user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    data = root / "data"
    # A port of its own: the socket file's name carries it, and another session's server may run.
    port = _free_port() if tls else 20000 + os.getpid() % 20000
    made = make_tls(root) if tls else None
    if server_user is not None:
        for path in (root, *((made.cert, made.key) if made else ())):
            os.chown(path, server_user.pw_uid, server_user.pw_gid)
    _run(
        [bindir / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"],
        server_user,
    )
    listen: tuple[str, ...] = ("-c", "listen_addresses=")
    if made is not None:
        listen = ("-c", "listen_addresses=127.0.0.1", "-c", "ssl=on")
        listen += ("-c", f"ssl_cert_file={made.cert}", "-c", f"ssl_key_file={made.key}")
        # The unix socket for the tests' own administration; over TCP, TLS or nothing.
        hba = "local all all trust\nhostssl all all 127.0.0.1/32 trust\n"
        (data / "pg_hba.conf").write_text(hba)  # initdb made it the server user's; writing keeps its owner
    options = " ".join(("-k", str(root), *listen, "-p", str(port), *SERVER_OPTIONS, *(() if durable else NO_FSYNC)))
    ctl: list[str | Path] = [bindir / "pg_ctl", "-D", data, "-l", root / "server.log", "-w", "-t", str(START_TIMEOUT_S)]
    _run([*ctl, "-o", options, "start"], server_user)
    try:
        server = PgServer(root, port, tls=made)
        server.execute(f"CREATE DATABASE {TEMPLATE}")
        engine = open_pg_engine(server.url(TEMPLATE))
        try:
            create_schema(engine)
        finally:
            engine.dispose()
        yield server
    finally:
        _run([*ctl, "-m", "immediate", "stop"], server_user)
        shutil.rmtree(root, ignore_errors=True)

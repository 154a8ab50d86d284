"""Shared fixtures: the anyio backend and short temp dirs that fit AF_UNIX socket paths."""

import logging
import os
import shutil
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from hyperhive_core.broker.postgres import open_pg_store
from hyperhive_core.broker.sqlite import SqliteMessageStore
from hyperhive_core.broker.storage import MessageStore
from hyperhive_core.broker.store import HiveStore, open_engine
from hyperhive_core.config import LEASE_HOLD_S
from hyperhive_core.lifecycle._cgroup import CgroupHost
from tests.postgres import PgServer, postgres_bin, running_postgres

# The broker's engines: every test that takes `hive_db` runs on each.
ENGINES = ("sqlite", "postgresql")


@pytest.fixture(autouse=True, scope="session")
def no_default_dashboard() -> Iterator[None]:
    """Daemons in tests serve no dashboard unless a test asks for one (`hive_config(..., dashboard=...)`).

    Parallel test runs start many daemons: on the default 127.0.0.1:8420 all but one would fail.
    Set in the environment, so `hivectl serve` in a subprocess inherits it too.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HYPERHIVE_DASHBOARD", "off")
        yield


@pytest.fixture(autouse=True, scope="session")
def no_operator_dirs() -> Iterator[None]:
    """The tests choose their own dirs: an operator's HYPERHIVE_RUN_DIR/STATE_DIR (the demo's env file,
    sourced in the shell that runs the tests) must not reach the daemons and hivectl they start."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("HYPERHIVE_RUN_DIR", raising=False)
        patch.delenv("HYPERHIVE_STATE_DIR", raising=False)
        yield


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def short_tmpdir() -> Iterator[Path]:
    """A temp dir under /tmp with a short name: pytest's tmp_path can overflow the 107-byte socket limit."""
    path = Path(tempfile.mkdtemp(prefix="hh-", dir="/tmp"))
    try:
        yield path
    finally:
        # A daemon killed with -9 leaves its hive's (empty) cgroup dirs; the next daemon of that
        # state dir would remove them, but there is none.
        CgroupHost.detect(path / "state").close()
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo what an in-process `hivectl serve` does to the root logger: its stream dies with the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server for the whole session (started on first use, stopped at the end)."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed here (apt-get install postgresql; CI installs it)")
    with running_postgres(bindir) as server:
        yield server


@dataclass
class HiveDb:
    """One empty hive database on one engine; `open` gives a store on it (again: another, as a new process would)."""

    engine: str
    _open: Callable[[float], AbstractAsyncContextManager[MessageStore]]
    _stack: AsyncExitStack

    async def open(self, *, lease_hold_s: float = LEASE_HOLD_S) -> MessageStore:
        """A store on the database, closed when the test ends."""
        return await self._stack.enter_async_context(self._open(lease_hold_s))


@pytest.fixture(params=ENGINES)
async def hive_db(request: pytest.FixtureRequest, short_tmpdir: Path) -> AsyncIterator[HiveDb]:
    """A fresh database on each of the broker's engines: SQLite's file, or a database of `pg_server`."""
    engine: str = request.param
    if engine == "sqlite":
        path = short_tmpdir / "broker.sqlite"

        @asynccontextmanager
        async def open_sqlite(lease_hold_s: float) -> AsyncGenerator[MessageStore]:
            sql = open_engine(path)
            try:
                yield SqliteMessageStore(HiveStore(sql, lease_hold_s=lease_hold_s))
            finally:
                sql.dispose()

        opener = open_sqlite
    else:
        server: PgServer = request.getfixturevalue("pg_server")
        url = server.new_database()

        def open_postgres(lease_hold_s: float) -> AbstractAsyncContextManager[MessageStore]:
            return open_pg_store(url, lease_hold_s=lease_hold_s)

        opener = open_postgres
    async with AsyncExitStack() as stack:
        yield HiveDb(engine, opener, stack)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """In CI (`.ci/run` sets HYPERHIVE_NO_SKIP=1) a skip is a failure: CI installs every tool the
    tests use (bubblewrap, nix, chromium, claude-code, PostgreSQL), so a skip there means one is missing."""
    report = yield
    if report.skipped and os.environ.get("HYPERHIVE_NO_SKIP") == "1" and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped where nothing may be (HYPERHIVE_NO_SKIP=1): {reason}"
    return report

"""The daemon: owns the root task group, the database, the backend, the hive and every socket.

`serve` reports started only once host.sock and every restored agent socket listen, so "ready"
means reachable. Shutdown (cancel, SIGTERM, or the operator's shutdown tool) stops the backend's
children shielded and bounded, closes the sockets and leaves the database consistent.
"""

import functools
import logging
import os
import signal
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from mcp.server.mcpserver import MCPServer
from sqlalchemy import Engine

from hyperhive_core.approvals.control import HiveControl
from hyperhive_core.approvals.desired import DesiredReader
from hyperhive_core.approvals.mirror import DesiredMirror
from hyperhive_core.approvals.proposals import Proposals
from hyperhive_core.approvals.reconciler import Reconciler
from hyperhive_core.approvals.records import ApprovalRecords
from hyperhive_core.approvals.repo import StateRepo
from hyperhive_core.broker.broker import Broker, DiskGuard
from hyperhive_core.broker.database import AS_IS, StartFrom, close_database, mark_running, open_database
from hyperhive_core.broker.sqlite import SqliteMessageStore
from hyperhive_core.broker.storage import MessageStore
from hyperhive_core.broker.store import DbLimits
from hyperhive_core.config import HiveConfig
from hyperhive_core.errors import ConfigError, HiveError
from hyperhive_core.hive import Hive
from hyperhive_core.lifecycle import create_backend
from hyperhive_core.lock import DaemonLock
from hyperhive_core.mcp.sockets import SocketHost
from hyperhive_core.mcp.tools import build_agent_server, build_operator_server

logger = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 15.0
# How often the database's marker records the highest committed id (when it changed).
MARKER_EVERY_S = 2.0


class Daemon:
    """One hive daemon for one run dir and state dir."""

    def __init__(self, config: HiveConfig, *, start: StartFrom = AS_IS, lock: DaemonLock | None = None) -> None:
        self.config = config
        self._start = start
        # Taken before serve when the caller must know at once (a detaching `hivectl serve`).
        self._lock = lock
        self._started = False
        self._hive: Hive | None = None
        self._control: HiveControl | None = None
        self._sockets: SocketHost | None = None

    @property
    def hive(self) -> Hive:
        """The running hive."""
        if self._hive is None:
            raise RuntimeError("Daemon.serve() has not started yet")
        return self._hive

    @property
    def sockets(self) -> SocketHost:
        """The principals' sockets being served."""
        if self._sockets is None:
            raise RuntimeError("Daemon.serve() has not started yet")
        return self._sockets

    @property
    def control(self) -> HiveControl:
        """The lifecycle verbs: the state repo, the reconciler, the proposals."""
        if self._control is None:
            raise RuntimeError("Daemon.serve() has not started yet")
        return self._control

    @property
    def host_socket(self) -> Path:
        """The operator's socket."""
        return self.config.host_socket

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the daemon until cancelled or asked to shut down.

        Raises:
            DaemonRunningError: another daemon holds the state dir or the run dir.
            ConfigError: the dirs cannot be used.
            DatabaseDamagedError: the database lost what it had committed (the error says the way out).
            StorageError: the database cannot be opened.
            BackendUnavailableError: the configured backend cannot run here.
        """
        if self._started:
            raise RuntimeError("Daemon.serve() was already started")
        self._started = True
        config = self.config
        config.check_socket_paths()
        lock = self._lock or DaemonLock.acquire(config.state_dir, config.run_dir)
        try:
            await self._serve_locked(task_status)
        finally:
            lock.release()

    async def _serve_locked(self, task_status: TaskStatus[None]) -> None:
        config = self.config
        for path in (config.run_dir, config.state_dir):
            try:
                path.mkdir(parents=True, exist_ok=True, mode=0o700)
                # The sockets, the database and the agents' logs are for the daemon's user only.
                path.chmod(0o700)
            except OSError as exc:
                raise ConfigError(f"cannot create {path}: {exc}") from exc
        if config.database is not None:
            await self._serve_on_postgres(config.database, task_status)
            return
        limits = DbLimits(
            busy_timeout_ms=round(config.db_busy_timeout_s * 1000),
            max_bytes=config.max_db_mb * 1024 * 1024 if config.max_db_mb else None,
        )
        db = config.broker_path
        engine, store = await anyio.to_thread.run_sync(
            functools.partial(open_database, db, limits, lease_hold_s=config.lease_hold_s, start=self._start)
        )
        try:
            disk = DiskGuard(config.state_dir, config.min_free_mb * 1024 * 1024)
            broker = Broker(
                SqliteMessageStore(store),
                max_body_bytes=config.max_body_bytes,
                max_inbox_depth=config.max_inbox_depth,
                disk=disk,
            )
            await self._run(broker, engine, task_status)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(close_database, db, engine, store)

    async def _serve_on_postgres(self, url: str, task_status: TaskStatus[None]) -> None:
        """Run on a PostgreSQL database other daemons may share: its store, and a listener for their commits."""
        # Imported here: psycopg (and libpq) cost nothing to a daemon on SQLite.
        from hyperhive_core.broker.listener import listen_for_messages
        from hyperhive_core.broker.placement import Placement, heartbeat
        from hyperhive_core.broker.postgres import open_pg_store

        config = self.config
        if self._start != AS_IS:
            raise ConfigError(
                "--restore and --salvage are for the SQLite database; on PostgreSQL use its own tools (pg_restore)"
            )
        disk = DiskGuard(config.state_dir, config.min_free_mb * 1024 * 1024)
        async with open_pg_store(url, host=config.host_name, lease_hold_s=config.lease_hold_s) as store:
            broker = Broker(
                store, max_body_bytes=config.max_body_bytes, max_inbox_depth=config.max_inbox_depth, disk=disk
            )
            placement = Placement(store.pool, config.host_name)
            await placement.create()

            def placed(hive: Hive, tg: TaskGroup) -> None:
                hive.directory = placement
                tg.start_soon(heartbeat, placement, lambda: hive.agent_names)

            async with anyio.create_task_group() as tg:
                await tg.start(functools.partial(listen_for_messages, url, store, broker))
                await self._run(broker, store.engine, task_status, on_ready=placed)
                tg.cancel_scope.cancel()

    async def _run(
        self,
        broker: Broker,
        engine: Engine,
        task_status: TaskStatus[None],
        *,
        on_ready: Callable[[Hive, TaskGroup], None] | None = None,
    ) -> None:
        config = self.config
        backend = create_backend(config)
        for warning in backend.info.warnings:
            logger.warning("%s", warning)
        stop_requested = anyio.Event()
        pid_file = config.run_dir / "daemon.pid"
        # Before anything listens: a host without git (or a state repo git cannot use) fails the start.
        await StateRepo(config.state_repo, git=config.git).ensure()
        try:
            async with anyio.create_task_group() as tg:
                sockets = SocketHost(tg)
                self._sockets = sockets
                hive = Hive(config, broker, backend)
                self._hive = hive
                control = _build_control(config, hive, engine, sockets, tg)
                self._control = control
                try:
                    # First kills whatever an earlier daemon left running, so no agent runs twice.
                    await tg.start(backend.serve)
                    operator = build_operator_server(hive, control, stop_requested=stop_requested)
                    await sockets.open(config.host_socket, operator, label="operator", mode=0o600)
                    # the budgets first: an agent brought up over its budget must not be handed a message
                    await hive.budgets.open()
                    await control.bootstrap()
                    await hive.budgets.settle()
                    tg.start_soon(hive.budgets.serve)
                    if control.reconciler.mirror is not None:
                        tg.start_soon(control.reconciler.mirror.serve)
                    await tg.start(
                        functools.partial(
                            control.reconciler.serve,
                            health_interval_s=config.health_interval_s,
                            watch_interval_s=config.watch_interval_s,
                        )
                    )
                    # Stopped before the agents and the sockets: once host.sock closes (and `hivectl
                    # shutdown` returns), the dashboard's port is free for the next daemon.
                    async with _dashboard(config, hive, operator):
                        pid_file.write_text(f"{os.getpid()}\n")
                        if config.database is None:
                            tg.start_soon(_keep_marker, config.broker_path, broker.store)
                        if on_ready is not None:
                            on_ready(hive, tg)
                        logger.info(
                            "hyperhive daemon ready: %d agents, operator socket %s, state %s",
                            len(hive.agent_names),
                            config.host_socket,
                            config.state_dir,
                        )
                        task_status.started()
                        await stop_requested.wait()
                        logger.info("shutdown requested by the operator")
                finally:
                    # Nothing may start an agent while they are being stopped.
                    control.reconciler.close()
                    # shielded and bounded: a cancelled daemon must still reap its agents.
                    with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_GRACE_S):
                        await backend.aclose()
                        await sockets.close_all()
                    tg.cancel_scope.cancel()
        finally:
            pid_file.unlink(missing_ok=True)


def _dashboard(config: HiveConfig, hive: Hive, operator: MCPServer[Any]) -> AbstractAsyncContextManager[None]:
    """The dashboard while the daemon runs (the page acts through `operator`, the toolset behind host.sock)."""
    if config.dashboard is None:
        return nullcontext()
    # Imported here: starlette and uvicorn cost nothing to a daemon without a dashboard.
    from hyperhive_core.dashboard.server import open_dashboard

    return open_dashboard(config, hive, operator)


def _build_control(config: HiveConfig, hive: Hive, engine: Engine, sockets: SocketHost, tg: TaskGroup) -> HiveControl:
    """The state repo, the reconciler and the proposals, wired to the hive's sockets."""
    repo = StateRepo(config.state_repo, git=config.git, remote=config.desired_remote)
    reader = DesiredReader(repo)
    records = ApprovalRecords(engine)
    # Late-bound: an agent's server needs the control it is part of.
    controls: list[HiveControl] = []

    # The agents whose socket this daemon serves (a set: a pass asks for each agent).
    listening: set[str] = set()

    async def open_socket(name: str) -> None:
        if hive.directory is not None:
            # On a shared database the trust rules let an agent send only once it is placed here: placed
            # before its socket listens, its first send is stored (the heartbeat would lag up to 50 ms).
            try:
                await hive.directory.place(hive.agent_names)
            except HiveError as exc:
                logger.warning(
                    "could not place agent %s before its socket opened (%s); the heartbeat retries", name, exc
                )
        server = build_agent_server(name, hive, controls[0])
        await sockets.open(config.agent_socket(name), server, label=f"agent {name}")
        listening.add(name)

    async def close_socket(name: str) -> None:
        listening.discard(name)
        await sockets.close(config.agent_socket(name))

    def socket_open(name: str) -> bool:
        return name in listening

    reconciler = Reconciler(
        hive,
        repo,
        reader,
        records,
        task_group=tg,
        open_socket=open_socket,
        close_socket=close_socket,
        socket_open=socket_open,
    )
    hive.sync = reconciler
    if repo.remote is not None:
        reconciler.mirror = DesiredMirror(repo, interval_s=config.desired_fetch_s, on_moved=reconciler.kick)
    proposals = Proposals(hive, repo, reader, records, reconciler)
    reconciler.ticker = proposals
    control = HiveControl(hive, repo, reader, records, reconciler, proposals)
    controls.append(control)
    return control


async def _keep_marker(db: Path, store: MessageStore) -> None:
    """Record the highest committed id every few seconds, so losing those messages later is noticed."""
    marked = store.last_id
    while True:
        await anyio.sleep(MARKER_EVERY_S)
        if store.last_id != marked:
            marked = store.last_id
            try:
                await anyio.to_thread.run_sync(mark_running, db, marked)
            except OSError:
                logger.warning("could not update the database's marker", exc_info=True)


@asynccontextmanager
async def running_daemon(config: HiveConfig) -> AsyncGenerator[Daemon]:
    """Run a daemon in the background of the caller's task; cancel it on exit."""
    daemon = Daemon(config)
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.serve)
        try:
            yield daemon
        finally:
            tg.cancel_scope.cancel()


async def serve_until_signalled(
    config: HiveConfig,
    *,
    on_ready: Callable[[], None] | None = None,
    start: StartFrom = AS_IS,
    lock: DaemonLock | None = None,
) -> None:
    """Run a daemon in the foreground until SIGTERM, SIGINT or the operator's shutdown."""
    # This process is the daemon: whatever it and its agents create (logs, work dirs, the state
    # repo) is for its user only.
    os.umask(0o077)
    daemon = Daemon(config, start=start, lock=lock)
    async with anyio.create_task_group() as tg:

        async def watch_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    logger.info("received %s, shutting down", signal.Signals(signum).name)
                    tg.cancel_scope.cancel()
                    return

        async def run_daemon(*, task_status: TaskStatus[None]) -> None:
            await daemon.serve(task_status=task_status)
            # The operator asked for shutdown: stop watching for signals too.
            tg.cancel_scope.cancel()

        tg.start_soon(watch_signals)
        await tg.start(run_daemon)
        if on_ready is not None:
            on_ready()

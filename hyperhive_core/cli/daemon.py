"""`hivectl serve` (foreground, or `--detach`ed until ready) and `hivectl shutdown`.

A detached daemon is a forked child in its own session, logging to <state dir>/daemon.log; the
parent returns only when the child listens (it writes one byte on a pipe), or fails with the
log's last lines, so a script can use the hive on the next line.
"""

import logging
import os
import select
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from hyperhive_core.broker.dburl import check_database_url
from hyperhive_core.cli._client import OperatorClient, connect_raw, wait_until_closed
from hyperhive_core.cli._common import RunDir, StateDir, console, err_console, fail, use_dirs
from hyperhive_core.config import (
    AGENT_CPUS,
    AGENT_MEMORY_MB,
    AGENT_PIDS,
    DESIRED_FETCH_S,
    MAX_EXCHANGES,
    MIN_FREE_MB,
    RATE_LIMIT,
    TURN_TIMEOUT_S,
    HiveConfig,
)
from hyperhive_core.dashboard.address import DEFAULT_ADDRESS, parse_setting
from hyperhive_core.errors import DaemonUnavailableError, HiveError
from hyperhive_core.mcp.models import ShutdownReceipt

if TYPE_CHECKING:
    from hyperhive_core.broker.database import StartFrom
    from hyperhive_core.lock import DaemonLock

READY_TIMEOUT_S = 30.0


class Sandbox(StrEnum):
    """How the local backend isolates agents."""

    AUTO = "auto"
    BWRAP = "bwrap"
    NONE = "none"


def _startup_error(exc: BaseException) -> HiveError | None:
    """The one HiveError a failed start raised, unwrapped from the task groups around it."""
    while isinstance(exc, BaseExceptionGroup):
        group = cast("BaseExceptionGroup[BaseException]", exc)
        if len(group.exceptions) != 1:
            return None
        exc = group.exceptions[0]
    return exc if isinstance(exc, HiveError) else None


def _serve(
    config: HiveConfig, start: "StartFrom", *, on_ready: Callable[[], None] | None = None, lock: "DaemonLock | None"
) -> None:
    # Imported here: the daemon pulls in the MCP server (~1 s), which every other verb does without.
    import anyio

    from hyperhive_core.daemon import serve_until_signalled

    anyio.run(lambda: serve_until_signalled(config, on_ready=on_ready, start=start, lock=lock))


def _run_foreground(config: HiveConfig, start: "StartFrom", log_level: str) -> None:
    from hyperhive_core.logs import configure_daemon_logging

    configure_daemon_logging(log_level)
    try:
        _serve(config, start, lock=None)
    except (HiveError, BaseExceptionGroup) as exc:
        if (error := _startup_error(exc)) is None:
            raise
        raise fail(str(error)) from None


class _ReadyPipe:
    """Tells the waiting parent how the start went: b"1" when the daemon listens, else its error."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def __call__(self) -> None:
        self._say(b"1")

    def failed(self, error: str) -> None:
        """Hand the parent the start's error, to print as its own."""
        self._say(b"E" + error.encode(errors="replace")[:4096])

    def _say(self, what: bytes) -> None:
        if self._fd is not None:
            try:
                os.write(self._fd, what)
            finally:
                os.close(self._fd)
                self._fd = None


def _read_all(fd: int, timeout_s: float) -> bytes:
    """What the child writes on the pipe until it closes it, or until `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    chunks: list[bytes] = []
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _detach(config: HiveConfig, start: "StartFrom", log_level: str) -> None:
    from hyperhive_core.lock import DaemonLock

    log_path = config.state_dir / "daemon.log"
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the daemon
        os.close(read_fd)
        os.setsid()
        # The daemon's files (its log too, rotated ones included) are its user's alone.
        os.umask(0o077)
        ready = _ReadyPipe(write_fd)
        code = 1
        logging_to_file = False
        try:
            # First the lock: a daemon that loses it must not touch the winner's log or files.
            lock = DaemonLock.acquire(config.state_dir, config.run_dir)
            null_fd = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null_fd, fd)
            from hyperhive_core.logs import configure_daemon_logging

            configure_daemon_logging(log_level, log_path)
            logging_to_file = True
            _serve(config, start, on_ready=ready, lock=lock)
            code = 0
        except BaseException as exc:
            error = _startup_error(exc)
            ready.failed(str(error) if error is not None else f"the daemon crashed: {exc!r}; see {log_path}")
            if logging_to_file:  # else the parent says it: its stderr is still ours
                if error is not None:
                    logging.getLogger("hivectl").error("daemon failed: %s", error)
                else:
                    logging.getLogger("hivectl").exception("daemon crashed")
        os._exit(code)
    os.close(write_fd)
    answer = _read_all(read_fd, READY_TIMEOUT_S)
    os.close(read_fd)
    if answer.startswith(b"E"):
        raise fail(answer[1:].decode(errors="replace"))
    if answer != b"1":
        raise fail(f"the daemon did not start within {READY_TIMEOUT_S:g} s; see {log_path}")
    console.print(
        f"daemon ready (pid {pid}); operator socket {config.host_socket}; log {log_path}", markup=False, soft_wrap=True
    )


def serve(
    ctx: typer.Context,
    backend: Annotated[str, typer.Option(help="Lifecycle backend.", envvar="HYPERHIVE_BACKEND")] = "local",
    sandbox: Annotated[
        Sandbox, typer.Option(help="local backend: auto (bwrap if installed), bwrap (required) or none.")
    ] = Sandbox.AUTO,
    share_net: Annotated[bool, typer.Option(help="Let agents reach the network (claude needs its API).")] = True,
    detach: Annotated[bool, typer.Option(help="Run in the background; return once the daemon listens.")] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    nixos_template: Annotated[
        Path | None,
        typer.Option(help="nixos backend: the agents' container template.", envvar="HYPERHIVE_NIXOS_TEMPLATE"),
    ] = None,
    max_exchanges: Annotated[
        int, typer.Option(min=1, help="Runaway guard: messages two agents may trade with no operator word.")
    ] = MAX_EXCHANGES,
    rate_limit: Annotated[int, typer.Option(min=1, help="Runaway guard: send calls an agent may make per minute.")] = (
        RATE_LIMIT
    ),
    turn_timeout: Annotated[float, typer.Option(min=1, help="Seconds a claude turn may take before it is killed.")] = (
        TURN_TIMEOUT_S
    ),
    manager: Annotated[
        bool, typer.Option("--manager/--no-manager", envvar="HYPERHIVE_MANAGER", help="Start hm1nd with the hive.")
    ] = False,
    max_db_mb: Annotated[
        int | None, typer.Option(min=1, help="Cap the message database at this many MB (default: the disk).")
    ] = None,
    min_free_mb: Annotated[
        int, typer.Option(min=0, help="Refuse new messages while the disk has less free; reads go on.")
    ] = MIN_FREE_MB,
    claude_config_dir: Annotated[
        Path | None,
        typer.Option(help="A dir with claude's login, shared by every agent.", envvar="HYPERHIVE_CLAUDE_CONFIG_DIR"),
    ] = None,
    agent_memory_mb: Annotated[
        int, typer.Option(min=0, help="Each agent's memory limit in MiB unless its spawn sets one; 0: none.")
    ] = AGENT_MEMORY_MB,
    agent_pids: Annotated[int, typer.Option(min=0, help="Each agent's process limit; 0: none.")] = AGENT_PIDS,
    agent_cpus: Annotated[float, typer.Option(min=0, help="Each agent's CPU limit; 0: none.")] = AGENT_CPUS,
    restore: Annotated[
        Path | None,
        typer.Option(
            help="Start from this backup (hivectl backup); the database it replaces is kept in damaged-<time>/."
        ),
    ] = None,
    salvage: Annotated[
        bool,
        typer.Option(
            "--salvage", help="Start a damaged database with what SQLite can still read; a copy is kept first."
        ),
    ] = False,
    dashboard: Annotated[
        str | None,
        typer.Option(
            metavar="HOST:PORT",
            envvar="HYPERHIVE_DASHBOARD",
            help=f"Serve the dashboard here (port 0: any free one; `off`: none) \\[default: {DEFAULT_ADDRESS}].",
            show_default=False,
        ),
    ] = None,
    no_dashboard: Annotated[bool, typer.Option("--no-dashboard", help="Serve no dashboard.")] = False,
    dashboard_token_file: Annotated[
        Path | None,
        typer.Option(
            envvar="HYPERHIVE_DASHBOARD_TOKEN_FILE",
            help="The dashboard's access token, from this file (required off loopback); default: one the daemon "
            "makes and keeps in the state dir.",
        ),
    ] = None,
    dashboard_host: Annotated[
        list[str] | None,
        typer.Option(help="Another Host name the dashboard answers to (a proxy's, a tunnel's); repeatable."),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            envvar="HYPERHIVE_DATABASE",
            show_default=False,
            help="A PostgreSQL URL (postgresql://USER@HOST/DBNAME?sslmode=verify-full) the daemons of several "
            "hosts share; its password goes in a pgpass file (passfile=PATH or PGPASSFILE), never in the URL. "
            "Default: SQLite in the state dir.",
        ),
    ] = None,
    host_name: Annotated[
        str | None,
        typer.Option(
            envvar="HYPERHIVE_HOST_NAME",
            show_default=False,
            help="With --database: the name of this host its agents are placed on (default: the machine's name).",
        ),
    ] = None,
    desired_remote: Annotated[
        str | None,
        typer.Option(
            envvar="HYPERHIVE_DESIRED_REMOTE",
            show_default=False,
            help="A git URL (a path, ssh://, https://) holding the desired hive every host shares: the state "
            "repo mirrors it and every change is pushed there first. Default: the state repo is this host's own.",
        ),
    ] = None,
    desired_fetch_s: Annotated[
        float, typer.Option(min=0.1, help="With --desired-remote: how often to fetch it, in seconds.")
    ] = DESIRED_FETCH_S,
    run_dir: RunDir = None,
    state_dir: StateDir = None,
) -> None:
    """Run the hive daemon: the broker, every agent's MCP socket and the operator's host.sock."""
    from hyperhive_core.broker.database import StartFrom

    if restore is not None and salvage:
        raise fail("--restore and --salvage exclude each other: restore a backup, or salvage what is there")
    d = use_dirs(ctx, run_dir, state_dir)
    try:
        address = None if no_dashboard else parse_setting(DEFAULT_ADDRESS if dashboard is None else dashboard)
        if database is not None:
            check_database_url(database)
    except ValueError as exc:
        raise fail(str(exc)) from None
    config = HiveConfig(
        run_dir=d.run_dir,
        state_dir=d.state_dir,
        backend=backend,
        sandbox=sandbox.value,
        share_net=share_net,
        nixos_template=nixos_template,
        claude_config_dir=claude_config_dir,
        max_exchanges=max_exchanges,
        rate_limit=rate_limit,
        turn_timeout_s=turn_timeout,
        max_db_mb=max_db_mb,
        min_free_mb=min_free_mb,
        start_manager=manager,
        agent_memory_mb=agent_memory_mb or None,
        agent_pids=agent_pids or None,
        agent_cpus=agent_cpus or None,
        dashboard=None if address is None else str(address),
        dashboard_token_file=dashboard_token_file.resolve() if dashboard_token_file else None,
        dashboard_hosts=tuple(dashboard_host or ()),
        database=database,
        # A path given relative to where hivectl runs means that path, wherever the daemon runs git.
        desired_remote=str(Path(desired_remote).resolve())
        if desired_remote and Path(desired_remote).exists()
        else desired_remote or None,
        desired_fetch_s=desired_fetch_s,
    )
    if host_name:
        config = config.model_copy(update={"host_name": host_name})
    start = StartFrom(restore=restore.resolve() if restore else None, salvage=salvage)
    if detach:
        _detach(config, start, log_level)
    else:
        _run_foreground(config, start, log_level)


def shutdown(
    ctx: typer.Context,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the daemon to finish stopping.")] = 30.0,
    run_dir: RunDir = None,
    state_dir: StateDir = None,
) -> None:
    """Stop the daemon: agents stop, messages stay stored, the hive returns on the next serve."""
    socket = use_dirs(ctx, run_dir, state_dir).host_socket

    def act(client: OperatorClient) -> None:
        # A second, silent connection: the daemon closes it only when it has stopped everything.
        watcher = connect_raw(socket)
        with watcher:
            try:
                client.call("shutdown", {}, ShutdownReceipt)
            except DaemonUnavailableError:
                # The daemon may close our session before its answer is written (nothing to stop
                # takes no time); the watcher below tells whether it really stopped.
                pass
            if not wait_until_closed(watcher, wait):
                raise HiveError(f"the daemon did not stop within {wait:g} s; see its log")

    try:
        with OperatorClient(socket) as client:
            act(client)
    except DaemonUnavailableError:
        # Nothing to stop is not a failure (as `systemctl stop` of a stopped unit).
        err_console.print(f"no daemon is running at {socket}; nothing to stop", markup=False, soft_wrap=True)
        return
    except HiveError as exc:
        raise fail(str(exc)) from None
    err_console.print("daemon stopped")

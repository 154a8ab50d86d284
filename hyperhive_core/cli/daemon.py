"""`hivectl serve` (foreground, or `--detach`ed until ready) and `hivectl shutdown`.

A detached daemon is a forked child in its own session, logging to <state dir>/daemon.log; the
parent returns only when the child listens (it writes one byte on a pipe), or fails with the
log's last lines, so a script can use the hive on the next line.
"""

import logging
import os
import select
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, cast

import typer

from hyperhive_core.cli._client import OperatorClient, connect_raw, wait_until_closed
from hyperhive_core.cli._common import call_daemon, console, dirs, err_console, fail
from hyperhive_core.config import (
    AGENT_CPUS,
    AGENT_MEMORY_MB,
    AGENT_PIDS,
    MAX_EXCHANGES,
    RATE_LIMIT,
    TURN_TIMEOUT_S,
    HiveConfig,
)
from hyperhive_core.errors import DaemonUnavailableError, HiveError
from hyperhive_core.mcp.models import ShutdownReceipt

READY_TIMEOUT_S = 30.0


class Sandbox(StrEnum):
    """How the local backend isolates agents."""

    AUTO = "auto"
    BWRAP = "bwrap"
    NONE = "none"


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr, force=True)
    # The SDK logs every refused tool call at INFO; the caller already got the error.
    logging.getLogger("mcp.server.mcpserver.server").setLevel(logging.WARNING)


def _startup_error(exc: BaseException) -> HiveError | None:
    """The one HiveError a failed start raised, unwrapped from the task groups around it."""
    while isinstance(exc, BaseExceptionGroup):
        group = cast("BaseExceptionGroup[BaseException]", exc)
        if len(group.exceptions) != 1:
            return None
        exc = group.exceptions[0]
    return exc if isinstance(exc, HiveError) else None


def _serve(config: HiveConfig, on_ready: Callable[[], None] | None = None) -> None:
    # Imported here: the daemon pulls in the MCP server (~1 s), which every other verb does without.
    import anyio

    from hyperhive_core.daemon import serve_until_signalled

    anyio.run(lambda: serve_until_signalled(config, on_ready=on_ready))


def _run_foreground(config: HiveConfig) -> None:
    try:
        _serve(config)
    except (HiveError, BaseExceptionGroup) as exc:
        if (error := _startup_error(exc)) is None:
            raise
        raise fail(str(error)) from None


class _ReadyPipe:
    """Tells a waiting parent that the daemon listens."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __call__(self) -> None:
        os.write(self._fd, b"1")
        os.close(self._fd)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _detach(config: HiveConfig, log_level: str) -> None:
    log_path = config.state_dir / "daemon.log"
    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the daemon
        os.close(read_fd)
        os.setsid()
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        _configure_logging(log_level)
        code = 0
        try:
            _serve(config, _ReadyPipe(write_fd))
        except BaseException as exc:
            if (error := _startup_error(exc)) is not None:
                logging.getLogger("hivectl").error("daemon failed: %s", error)
            else:
                logging.getLogger("hivectl").exception("daemon crashed")
            code = 1
        os._exit(code)
    os.close(write_fd)
    ready, _, _ = select.select([read_fd], [], [], READY_TIMEOUT_S)
    answer = os.read(read_fd, 1) if ready else b""
    os.close(read_fd)
    if answer != b"1":
        tail = _tail(log_path)
        raise fail(f"the daemon did not start; {log_path} says:\n{tail}" if tail else "the daemon did not start")
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
        int, typer.Option(min=1, help="Runaway guard: messages two agents may trade with no operator/hm1nd word.")
    ] = MAX_EXCHANGES,
    rate_limit: Annotated[int, typer.Option(min=1, help="Runaway guard: messages an agent may send per minute.")] = (
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
    claude_config_dir: Annotated[
        Path | None,
        typer.Option(help="A dir with claude's login, shared by every agent.", envvar="HYPERHIVE_CLAUDE_CONFIG_DIR"),
    ] = None,
    agent_memory_mb: Annotated[
        int, typer.Option(min=0, help="Each agent's memory limit in MiB unless its spawn sets one; 0: none.")
    ] = AGENT_MEMORY_MB,
    agent_pids: Annotated[int, typer.Option(min=0, help="Each agent's process limit; 0: none.")] = AGENT_PIDS,
    agent_cpus: Annotated[float, typer.Option(min=0, help="Each agent's CPU limit; 0: none.")] = AGENT_CPUS,
) -> None:
    """Run the hive daemon: the broker, every agent's MCP socket and the operator's host.sock."""
    d = dirs(ctx)
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
        start_manager=manager,
        agent_memory_mb=agent_memory_mb or None,
        agent_pids=agent_pids or None,
        agent_cpus=agent_cpus or None,
    )
    if detach:
        _detach(config, log_level)
        return
    _configure_logging(log_level)
    _run_foreground(config)


def shutdown(
    ctx: typer.Context,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the daemon to finish stopping.")] = 30.0,
) -> None:
    """Stop the daemon: agents stop, messages stay stored, the hive returns on the next serve."""
    socket = dirs(ctx).host_socket

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

    call_daemon(ctx, act)
    err_console.print("daemon stopped")

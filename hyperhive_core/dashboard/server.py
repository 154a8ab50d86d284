"""Serve the dashboard in the daemon's task group: bind, run uvicorn, the feeds and the sampler, stop.

`serve_dashboard` reports started only once the port listens (so "daemon ready" means the page
answers) and writes `<run dir>/dashboard.json` with the address and the login URL for
`hivectl dashboard`. uvicorn runs on the daemon's loop, never in a second process; we drive its
startup and shutdown ourselves (not `Server.serve`, which would take over SIGINT and SIGTERM from
the daemon). Shutdown ends every SSE stream, then lets uvicorn close its connections, bounded.
"""

import functools
import json
import logging
import os
import socket
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from anyio.abc import TaskStatus
from mcp.server.mcpserver import MCPServer

from hyperhive_core.approvals.repo import StateRepo
from hyperhive_core.config import HiveConfig
from hyperhive_core.dashboard.activity import Activity
from hyperhive_core.dashboard.address import Address
from hyperhive_core.dashboard.app import Context, build_app, event_row_entry, message_fetch
from hyperhive_core.dashboard.feeds import EventFeeds, MessageFeed
from hyperhive_core.dashboard.queries import HiveReader
from hyperhive_core.dashboard.security import Guard, allowed_hosts, check_exposure, load_credentials
from hyperhive_core.dashboard.stats import STATS_FILE, Sampler, StatsStore
from hyperhive_core.errors import ConfigError
from hyperhive_core.hive import Hive

logger = logging.getLogger(__name__)

# uvicorn's connections beyond this get 503 (SSE streams have their own, lower bound).
MAX_CONNECTIONS = 256
# How long stopping waits for open connections to finish before cutting them.
SHUTDOWN_GRACE_S = 3.0


class _DroppedStreamsAreNews(logging.Filter):
    """uvicorn logs an error when an app returns before finishing its response; here that is only
    ever an SSE client cut off because it stopped reading: expected, and worth an info line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() == "ASGI callable returned without completing response.":
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _quiet_dropped_streams() -> None:
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DroppedStreamsAreNews) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(_DroppedStreamsAreNews())


def _bind(address: Address) -> socket.socket:
    try:
        family, kind, proto, _, where = socket.getaddrinfo(
            address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"the dashboard cannot listen on {address}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(where)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"the dashboard cannot listen on {address}: {exc.strerror or exc}; choose another address with "
            "`hivectl serve --dashboard HOST:PORT` (port 0 takes any free one), or run without it (--no-dashboard)"
        ) from exc
    return sock


def _write_info(path: Path, url: str, login: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w") as out:
        json.dump({"url": url, "login": login, "pid": os.getpid()}, out)


@asynccontextmanager
async def open_dashboard(config: HiveConfig, hive: Hive, operator: MCPServer[Any]) -> AsyncGenerator[None]:
    """Serve the dashboard while the block runs; it listens on entry and has stopped on exit.

    Raises:
        ConfigError: as `serve_dashboard`.
    """
    async with anyio.create_task_group() as tg:
        await tg.start(functools.partial(serve_dashboard, config, hive, operator))
        try:
            yield
        finally:
            tg.cancel_scope.cancel()


async def serve_dashboard(
    config: HiveConfig,
    hive: Hive,
    operator: MCPServer[Any],
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the dashboard until cancelled.

    Raises:
        ConfigError: the address cannot be used (in use, off loopback without a token) or the token
            cannot be read or kept.
    """
    address = config.dashboard_address
    if address is None:
        raise RuntimeError("serve_dashboard() needs config.dashboard")
    check_exposure(address, config)
    credentials = await anyio.to_thread.run_sync(load_credentials, config)
    sock = _bind(address)
    port: int = sock.getsockname()[1]
    # The store's own engine: SQLite's file or the shared PostgreSQL database, read the same way.
    reader = HiveReader(hive.broker.store.engine)
    try:
        stats = await anyio.to_thread.run_sync(StatsStore, config.state_dir / STATS_FILE)
    except BaseException:
        sock.close()
        raise
    stop = anyio.Event()
    info = config.dashboard_info
    try:
        async with anyio.create_task_group() as tg:
            activity = Activity(reader)
            context = Context(
                hive=hive,
                operator=operator,
                # Its own instance: the history only reads (git needs no lock for that).
                repo=StateRepo(config.state_repo, git=config.git),
                reader=reader,
                activity=activity,
                stats=stats,
                messages=MessageFeed(
                    hive.broker, message_fetch(reader), functools.partial(reader.run, reader.last_message_id)
                ),
                events=EventFeeds(
                    tg, hive.events, functools.partial(reader.run, reader.last_event_id), event_row_entry
                ),
                csrf=credentials.csrf,
                stop=stop,
            )
            guarded = Guard(
                build_app(context),
                credentials=credentials,
                hosts=allowed_hosts(address, port, config.dashboard_hosts),
                cookie=f"hyperhive-{port}",
            )
            server = uvicorn.Server(
                uvicorn.Config(
                    guarded,
                    http="h11",
                    ws="none",
                    lifespan="off",
                    log_config=None,
                    access_log=False,
                    server_header=False,
                    date_header=False,
                    limit_concurrency=MAX_CONNECTIONS,
                    timeout_graceful_shutdown=int(SHUTDOWN_GRACE_S),
                )
            )
            server.config.load()
            _quiet_dropped_streams()
            server.lifespan = server.config.lifespan_class(server.config)
            await server.startup(sockets=[sock])
            try:
                tg.start_soon(context.messages.run)
                sampler = Sampler(hive, activity, stats, every_s=config.dashboard_sample_s)
                # A first sample before "ready": the stats page never opens empty.
                await sampler.try_sample()
                tg.start_soon(sampler.run)
                shown = address if not address.unspecified else Address("127.0.0.1", port)
                url = f"http://{shown.netloc(port)}/"
                await anyio.to_thread.run_sync(_write_info, info, url, f"{url}?token={credentials.token}")
                logger.info("dashboard on %s (hivectl dashboard prints the address with its token)", url)
                task_status.started()
                await anyio.sleep_forever()
            finally:
                # Every SSE stream ends first (its feed closes), then uvicorn closes what is left; bounded.
                context.messages.close()
                context.events.close()
                stop.set()
                with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_GRACE_S + 1):
                    await server.shutdown(sockets=[sock])
                tg.cancel_scope.cancel()
    finally:
        sock.close()
        info.unlink(missing_ok=True)
        stats.close()

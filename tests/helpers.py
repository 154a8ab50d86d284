"""Helpers shared by the tests: configs in short temp dirs, stand-in agent commands, daemon processes."""

import json
import os
import shutil
import signal
import sys
from collections.abc import AsyncGenerator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import ClientSession, StdioServerParameters, stdio_client

from hyperhive_core.client import HiveClient
from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import Daemon
from hyperhive_core.lifecycle.local import LocalBackend

# A real process that idles until the daemon stops it: for tests that drive an agent's socket
# themselves and want no turn loop consuming its messages.
IDLE_AGENT = ("sleep", "infinity")

REPO = Path(__file__).resolve().parents[1]
# A bound, not a wait: a daemon is ready in about a second, but a PostgreSQL daemon's start (its pool,
# migrations, the state repo's fetch) overran 20 s on a machine loaded by parallel suites.
READY_TIMEOUT_S = 60.0

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")


def hive_config(root: Path, **overrides: object) -> HiveConfig:
    """A config whose run and state dirs live under `root` (a short temp dir); no dashboard unless
    asked for (`dashboard="127.0.0.1:0"`: any free port)."""
    values: dict[str, object] = {"run_dir": root / "run", "state_dir": root / "state", "dashboard": None}
    values.update(overrides)
    return HiveConfig.model_validate(values)


async def start_daemon_process(config: HiveConfig) -> int:
    """Start a real `hivectl serve --detach` daemon; returns its pid once it listens."""
    await anyio.run_process(
        [
            sys.executable,
            "-m",
            "hyperhive_core",
            "--run-dir",
            str(config.run_dir),
            "--state-dir",
            str(config.state_dir),
            "serve",
            "--detach",
        ],
        check=True,
    )
    return int((config.run_dir / "daemon.pid").read_text())


async def kill_hard(pid: int) -> None:
    """SIGKILL a process that is not our child and wait until it is gone (a pidfd says so, no polling)."""
    pidfd = os.pidfd_open(pid)
    try:
        os.kill(pid, signal.SIGKILL)
        await anyio.wait_readable(pidfd)
    finally:
        os.close(pidfd)


async def agent_exit_code(daemon: Daemon, name: str, *, within_s: float = 10.0) -> int | None:
    """Wait (bounded) until a local-backend agent's process exits; its exit code: how probe agents report."""
    backend = daemon.hive.backend
    assert isinstance(backend, LocalBackend)
    with anyio.fail_after(within_s):
        return await backend.wait_exit(name)


async def echo_round_trip(operator: HiveClient, agent: str, body: str) -> None:
    """The operator sends `body` to an echo agent and receives its `echo: ` reply to that message."""
    sent = await operator.send(agent, body)
    got = (await operator.recv(timeout_s=15)).messages
    assert [(m.sender, m.body, m.reply_to) for m in got] == [(agent, f"echo: {body}", sent.id)]


@asynccontextmanager
async def daemon_process(
    config: HiveConfig, env: Mapping[str, str] | None = None, overrides: Mapping[str, object] | None = None
) -> AsyncGenerator[Process]:
    """A real daemon in its own process (`tests.daemon_main`: idle agents, no guard in the way),
    yielded once it listens; killed with -9 if still alive at exit. `env` adds to the environment,
    `overrides` to the daemon's config."""
    process = await anyio.open_process(
        [
            sys.executable,
            "-m",
            "tests.daemon_main",
            str(config.run_dir),
            str(config.state_dir),
            json.dumps(dict(overrides or {}), default=str),
        ],
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    try:
        assert process.stdout is not None
        with anyio.fail_after(READY_TIMEOUT_S):
            line = await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 64)
        assert line == b"ready"
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        with anyio.CancelScope(shield=True):
            await process.wait()
            await process.aclose()


class StderrPipe:
    """A pipe to hand a child process as its stderr, read back line by line."""

    def __init__(self) -> None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        self._read_fd = read_fd
        self._buffer = b""
        self.errlog = open(write_fd, "w")  # closed in close(); the child keeps its own copy

    async def until(self, needle: str) -> str:
        """Skip lines until one contains `needle`, and return it; raises `anyio.EndOfStream` at EOF."""
        while True:
            while b"\n" in self._buffer:
                line, _, self._buffer = self._buffer.partition(b"\n")
                if needle in (text := line.decode()):
                    return text
            await anyio.wait_readable(self._read_fd)
            data = os.read(self._read_fd, 64 * 1024)
            if not data:
                raise anyio.EndOfStream
            self._buffer += data

    def close(self) -> None:
        self.errlog.close()
        os.close(self._read_fd)


@asynccontextmanager
async def bridged_session(socket: Path) -> AsyncGenerator[tuple[ClientSession, StderrPipe]]:
    """An initialized SDK session through a real `hive-agent mcp` bridge, and the bridge's stderr."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "hyperhive_agent", "mcp", "--socket", str(socket)], cwd=REPO
    )
    stderr = StderrPipe()
    try:
        async with stdio_client(params, errlog=stderr.errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session, stderr
    finally:
        stderr.close()

"""Helpers shared by the tests: configs in short temp dirs and stand-in agent commands."""

import os
import shutil
import signal
import sys
from pathlib import Path

import anyio
import pytest

from hyperhive_core.client import HiveClient
from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import Daemon
from hyperhive_core.lifecycle.local import LocalBackend

# A real process that idles until the daemon stops it: for tests that drive an agent's socket
# themselves and want no turn loop consuming its messages.
IDLE_AGENT = ("sleep", "infinity")

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")


def hive_config(root: Path, **overrides: object) -> HiveConfig:
    """A config whose run and state dirs live under `root` (a short temp dir)."""
    values: dict[str, object] = {"run_dir": root / "run", "state_dir": root / "state"}
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

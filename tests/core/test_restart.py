"""Daemon restarts with live sessions: claude's bridge and the agents' turn loops carry on.

The daemon is real (`running_daemon`, stopped and started again with the same config), and so
are the sockets, the `hive-agent mcp` bridge and the turn loop; the SDK's `ClientSession` over
`stdio_client` stands in for claude.
"""

import logging
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest
from anyio.abc import TaskStatus
from mcp import ClientSession

from hyperhive_core.client import open_hive_client
from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import running_daemon
from tests.agent._process import running_agent
from tests.helpers import IDLE_AGENT, bridged_session, echo_round_trip, hive_config, needs_bwrap

logger = logging.getLogger(__name__)

BACK = "the hive daemon is back"


class RestartableDaemon:
    """A daemon run in its own task, so it can stop and start again under sessions opened meanwhile."""

    def __init__(self, config: HiveConfig, tg: anyio.abc.TaskGroup) -> None:
        self.config = config
        self._tg = tg
        self._stop = anyio.Event()
        self._stopped = anyio.Event()

    async def start(self) -> None:
        """Start a daemon; returns once it is ready (its sockets listen)."""
        self._stop = anyio.Event()
        self._stopped = anyio.Event()
        await self._tg.start(self._run)

    async def stop(self) -> None:
        """Stop the daemon; returns once it is gone, sessions closed and sockets removed."""
        self._stop.set()
        await self._stopped.wait()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def _run(self, *, task_status: TaskStatus[None]) -> None:
        try:
            async with running_daemon(self.config):
                task_status.started()
                await self._stop.wait()
        finally:
            self._stopped.set()


@asynccontextmanager
async def restartable_daemon(config: HiveConfig) -> AsyncGenerator[RestartableDaemon]:
    async with anyio.create_task_group() as tg:
        daemon = RestartableDaemon(config, tg)
        await daemon.start()
        try:
            yield daemon
        finally:
            await daemon.stop()


async def whoami(session: ClientSession) -> object:
    result = await session.call_tool("whoami", {})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content["name"]


async def test_a_claude_session_carries_on_across_a_daemon_restart(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, sandbox="none", agent_command=IDLE_AGENT)
    with anyio.fail_after(30):
        async with restartable_daemon(config) as daemon:
            async with open_hive_client(config.host_socket) as operator:
                await operator.spawn("alice")
            async with bridged_session(config.agent_socket("alice")) as (session, stderr):
                tools = await session.list_tools()
                assert {"send", "recv", "whoami"} <= {tool.name for tool in tools.tools}
                assert await whoami(session) == "alice"

                await daemon.restart()
                # the bridge says when it has replayed initialize to the new daemon
                await stderr.until(BACK)

                # the same session: the new daemon serves it because the bridge replayed initialize
                assert await whoami(session) == "alice"
                sent = await session.call_tool("send", {"to": "operator", "body": "still here"})
                assert not sent.is_error, sent.content
            async with open_hive_client(config.host_socket) as operator:
                got = (await operator.recv(timeout_s=5)).messages
                assert [(m.sender, m.body) for m in got] == [("alice", "still here")]


async def test_a_read_in_flight_across_a_restart_is_sent_again_and_answered(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, sandbox="none", agent_command=IDLE_AGENT)
    with anyio.fail_after(30):
        async with restartable_daemon(config) as daemon:
            async with open_hive_client(config.host_socket) as operator:
                await operator.spawn("alice")
            async with bridged_session(config.agent_socket("alice")) as (session, stderr):
                await session.list_tools()
                answers: list[list[str]] = []

                async def long_recv() -> None:
                    result = await session.call_tool("recv", {"timeout_s": 30})
                    assert not result.is_error, result.content
                    assert result.structured_content is not None
                    answers.append([m["body"] for m in result.structured_content["messages"]])

                async with anyio.create_task_group() as tg:
                    tg.start_soon(long_recv)
                    # recv's request is on its way first; once whoami is answered the daemon has read it
                    await anyio.wait_all_tasks_blocked()
                    assert await whoami(session) == "alice"
                    await daemon.restart()
                    await stderr.until(BACK)
                    # the bridge sent the recv again to the new daemon: a message now answers it
                    async with open_hive_client(config.host_socket) as operator:
                        await operator.send("alice", "after the restart")
                assert answers == [["after the restart"]]
                assert await whoami(session) == "alice"


async def test_a_turn_loop_that_outlives_the_daemon_resumes_after_a_restart(short_tmpdir: Path) -> None:
    # The daemon's own alice idles; the turn loop is ours, so it survives the daemon like a container does.
    config = hive_config(short_tmpdir, sandbox="none", agent_command=IDLE_AGENT)
    work = short_tmpdir / "work"
    work.mkdir()
    async with restartable_daemon(config) as daemon:
        async with open_hive_client(config.host_socket) as operator:
            await operator.spawn("alice")
        async with running_agent(
            "serve", "--driver", "echo", "--socket", str(config.agent_socket("alice")), "--work-dir", str(work)
        ):
            with anyio.fail_after(10):
                async with open_hive_client(config.host_socket) as operator:
                    await echo_round_trip(operator, "alice", "before")
            # the loop is back in recv; take the daemon away under it
            await daemon.restart()
            ready = time.monotonic()
            with anyio.fail_after(10):
                async with open_hive_client(config.host_socket) as operator:
                    await echo_round_trip(operator, "alice", "after")
            elapsed = time.monotonic() - ready
    logger.info("the turn loop answered %.3f s after the restarted daemon was ready", elapsed)


@pytest.mark.containers
@needs_bwrap
async def test_echo_agents_in_bubblewrap_answer_after_a_daemon_restart(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, sandbox="bwrap")
    async with restartable_daemon(config) as daemon:
        with anyio.fail_after(30):
            async with open_hive_client(config.host_socket) as operator:
                await operator.spawn("alice")
                await operator.spawn("bob")
                await echo_round_trip(operator, "alice", "before")
                await echo_round_trip(operator, "bob", "before")
        # both wait in recv now
        await daemon.restart()
        ready = time.monotonic()
        with anyio.fail_after(10):
            async with open_hive_client(config.host_socket) as operator:
                await echo_round_trip(operator, "alice", "after")
                elapsed = time.monotonic() - ready
                await echo_round_trip(operator, "bob", "after")
    logger.info("alice answered %.3f s after the restarted daemon was ready", elapsed)

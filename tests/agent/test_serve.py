"""`hive-agent serve` with the echo driver, as a real child process against an in-memory hive."""

import os
import signal
import sys
from pathlib import Path

import anyio

from tests.agent._process import REPO_ROOT, LineReader, agent_command, running_agent
from tests.agent._server import FakeHive, Sent, serve_unix


async def test_the_echo_agent_replies_to_the_sender(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "mcp.sock"
    async with (
        FakeHive() as hive,
        serve_unix(hive.server, sock),
        running_agent("serve", "--driver", "echo", "--socket", str(sock)),
    ):
        message_id = hive.put("operator", "hi")
        with anyio.fail_after(5):
            assert await hive.sent.receive() == Sent(to="operator", body="echo: hi", reply_to=message_id)


async def test_the_echo_agent_never_answers_an_echo(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "mcp.sock"
    async with (
        FakeHive() as hive,
        serve_unix(hive.server, sock),
        running_agent("serve", "--driver", "echo", "--socket", str(sock)),
    ):
        hive.put("bob", "echo: x")
        ping_id = hive.put("bob", "ping")
        with anyio.fail_after(5):
            # messages are answered in order, so an echo of "echo: x" would arrive first
            assert await hive.sent.receive() == Sent(to="bob", body="echo: ping", reply_to=ping_id)


async def test_a_refused_send_is_logged_and_the_loop_carries_on(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "mcp.sock"
    async with (
        FakeHive() as hive,
        serve_unix(hive.server, sock),
        running_agent("serve", "--driver", "echo", "--socket", str(sock)) as agent,
    ):
        hive.put("ghost", "boo")
        with anyio.fail_after(5):
            assert "ghost" in await LineReader(agent.stderr).until("refused")
            later_id = hive.put("operator", "still there?")
            assert await hive.sent.receive() == Sent(to="operator", body="echo: still there?", reply_to=later_id)


async def test_sigterm_during_a_blocked_recv_exits_0_promptly(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "mcp.sock"
    async with (
        FakeHive() as hive,
        serve_unix(hive.server, sock),
        running_agent("serve", "--driver", "echo", "--socket", str(sock), "--recv-timeout", "30") as agent,
    ):
        with anyio.fail_after(5):
            await hive.recv_waiting.wait()
            agent.send_signal(signal.SIGTERM)
            assert await agent.wait() == 0


async def test_the_agent_reconnects_after_the_hive_drops_it(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "mcp.sock"
    async with (
        FakeHive() as hive,
        serve_unix(hive.server, sock) as server,
        running_agent("serve", "--driver", "echo", "--socket", str(sock)),
    ):
        with anyio.fail_after(5):
            await server.wait_connected(1)
            await hive.recv_waiting.wait()
            server.drop_connections()
            await server.wait_connected(2)
            message_id = hive.put("operator", "back?")
            assert await hive.sent.receive() == Sent(to="operator", body="echo: back?", reply_to=message_id)


async def test_the_agent_waits_for_a_socket_that_appears_later(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "mcp.sock"
    async with FakeHive() as hive, running_agent("serve", "--driver", "echo", "--socket", str(sock)) as agent:
        with anyio.fail_after(5):
            assert str(sock) in await LineReader(agent.stderr).until("retrying")
            async with serve_unix(hive.server, sock):
                message_id = hive.put("operator", "hello")
                assert await hive.sent.receive() == Sent(to="operator", body="echo: hello", reply_to=message_id)


async def test_an_agent_whose_parent_is_already_gone_exits_at_once(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "mcp.sock"
    # our pid is the agent's parent; any other pid means "the parent that started me has died"
    not_the_parent = str(os.getppid())
    async with running_agent(
        "serve", "--driver", "echo", "--socket", str(sock), env={"HIVE_PARENT_PID": not_the_parent}
    ) as agent:
        with anyio.fail_after(5):
            assert await agent.wait() == 0


async def test_the_agent_dies_when_its_parent_is_killed(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "mcp.sock"
    # the middle process starts the agent the way the daemon does, then gets SIGKILLed
    middle = (
        "import os, subprocess, sys; "
        "env = {**os.environ, 'HIVE_PARENT_PID': str(os.getpid())}; "
        f"subprocess.run({agent_command('serve', '--socket', str(sock))!r}, env=env)"
    )
    async with FakeHive() as hive, serve_unix(hive.server, sock):
        async with await anyio.open_process([sys.executable, "-c", middle], cwd=REPO_ROOT) as parent:
            with anyio.fail_after(5):
                await hive.recv_waiting.wait()
                parent.kill()
                # the agent shares the middle process's stderr: EOF there means the agent is gone too
                stderr = await LineReader(parent.stderr).rest()
                await parent.wait()
    assert "got SIGTERM" in stderr

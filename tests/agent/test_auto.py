"""`--driver auto` (the default): claude when it is installed and logged in, else echo, said once."""

import signal
from pathlib import Path

import anyio

from tests.agent._claude import TURN_BOUND_S, ClaudeRig, events_until, make_rig
from tests.agent._process import LineReader, running_agent
from tests.agent._server import FakeHive, Sent, serve_unix


async def answer_once_and_stop(rig: ClaudeRig, env: dict[str, str], body: str) -> tuple[Sent, str, list[str]]:
    """Run `hive-agent serve` (auto), answer one message, stop it; its reply, stderr and driver events."""
    async with (
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket),
        running_agent("serve", env=env, cwd=rig.work_dir, inherit_env=False) as agent,
    ):
        hive.put("operator", body)
        with anyio.fail_after(TURN_BOUND_S):
            reply = await hive.sent.receive()
            events = await events_until(hive, "turn_end")
            agent.send_signal(signal.SIGTERM)
            stderr = await LineReader(agent.stderr).rest()
            assert await agent.wait() == 0
    drivers = [str(e["message"]) for e in events if e.get("subtype") == "driver"]
    return reply, stderr, drivers


async def test_auto_without_claude_on_path_uses_echo_and_says_why_in_one_line(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    rig.log_in()
    empty = short_tmpdir / "empty-path"
    empty.mkdir()
    reply, stderr, drivers = await answer_once_and_stop(rig, rig.env(path=str(empty)), "hi")
    assert reply.body == "echo: hi"
    [said] = [line for line in stderr.splitlines() if "driver" in line]
    assert said.endswith("driver auto: using echo (claude is not installed: no 'claude' on PATH)")
    assert drivers == ["driver auto: using echo (claude is not installed: no 'claude' on PATH)"]


async def test_auto_with_claude_installed_but_not_logged_in_uses_echo(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    reply, stderr, drivers = await answer_once_and_stop(rig, rig.env(), "hi")
    assert reply.body == "echo: hi"
    why = f"driver auto: using echo (claude is not logged in: no credentials in {rig.claude_dir})"
    assert [line for line in stderr.splitlines() if "driver" in line] == [f"hive-agent serve[alice]: INFO {why}"]
    assert drivers == [why]
    assert rig.runs() == []


async def test_auto_with_credentials_uses_claude(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    rig.log_in()
    reply, stderr, drivers = await answer_once_and_stop(rig, rig.env(), "hi")
    assert reply.body == "claude: hi"
    [said] = drivers
    assert said.startswith("driver auto: using claude (")
    assert f"logged in with the credentials in {rig.claude_dir}" in said
    assert said in stderr


async def test_with_the_echo_guard_off_echo_answers_echoes(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    env = rig.env(HIVE_DRIVER="echo", HIVE_ECHO_GUARD="0")
    async with (
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket),
        running_agent("serve", env=env, cwd=rig.work_dir, inherit_env=False) as agent,
    ):
        message_id = hive.put("bob", "echo: ping")
        with anyio.fail_after(TURN_BOUND_S):
            assert await hive.sent.receive() == Sent("bob", "echo: echo: ping", message_id)
            assert "for tests only" in await LineReader(agent.stderr).until("echo guard")

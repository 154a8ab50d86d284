"""`hive-mind serve`: the manager's turn loop, as a real process, with the real claude and the fake API answering."""

import signal
from pathlib import Path

import anyio

from hyperhive_mind.prompt import MANAGER_PROMPT
from tests.agent._claude import TURN_BOUND_S, events_until, make_rig, needs_claude
from tests.agent._process import LineReader, running_agent
from tests.agent._server import FakeHive, Sent, serve_unix
from tests.fakes.messages_api import serve_messages_api


def test_the_manager_prompt_names_its_tools_and_its_duties() -> None:
    for tool in ("spawn", "kill", "rebuild", "list_agents", "agent_status", "send", "peers"):
        assert f"{tool}(" in MANAGER_PROMPT
    for duty in ("Split work", "bounded", "Report to the operator", "approval"):
        assert duty in MANAGER_PROMPT


@needs_claude
async def test_hive_mind_serve_answers_with_the_manager_prompt_and_exits_0_on_sigterm(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    env = rig.env(HIVE_AGENT_NAME="hm1nd", HIVE_ROLE="Keep the hive small.")
    async with (
        serve_messages_api() as api,
        FakeHive("hm1nd") as hive,
        serve_unix(hive.server, rig.socket),
        running_agent("serve", env=env, cwd=rig.work_dir, inherit_env=False, module="hyperhive_mind") as mind,
    ):
        rig.use_api(api)
        message_id = hive.put("operator", "build me a web scraper")
        with anyio.fail_after(TURN_BOUND_S):
            assert await hive.sent.receive() == Sent("operator", "claude: build me a web scraper", message_id)
            await events_until(hive, "turn_end")
            mind.send_signal(signal.SIGTERM)
            stderr = await LineReader(mind.stderr).rest()
            assert await mind.wait() == 0
    prompt = api.model_requests()[0].prompt()
    assert prompt.startswith("You are hm1nd")
    assert "spawn(name)" in prompt
    assert "Keep the hive small." in prompt
    assert "hive-mind serve[hm1nd]: INFO driver auto: using claude" in stderr


async def test_hive_mind_without_a_name_is_hm1nd(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    env = rig.env(HIVE_DRIVER="echo")
    del env["HIVE_AGENT_NAME"]
    async with (
        FakeHive("hm1nd") as hive,
        serve_unix(hive.server, rig.socket),
        running_agent("serve", env=env, cwd=rig.work_dir, inherit_env=False, module="hyperhive_mind") as mind,
    ):
        message_id = hive.put("operator", "status?")
        with anyio.fail_after(TURN_BOUND_S):
            assert await hive.sent.receive() == Sent("operator", "echo: status?", message_id)
            assert "hive-mind serve[hm1nd]:" in await LineReader(mind.stderr).line()

"""`--driver auto` (the default): claude for every login claude accepts, else echo, said once."""

import json
import signal
from pathlib import Path

import anyio
import pytest

from hyperhive_agent.login import find_login, login_secrets, login_signature
from tests.agent._claude import TURN_BOUND_S, ClaudeRig, events_until, make_rig, needs_claude
from tests.agent._process import LineReader, running_agent
from tests.agent._server import FakeHive, Sent, serve_unix
from tests.fakes.messages_api import serve_messages_api

KEY = "sk-ant-api03-0123456789abcdef"


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
    empty = short_tmpdir / "empty-path"
    empty.mkdir()
    reply, stderr, drivers = await answer_once_and_stop(rig, rig.env(path=str(empty)), "hi")
    assert reply.body == "echo: hi"
    [said] = [line for line in stderr.splitlines() if "driver" in line]
    assert said.endswith("driver auto: using echo (claude is not installed: no 'claude' on PATH)")
    assert drivers == ["driver auto: using echo (claude is not installed: no 'claude' on PATH)"]


@needs_claude
async def test_auto_with_claude_installed_but_not_logged_in_uses_echo(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    reply, stderr, drivers = await answer_once_and_stop(rig, rig.env(), "hi")
    assert reply.body == "echo: hi"
    why = f"driver auto: using echo (claude is not logged in: no credentials in {rig.claude_dir})"
    assert [line for line in stderr.splitlines() if "driver" in line] == [f"hive-agent serve[alice]: INFO {why}"]
    assert drivers == [why]


@needs_claude
async def test_auto_with_a_key_in_claudes_settings_uses_claude(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    async with serve_messages_api() as api:
        rig.use_api(api)
        reply, stderr, drivers = await answer_once_and_stop(rig, rig.env(), "hi")
    assert reply.body == "claude: hi"
    [said] = drivers
    assert said.startswith("driver auto: using claude (")
    assert f"logged in with ANTHROPIC_API_KEY in {rig.claude_dir / 'settings.json'}" in said
    assert said in stderr


LOGINS: list[tuple[dict[str, object], dict[str, str], str]] = [
    ({".credentials.json": {"claudeAiOauth": {"accessToken": KEY}}}, {}, "the credentials in {dir}"),
    ({"settings.json": {"apiKeyHelper": "/usr/local/bin/vault-key"}}, {}, "apiKeyHelper in {dir}/settings.json"),
    ({"settings.json": {"env": {"ANTHROPIC_API_KEY": KEY}}}, {}, "ANTHROPIC_API_KEY in {dir}/settings.json"),
    ({}, {"ANTHROPIC_API_KEY": KEY}, "ANTHROPIC_API_KEY from the environment"),
    ({}, {"ANTHROPIC_AUTH_TOKEN": KEY}, "ANTHROPIC_AUTH_TOKEN from the environment"),
    ({}, {"CLAUDE_CODE_OAUTH_TOKEN": KEY}, "CLAUDE_CODE_OAUTH_TOKEN from the environment"),
    (
        {"settings.json": {"env": {"ANTHROPIC_BASE_URL": "https://llm.example.internal"}}},
        {},
        "a gateway (ANTHROPIC_BASE_URL in {dir}/settings.json)",
    ),
    ({}, {"CLAUDE_CODE_USE_BEDROCK": "1"}, "CLAUDE_CODE_USE_BEDROCK from the environment"),
    (
        {"settings.json": {"env": {"CLAUDE_CODE_USE_VERTEX": "true"}}},
        {},
        "CLAUDE_CODE_USE_VERTEX in {dir}/settings.json",
    ),
    ({".claude.json": {"primaryApiKey": KEY}}, {}, "an API key in {dir}/.claude.json"),
]


@pytest.mark.parametrize(
    ("files", "env", "how"),
    LOGINS,
    ids=["oauth", "key-helper", "settings-key", "env-key", "auth-token", "oauth-token", "gateway", "bedrock",
         "vertex", "claude-json"],
)  # fmt: skip
def test_every_login_claude_accepts_is_found_and_named_without_its_secret(
    tmp_path: Path, files: dict[str, object], env: dict[str, str], how: str
) -> None:
    for name, content in files.items():
        (tmp_path / name).write_text(json.dumps(content))
    login = find_login(tmp_path, env)
    assert login is not None
    assert login.how == how.format(dir=tmp_path)
    assert KEY not in login.how


def test_no_login_is_none_and_a_switched_off_provider_is_no_login(tmp_path: Path) -> None:
    assert find_login(tmp_path, {}) is None
    assert find_login(tmp_path, {"CLAUDE_CODE_USE_BEDROCK": "0"}) is None
    (tmp_path / "settings.json").write_text("{not json")
    assert find_login(tmp_path, {}) is None


def test_login_secrets_come_from_every_place_a_key_can_be_and_the_signature_follows_the_files(
    tmp_path: Path,
) -> None:
    before = login_signature(tmp_path)
    (tmp_path / "settings.json").write_text(json.dumps({"env": {"ANTHROPIC_AUTH_TOKEN": "tok-" + KEY}}))
    (tmp_path / ".credentials.json").write_text(json.dumps({"claudeAiOauth": {"refreshToken": "ref-" + KEY}}))
    assert login_signature(tmp_path) != before
    secrets = login_secrets(tmp_path, {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": "https://gw"})
    assert set(secrets) == {KEY, "tok-" + KEY, "ref-" + KEY}


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

"""Principals: whatever JSON-RPC alice crafts on her socket, she stays alice, reads only her own
messages and changes nothing in the hive; the operator's socket is out of a sandbox's reach; the
hive's files are its user's alone.
"""

import logging
import os
import stat
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from hyperhive_core.client import HiveClient, open_hive_client, open_session
from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import Daemon, running_daemon
from hyperhive_core.mcp.tools import OPERATOR_TOOLS, PRIVILEGED_TOOLS
from hyperhive_core.states import AgentState
from tests.core._rawrpc import INITIALIZE, JsonObject, RawConnection, open_raw, tool_error_text
from tests.helpers import IDLE_AGENT, agent_exit_code, hive_config, kill_hard, needs_bwrap, start_daemon_process

IDENTITY_CLAIMS: JsonObject = {
    "sender": "operator",
    "from": "bob",
    "agent": "bob",
    "name": "hm1nd",
    "principal": "operator",
}


@dataclass(frozen=True, slots=True)
class Hive:
    daemon: Daemon
    config: HiveConfig
    operator: HiveClient


@asynccontextmanager
async def hive_of_alice_and_bob(root: Path) -> AsyncGenerator[Hive]:
    """A hive where the operator has left bob a message; alice attacks from her socket."""
    config = hive_config(root, agent_command=IDLE_AGENT)
    async with running_daemon(config) as daemon, open_hive_client(config.host_socket) as operator:
        await operator.spawn("alice")
        await operator.spawn("bob")
        await operator.send("bob", "secret for bob")
        yield Hive(daemon, config, operator)


@asynccontextmanager
async def alice_raw(hive: Hive) -> AsyncGenerator[RawConnection]:
    async with open_raw(hive.config.agent_socket("alice")) as raw:
        await raw.initialize()
        yield raw


async def assert_bob_untouched_and_hive_unchanged(hive: Hive) -> None:
    """Bob's message is still queued for him; only alice and bob run; every message alice stored is from alice."""
    operator = hive.operator
    bob = await operator.inbox("bob")
    assert (bob.queued, [m.body for m in bob.messages]) == (1, ["secret for bob"])
    assert [m.sender for m in bob.messages] == ["operator"]
    agents = await operator.list_agents()
    assert [(a.name, a.state) for a in agents] == [("alice", AgentState.RUNNING), ("bob", AgentState.RUNNING)]
    for recipient in ("operator", "alice", "bob"):
        for message in (await operator.inbox(recipient)).messages:
            assert message.sender in ("alice", "operator"), message
            if message.body.startswith("from alice"):
                assert message.sender == "alice", message


def structured(response: JsonObject) -> JsonObject:
    assert "result" in response, response
    result: JsonObject = response["result"]
    assert not result.get("isError"), response
    content: JsonObject = result["structuredContent"]
    return content


async def test_identity_claims_in_send_arguments_and_meta_still_send_as_alice(short_tmpdir: Path) -> None:
    with anyio.fail_after(20):
        async with hive_of_alice_and_bob(short_tmpdir) as hive, alice_raw(hive) as raw:
            for to in ("operator", "alice"):
                body = f"from alice to {to}"
                arguments = {"to": to, "body": body, **IDENTITY_CLAIMS, "_meta": IDENTITY_CLAIMS}
                params = {"name": "send", "arguments": arguments, "_meta": IDENTITY_CLAIMS}
                structured(await raw.request("tools/call", params))
                [stored] = [m for m in (await hive.operator.inbox(to)).messages if m.body == body]
                assert stored.sender == "alice"
            await assert_bob_untouched_and_hive_unchanged(hive)


async def test_alice_cannot_read_or_take_bobs_messages_whatever_she_names(short_tmpdir: Path) -> None:
    with anyio.fail_after(20):
        async with hive_of_alice_and_bob(short_tmpdir) as hive, alice_raw(hive) as raw:
            for claims in ({"agent": "bob"}, {"name": "bob"}, {"recipient": "bob", "inbox": "bob"}, IDENTITY_CLAIMS):
                inbox = structured(await raw.call_tool("inbox", {**claims, "limit": 100}))
                assert (inbox["agent"], inbox["queued"], inbox["messages"]) == ("alice", 0, [])
                got = structured(await raw.call_tool("recv", {**claims, "timeout_s": 0, "max": 100}))
                assert got["messages"] == []
                assert structured(await raw.call_tool("whoami", claims)) == {"name": "alice", "role": "agent"}
            await assert_bob_untouched_and_hive_unchanged(hive)


async def test_alice_cannot_call_any_manager_or_operator_tool(short_tmpdir: Path) -> None:
    arguments: JsonObject = {"name": "bob", "role": "x", "driver": "echo"}
    with anyio.fail_after(30):
        async with hive_of_alice_and_bob(short_tmpdir) as hive, alice_raw(hive) as raw:
            for tool in sorted(PRIVILEGED_TOOLS | OPERATOR_TOOLS | {"approve", "deny", "inbox_of", "send_as"}):
                for args in (arguments, {"name": "alice"}, {"name": "hm1nd"}, {}):
                    reply = await raw.call_tool(tool, args)
                    assert "alice may not" in tool_error_text(reply) or "Unknown tool" in tool_error_text(reply), reply
                    assert "Traceback" not in tool_error_text(reply)
            await assert_bob_untouched_and_hive_unchanged(hive)
            assert not hive.config.agent_socket("hm1nd").exists()
        # The daemon was not shut down: it served until the test ended it.


@pytest.mark.parametrize(
    "name",
    [
        "hm1nd/spawn",
        "operator/shutdown",
        "../kill",
        "tools/spawn",
        "spawn/",
        "\u0455pawn",  # Cyrillic dze, looks like s
        "ki\u04cfl",  # Cyrillic palochka, looks like l
        "spawn\u200b",
        "SPAWN",
        " shutdown",
        "kill\x00",
        "agent_logs\n",
        "spawn_manager;shutdown",
        "",
    ],
    ids=[
        "manager-prefix",
        "operator-prefix",
        "dot-dot",
        "tools-prefix",
        "trailing-slash",
        "cyrillic-s",
        "cyrillic-l",
        "zero-width-space",
        "upper-case",
        "leading-space",
        "nul",
        "newline",
        "semicolon",
        "empty",
    ],
)
async def test_tool_names_that_look_like_privileged_ones_reach_nothing(short_tmpdir: Path, name: str) -> None:
    with anyio.fail_after(20):
        async with hive_of_alice_and_bob(short_tmpdir) as hive, alice_raw(hive) as raw:
            reply = await raw.call_tool(name, {"name": "bob"})
            assert "error" in reply or reply["result"].get("isError"), reply
            assert "Traceback" not in str(reply)
            await assert_bob_untouched_and_hive_unchanged(hive)


OTHER_METHODS: list[tuple[str, JsonObject]] = [
    ("resources/list", {}),
    ("resources/read", {"uri": "file:///etc/passwd"}),
    ("resources/templates/list", {}),
    ("resources/subscribe", {"uri": "hive://bob/inbox"}),
    ("prompts/list", {}),
    ("prompts/get", {"name": "inbox", "arguments": {"agent": "bob"}}),
    ("logging/setLevel", {"level": "debug"}),
    ("completion/complete", {"ref": {"type": "ref/prompt", "name": "x"}, "argument": {"name": "agent", "value": "b"}}),
    ("sampling/createMessage", {"messages": [], "maxTokens": 10}),
    ("elicitation/create", {"message": "who are you?", "requestedSchema": {"type": "object", "properties": {}}}),
    ("roots/list", {}),
    ("tasks/list", {}),
    ("tools/list", {"cursor": "bob"}),
    ("notifications/initialized", {}),
    ("shutdown", {}),
    ("spawn", {"name": "mallory"}),
    ("rpc.discover", {}),
]


async def test_other_json_rpc_methods_leak_nothing_and_change_nothing(short_tmpdir: Path) -> None:
    hyperhive_level = logging.getLogger("hyperhive_core").level
    root_level = logging.getLogger().level
    with anyio.fail_after(30):
        async with hive_of_alice_and_bob(short_tmpdir) as hive, alice_raw(hive) as raw:
            for method, params in OTHER_METHODS:
                reply = await raw.request(method, params)
                assert ("result" in reply) != ("error" in reply), reply
                assert "secret for bob" not in str(reply)
                assert "Traceback" not in str(reply)
                if method == "tools/list" and "result" in reply:
                    names = {t["name"] for t in reply["result"]["tools"]}
                    assert names.isdisjoint(PRIVILEGED_TOOLS | OPERATOR_TOOLS)
            assert structured(await raw.call_tool("whoami", {})) == {"name": "alice", "role": "agent"}
            await assert_bob_untouched_and_hive_unchanged(hive)
    assert (logging.getLogger("hyperhive_core").level, logging.getLogger().level) == (hyperhive_level, root_level)


async def test_initializing_again_as_someone_else_changes_no_identity(short_tmpdir: Path) -> None:
    with anyio.fail_after(20):
        async with hive_of_alice_and_bob(short_tmpdir) as hive, alice_raw(hive) as raw:
            for claimed in ("operator", "bob", "hm1nd"):
                again = {**INITIALIZE, "clientInfo": {"name": claimed, "version": "0"}, "_meta": IDENTITY_CLAIMS}
                reply = await raw.request("initialize", again)
                assert ("result" in reply) != ("error" in reply), reply
                await raw.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
                assert structured(await raw.call_tool("whoami", {})) == {"name": "alice", "role": "agent"}
                body = f"from alice after claiming {claimed}"
                structured(await raw.call_tool("send", {"to": "operator", "body": body}))
                [stored] = [m for m in (await hive.operator.inbox()).messages if m.body == body]
                assert stored.sender == "alice"
            await assert_bob_untouched_and_hive_unchanged(hive)


async def test_a_second_session_on_alices_socket_is_alice_too(short_tmpdir: Path) -> None:
    with anyio.fail_after(20):
        async with hive_of_alice_and_bob(short_tmpdir) as hive, open_session(hive.config.agent_socket("alice")) as sdk:
            result = await sdk.call_tool("send", {"to": "operator", "body": "from alice via the sdk", "sender": "bob"})
            assert not result.is_error
            [stored] = [m for m in (await hive.operator.inbox()).messages if m.body == "from alice via the sdk"]
            assert stored.sender == "alice"
            await assert_bob_untouched_and_hive_unchanged(hive)


# --- the operator's socket is out of a sandbox's reach --------------------------------------------

# Every agent of the hive runs this; bob idles, alice probes and exits with what she found:
# 7 = all as expected; 10+ = the first boundary that did not hold.
PROBE = r"""
import json, os, signal, socket, sys
if os.environ["HIVE_AGENT_NAME"] != "alice":
    signal.pause()
host_sock, bob_sock, run_dir = sys.argv[1:4]

def reaches(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()

if reaches(host_sock):
    sys.exit(10)
if reaches(bob_sock):
    sys.exit(11)
if os.path.exists(run_dir) and os.listdir(run_dir):
    sys.exit(12)
if os.listdir("/run/hive") != ["mcp.sock"]:
    sys.exit(13)
for fd in os.listdir("/proc/self/fd"):
    try:
        if int(fd) > 2 and os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
            sys.exit(14)
    except OSError:
        pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect("/run/hive/mcp.sock")
f = s.makefile("rwb")

def rpc(i, method, params):
    f.write(json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params}).encode() + b"\n")
    f.flush()
    return json.loads(f.readline())

info = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "operator", "version": "0"}}
rpc(1, "initialize", info)
f.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
f.flush()
who = rpc(2, "tools/call", {"name": "whoami", "arguments": {"name": "operator"}, "_meta": {"principal": "operator"}})
if who["result"]["structuredContent"] != {"name": "alice", "role": "agent"}:
    sys.exit(15)
if not rpc(3, "tools/call", {"name": "shutdown", "arguments": {}})["result"].get("isError"):
    sys.exit(16)
sys.exit(7)
"""


@pytest.mark.containers
@needs_bwrap
async def test_a_sandboxed_agent_cannot_reach_the_operators_socket_or_another_agents(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, sandbox="bwrap")
    command = (
        sys.executable,
        "-I",
        "-c",
        PROBE,
        str(config.host_socket),
        str(config.agent_socket("bob")),
        str(config.run_dir),
    )
    config = config.model_copy(update={"agent_command": command})
    with anyio.fail_after(30):
        async with running_daemon(config) as daemon, open_hive_client(config.host_socket) as operator:
            await operator.spawn("bob")
            await operator.spawn("alice")
            assert await agent_exit_code(daemon, "alice") == 7
            # The daemon still serves, bob still runs: the probe changed nothing.
            states = {a.name: a.state for a in await operator.list_agents()}
            assert states == {"alice": AgentState.FAILED, "bob": AgentState.RUNNING}


# --- the narrowest permissions that work ---------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


async def test_the_hives_dirs_sockets_and_database_are_its_users_alone(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        await operator.spawn("alice")
        await operator.send("alice", "make the database write its wal")
        private_dirs = [config.run_dir, config.run_dir / "agents", config.agent_socket_dir("alice"), config.state_dir]
        assert {str(p): mode(p) for p in private_dirs} == {str(p): 0o700 for p in private_dirs}
        db = config.broker_path
        private_files = [config.host_socket, config.agent_socket("alice"), db, *db.parent.glob(db.name + "-*")]
        assert len(private_files) >= 5, private_files
        assert {str(p): mode(p) for p in private_files} == {str(p): 0o600 for p in private_files}


async def test_a_daemon_tightens_dirs_and_a_database_left_open_by_an_earlier_run(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    for path in (config.run_dir, config.agent_socket_dir("alice"), config.state_dir):
        path.mkdir(parents=True, mode=0o755)
        path.chmod(0o755)
    config.broker_path.touch(0o644)
    config.broker_path.chmod(0o644)
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        await operator.spawn("alice")
        for path in (config.run_dir, config.agent_socket_dir("alice"), config.state_dir):
            assert mode(path) == 0o700, path
        assert mode(config.broker_path) == 0o600


async def test_a_daemon_process_keeps_what_it_and_its_agents_create_private_whatever_the_umask(
    short_tmpdir: Path,
) -> None:
    config = hive_config(short_tmpdir)
    previous = os.umask(0o022)
    try:
        with anyio.fail_after(60):
            pid = await start_daemon_process(config)
    finally:
        os.umask(previous)
    try:
        with anyio.fail_after(60):
            async with open_hive_client(config.host_socket) as operator:
                await operator.spawn("alice")
                agent_dir = config.agent_state_dir("alice")
                assert mode(agent_dir / "work") == 0o700
                assert mode(agent_dir / "agent.log") == 0o600
                assert mode(config.state_dir / "daemon.log") == 0o600
                assert mode(config.run_dir / "daemon.pid") & 0o077 == 0
                await operator.shutdown()
    finally:
        if await anyio.Path(f"/proc/{pid}").exists():
            await kill_hard(pid)

"""The claude turn rows: the real claude-code against the fake Messages API, through a real daemon.

For each way of running claude (one process per agent kept across turns, the default; a fresh
process per turn, as turns ran before) a daemon child spawns one claude agent in its sandbox and
the operator sends it messages one after another; the fake API's scripted model answers each with
one `send`. Per turn: message stored → claude's first API request; the end of the API answer that
made claude call `send` → the reply stored; model requests per turn. Then the resident memory of
the agent's process tree between turns (the turn loop, claude, its MCP bridge). Last, with claude
kept, working turns: the model runs a Bash command before it answers, and the time from the API
answer that called Bash to claude's next request (the command run in the sandbox, its output back)
is measured with the model requests such a turn takes.
"""

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from anyio.from_thread import BlockingPortal, start_blocking_portal

from benchmarks._rpc import LineClient, connect_socket
from tests.fakes.messages_api import (
    SEND,
    ApiRequest,
    MessagesApi,
    Reply,
    ToolUse,
    Turn,
    call,
    replying_model,
    say,
    send,
    serve_messages_api,
)

CLAUDE_BIN_DIR = Path(__file__).resolve().parent.parent / ".tools" / "node_modules" / ".bin"
TURN_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 60.0
AGENT = "bench"
# What a working turn's model runs: a shell, git, and a look at the work dir.
WORK_COMMAND = "git --version && ls -a"


@dataclass(frozen=True, slots=True)
class TurnTimes:
    """One measured turn, in seconds (and a count)."""

    to_first_request: float
    answer_to_stored: float
    model_requests: int


@dataclass(frozen=True, slots=True)
class ModeResult:
    """A way of running claude, measured."""

    mode: str
    # the session's first turn (claude starts in every mode), then the measured ones
    first: TurnTimes
    turns: list[TurnTimes]
    tree_rss_mb: float
    claude_rss_mb: float
    # (Bash call answered → claude's next request, model requests) of each working turn
    work: list[tuple[float, int]]


def claude_installed() -> bool:
    """Whether the pinned claude-code is in .tools (scripts/test installs it)."""
    return (CLAUDE_BIN_DIR / "claude").exists()


@contextmanager
def fake_api() -> Generator[tuple[MessagesApi, BlockingPortal]]:
    """The fake Messages API, served by an event loop in a thread while this one stays synchronous."""
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(serve_messages_api()) as api:
        yield api, portal


def measure_mode(
    root: Path,
    api: MessagesApi,
    portal: BlockingPortal,
    turns: int,
    mode: str,
    agent_env: list[str],
    work_turns: int = 0,
) -> ModeResult:
    """Spawn one claude agent in a fresh daemon and time `turns` turns (one more, first, is not timed),
    then `work_turns` working turns."""
    claude_dir = root / "claude"
    api.write_settings(claude_dir)
    with claude_daemon(root, claude_dir, agent_env) as run_dir, connect_socket(run_dir / "host.sock") as operator:
        operator.call("spawn", {"name": AGENT, "driver": "claude"})
        # the first turn starts claude in every mode (and warms the page cache): reported apart
        first = run_turn(operator, api, portal, "warm up")
        measured = [run_turn(operator, api, portal, f"turn {i}") for i in range(turns)]
        pid = operator.call("agent_status", {"name": AGENT})["pid"]
        tree, claude = tree_rss_mb(int(pid))
        work: list[tuple[float, int]] = []
        if work_turns:
            api.model = working_model
            try:
                work = [run_work_turn(operator, api, portal, f"work {i}") for i in range(work_turns)]
            finally:
                api.model = replying_model
    return ModeResult(mode, first, measured, tree, claude, work)


def working_model(request: ApiRequest) -> Reply:
    """Each hive message: run WORK_COMMAND with Bash, then answer with what it printed, then end the turn."""
    last = [use.get("name") for use in request.last_tool_uses()]
    if request.answers_tools and last == ["Bash"]:
        [(sender, message_id)] = _prompted(request)
        return call(send(sender, f"ran it: {json.dumps(request.tool_results(-1))[:200]}", message_id))
    if request.answers_tools:
        return say("Done.")
    if request.hive_messages():
        return call(ToolUse("Bash", {"command": WORK_COMMAND, "description": "look around"}))
    return say("Nothing to answer.")


def _prompted(request: ApiRequest) -> list[tuple[str, int]]:
    """The (sender, id) of the hive messages of the turn's prompt."""
    return [(m.sender, m.id) for m in request.hive_messages()]


def run_work_turn(operator: LineClient, api: MessagesApi, portal: BlockingPortal, body: str) -> tuple[float, int]:
    """One working turn; (the Bash call answered → claude's next request, the model requests it took)."""
    run_turn(operator, api, portal, body)
    turn = [r for r in api.model_requests() if body in r.prompt()]
    [bash] = [
        r for r in turn if isinstance(r.reply, Turn) and any(getattr(b, "name", "") == "Bash" for b in r.reply.blocks)
    ]
    after = turn[turn.index(bash) + 1]
    assert bash.answered_at is not None
    return after.received_at - bash.answered_at, len(turn)


def run_turn(operator: LineClient, api: MessagesApi, portal: BlockingPortal, body: str) -> TurnTimes:
    """One turn: send, wait for the reply and for claude's last request of the turn."""
    receipt = operator.call("send", {"to": AGENT, "body": body})
    stored = _timestamp(receipt["created_at"])
    deadline = time.monotonic() + TURN_TIMEOUT_S
    reply: dict[str, Any] | None = None
    while reply is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no reply to {body!r} within {TURN_TIMEOUT_S:g} s")
        for message in operator.call("recv", {"timeout_s": 5, "max": 10})["messages"]:
            if message["reply_to"] == receipt["id"]:
                reply = message
    assert reply is not None
    replied = _timestamp(reply["created_at"])
    # the turn ends with claude's request after its send came back (the model's closing words)

    def closes_the_turn(request: ApiRequest) -> bool:
        return request.received_at > replied and request.answers_tools and not _searched(request)

    final = portal.call(api.wait_for, closes_the_turn)
    requests = [r for r in api.model_requests() if stored <= r.received_at <= final.received_at]
    sender = next(r for r in requests if _calls_send(r))
    assert sender.answered_at is not None
    return TurnTimes(
        to_first_request=requests[0].received_at - stored,
        answer_to_stored=replied - sender.answered_at,
        model_requests=len(requests),
    )


def _calls_send(request: ApiRequest) -> bool:
    reply = request.reply
    return isinstance(reply, Turn) and any(getattr(b, "name", "") == SEND for b in reply.blocks)


def _searched(request: ApiRequest) -> bool:
    return any(use.get("name") == "ToolSearch" for use in request.last_tool_uses())


def _timestamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def tree_rss_mb(pid: int) -> tuple[float, float]:
    """Resident memory of `pid` and all its descendants, and of the claude processes among them, in MB."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree = {pid}
    grew = True
    while grew:
        found = {child for child, parent in parents.items() if parent in tree} - tree
        grew = bool(found)
        tree |= found
    total = claude = 0.0
    for member in tree:
        rss = _rss_mb(member)
        total += rss
        try:
            argv0 = (Path(f"/proc/{member}/cmdline").read_bytes().split(b"\0")[0]).decode()
        except OSError:
            continue
        if Path(argv0).name.startswith("claude"):
            claude += rss
    return total, claude


def _rss_mb(pid: int) -> float:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def claude_daemon(root: Path, claude_dir: Path, agent_env: list[str]) -> Generator[Path]:
    """A daemon child with real agents (`benchmarks._serve claude`) and the pinned claude on PATH; its run dir."""
    run_dir, state_dir = root / "run", root / "state"
    env = {**os.environ, "PATH": f"{CLAUDE_BIN_DIR}:{os.environ.get('PATH', '')}"}
    argv = [sys.executable, "-m", "benchmarks._serve", "claude", str(run_dir), str(state_dir), str(claude_dir)]
    process = subprocess.Popen([*argv, *agent_env], stdout=subprocess.PIPE, env=env)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT_S)
        if not ready or process.stdout.readline().strip() != b"ready":
            raise RuntimeError("the claude benchmark's daemon did not start")
        yield run_dir
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        if process.stdout is not None:
            process.stdout.close()

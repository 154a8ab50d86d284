"""`hivectl kill` says an agent is gone only once every process of it is gone.

Real daemon, real bubblewrap, real cgroups. A sandbox process that SIGKILL cannot end in time
(here: one the test froze in a cgroup v1 freezer of its own, where a SIGKILL waits until it is
thawed, as it would for a process stuck in uninterruptible sleep) makes kill fail with the pids
still alive, instead of claiming the agent dead. Once the process can die it does, and the next
reconcile finishes the removal.
"""

import contextlib
import os
import secrets
import select
import sys
from collections.abc import Generator
from pathlib import Path

import anyio
import pytest

from hyperhive_core.client import open_hive_client
from hyperhive_core.daemon import running_daemon
from hyperhive_core.errors import ToolCallError
from hyperhive_core.lifecycle._procs import alive
from tests.helpers import hive_config, needs_bwrap

FREEZER = Path("/sys/fs/cgroup/freezer")
BOUND_S = 60.0
# How long a freezer takes to say FROZEN, and a thawed process to die of its pending SIGKILL.
SETTLE_S = 30.0

# The agent: says it runs (so the test need not poll for it), then waits to be killed.
ANNOUNCE_AND_WAIT = """
import os, signal
from pathlib import Path
from hyperhive_agent.client import connect
with connect(Path(os.environ["HIVE_SOCKET"])) as hive:
    hive.call_tool("send", {"to": "operator", "body": "started"})
signal.pause()
"""

needs_v1_freezer = pytest.mark.skipif(
    not os.access(FREEZER / "cgroup.procs", os.W_OK), reason="no writable cgroup v1 freezer (CI has one, as root)"
)
pytestmark = [pytest.mark.containers, needs_bwrap, needs_v1_freezer]


def agent_process(token: str) -> int | None:
    """The agent's own process (the interpreter bwrap runs, not bwrap or its init), by the token in its argv."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if argv[0] == sys.executable.encode() and token.encode() in argv:
                return int(entry.name)
    return None


@contextlib.contextmanager
def frozen(pid: int) -> Generator[None]:
    """Freeze `pid` in a freezer cgroup of the test's own; thawed (and the cgroup removed) on the way out."""
    group = FREEZER / f"hh-test-{secrets.token_hex(4)}"
    group.mkdir()
    try:
        (group / "cgroup.procs").write_text(str(pid))
        (group / "freezer.state").write_text("FROZEN")
        pidfd = os.pidfd_open(pid)
        try:
            yield
        finally:
            (group / "freezer.state").write_text("THAWED")
            # Thawed, it meets the SIGKILL it could not act on: it exits (its pidfd turns readable).
            readable, _, _ = select.select([pidfd], [], [], SETTLE_S)
            os.close(pidfd)
            assert readable, f"process {pid} did not die once thawed"
    finally:
        group.rmdir()


async def test_kill_of_an_agent_whose_process_cannot_die_in_time_reports_it_and_does_not_claim_it_dead(
    short_tmpdir: Path,
) -> None:
    token = f"hh-stuck-{secrets.token_hex(4)}"
    command = (sys.executable, "-c", ANNOUNCE_AND_WAIT, token)
    config = hive_config(short_tmpdir, sandbox="bwrap", agent_command=command)
    with anyio.fail_after(BOUND_S):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn("alice")
            [started] = (await operator.recv(timeout_s=BOUND_S, max=1)).messages
            assert started.body == "started"
            stuck = agent_process(token)
            assert stuck is not None
            with frozen(stuck):
                with pytest.raises(ToolCallError) as caught:
                    await operator.kill("alice")
                message = str(caught.value)
                assert "agent 'alice' did not stop" in message
                assert "still alive after SIGKILL" in message
                assert str(stuck) in message
                assert alive(stuck)
            # It could die, and did: the removal main asked for now completes.
            assert (await operator.reconcile()).ok
            assert await operator.list_agents() == []
            assert agent_process(token) is None

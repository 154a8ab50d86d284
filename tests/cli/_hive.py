"""hivectl against a live daemon, for the CLI tests: the daemon on a portal's loop, hivectl in-process."""

import json
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal
from typer.testing import CliRunner, Result

from hyperhive_core.cli import app
from hyperhive_core.client import open_hive_client
from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import running_daemon
from hyperhive_core.mcp.models import SendReceipt

VERBS = (
    *(
        "serve",
        "shutdown",
        "spawn",
        "kill",
        "rebuild",
        "list",
        "status",
        "logs",
        "budget",
        "send",
        "recv",
        "inbox",
        "dashboard",
    ),
    *("approvals", "approve", "deny", "plan", "reconcile", "suspend", "resume", "rollback"),
)
DAEMON_DOWN = "no hyperhive daemon at"
# Bounds every wait for a process to exit.
STOP_DEADLINE_S = 10.0


def cli_env(run_dir: Path, state_dir: Path) -> dict[str, str]:
    """The environment a shell would give hivectl; wide, so rich never wraps a table cell."""
    return {"HYPERHIVE_RUN_DIR": str(run_dir), "HYPERHIVE_STATE_DIR": str(state_dir), "COLUMNS": "200"}


def invoke(env: dict[str, str], *args: str, input: str | None = None) -> Result:
    """Run `hivectl ARGS` in-process."""
    return CliRunner().invoke(app, list(args), input=input, env=env)


def error_line(result: Result) -> str:
    """The one error line of a refused command, after checking it is exactly that."""
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


async def send_as_agent(socket: Path, to: str, body: str) -> SendReceipt:
    """Send a message from the agent whose socket is `socket`, as the agent itself would."""
    with anyio.fail_after(5):
        async with open_hive_client(socket) as client:
            return await client.send(to, body)


async def wait_for_exit(pidfd: int) -> None:
    """Wait until the process behind `pidfd` has exited (a pidfd turns readable then)."""
    with anyio.fail_after(STOP_DEADLINE_S):
        await anyio.wait_readable(pidfd)


@dataclass(frozen=True, slots=True)
class LiveHive:
    """A running daemon and a way to run hivectl against it."""

    config: HiveConfig
    portal: BlockingPortal

    @property
    def env(self) -> dict[str, str]:
        """hivectl's environment for this daemon."""
        return cli_env(self.config.run_dir, self.config.state_dir)

    def run(self, *args: str, input: str | None = None) -> Result:
        """Run hivectl; the caller checks the outcome."""
        return invoke(self.env, *args, input=input)

    def ok(self, *args: str, input: str | None = None) -> Result:
        """Run hivectl and require success with nothing on stderr."""
        result = self.run(*args, input=input)
        assert result.exit_code == 0, result.output
        assert result.stderr == ""
        return result

    def json(self, *args: str, input: str | None = None) -> Any:
        """Run hivectl with --json and parse what it printed."""
        return json.loads(self.ok(*args, "--json", input=input).stdout)

    def agent_sends(self, agent: str, to: str, body: str) -> SendReceipt:
        """`agent` sends a message through its own socket."""
        return self.portal.call(send_as_agent, self.config.agent_socket(agent), to, body)


@contextmanager
def live_hive(config: HiveConfig) -> Generator[LiveHive]:
    """Run a daemon for `config` on a portal's event loop until the block ends."""
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(running_daemon(config)):
        yield LiveHive(config, portal)


async def report_as_agent(socket: Path, events: list[dict[str, Any]]) -> None:
    """Report turn events from the agent whose socket is `socket`, as its turn loop would."""
    with anyio.fail_after(5):
        async with open_hive_client(socket) as client:
            await client.report_events(events)

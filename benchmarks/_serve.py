"""The benchmark's child processes: the floor servers and a daemon whose agents idle.

`python -m benchmarks._serve raw SOCKET` answers JSON lines on the daemon's own socket and event
loop stack, minus MCP; `... mcp SOCKET` serves an SDK `MCPServer` whose one tool does nothing,
over the daemon's own transport; `... daemon RUN_DIR STATE_DIR` runs the real `Daemon` with
`sleep infinity` as every agent's process, so nothing but the benchmark takes their messages (and
`... daemon RUN_DIR STATE_DIR DATABASE_URL` the same on a PostgreSQL database);
`... claude RUN_DIR STATE_DIR CLAUDE_DIR [NAME=VALUE...]` runs it with real agents and claude's
login in CLAUDE_DIR, for the claude turn rows.
Each writes `ready` on stdout once it listens and runs until SIGTERM.
"""

import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel

from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import serve_until_signalled
from hyperhive_core.mcp.sockets import serve_connection
from hyperhive_core.mcp.transport import MAX_LINE_BYTES
from hyperhive_core.mcp.unix import UnixStream, bind_unix, serve_unix

IDLE_AGENT = ("sleep", "infinity")
GUARD_BOUNDS = ("max_exchanges", "rate_limit")
UNBOUNDED = 1_000_000_000


class Pong(BaseModel):
    """The no-op tool's structured answer, shaped like a send receipt."""

    ok: bool


def build_noop_server() -> MCPServer[Any]:
    """An MCP server whose one tool does no work."""
    server: MCPServer[Any] = MCPServer(name="floor")

    @server.tool()
    async def noop() -> Pong:  # pyright: ignore[reportUnusedFunction]  # registered by the decorator
        """Do nothing."""
        return Pong(ok=True)

    return server


async def answer_raw(stream: UnixStream) -> None:
    """Answer each JSON line with an empty JSON-RPC result: the socket and parsing, nothing else."""
    buffered = BufferedByteReceiveStream(stream)
    async with stream:
        while True:
            try:
                line = await buffered.receive_until(b"\n", MAX_LINE_BYTES)
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
                return
            request = json.loads(line)
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request["id"], "result": {}}
            await stream.send(json.dumps(reply, separators=(",", ":")).encode() + b"\n")


def say_ready() -> None:
    """Tell the parent we listen."""
    os.write(1, b"ready\n")


async def serve_floor(kind: str, path: Path) -> None:
    """Serve one floor server on `path` until killed."""
    sock = bind_unix(path)
    async with anyio.create_task_group() as tg:
        if kind == "raw":
            tg.start_soon(serve_unix, sock, answer_raw, tg)
        else:
            tg.start_soon(serve_unix, sock, functools.partial(serve_connection, build_noop_server()), tg)
        say_ready()


def main(argv: list[str]) -> None:
    """Run the child named by `argv[0]`."""
    kind = argv[0]
    if kind in ("raw", "mcp"):
        anyio.run(serve_floor, kind, Path(argv[1]))
        return
    run_dir, state_dir = Path(argv[1]), Path(argv[2])
    state_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING, filename=state_dir / "daemon.log")
    values: dict[str, object] = {
        "run_dir": run_dir,
        "state_dir": state_dir,
        "sandbox": "none",
        "agent_command": IDLE_AGENT,
        # Any free port (the dashboard rows read it from the run dir): never the default one.
        "dashboard": "127.0.0.1:0",
    }
    if kind == "daemon" and len(argv) > 3:
        values |= {"database": argv[3], "dashboard": None}
    if kind == "claude":
        # `claude RUN STATE CLAUDE_DIR AGENT_ENV...`: real agents in the default sandbox, claude
        # logged in by CLAUDE_DIR; AGENT_ENV (NAME=VALUE) is set for the turn loop through env(1)
        agent_env = argv[4:]
        command = ("env", *agent_env) if agent_env else ()
        values = {
            "run_dir": run_dir,
            "state_dir": state_dir,
            "claude_config_dir": Path(argv[3]),
            "agent_command": (*command, sys.executable, "-m", "hyperhive_agent", "serve"),
            "dashboard": None,
        }
    # The runaway guard would stop a benchmark's floods by design: lift its bounds (where this
    # version of the daemon has them) to measure the message path itself.
    values |= {key: UNBOUNDED for key in GUARD_BOUNDS if key in HiveConfig.model_fields}
    if "dashboard" not in HiveConfig.model_fields:  # a daemon from before the dashboard
        values.pop("dashboard")
    config = HiveConfig.model_validate(values)
    anyio.run(functools.partial(serve_until_signalled, config, on_ready=say_ready))


if __name__ == "__main__":
    main(sys.argv[1:])

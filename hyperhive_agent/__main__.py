"""`hive-agent`: the in-sandbox entry point, `mcp` (stdio bridge) and `serve` (turn loop).

Subcommands import their modules lazily: `hive-agent mcp` starts on every claude session and
must stay fast, so nothing here pulls in more than argparse and logging.
"""

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from hyperhive_agent._unix import DEFAULT_SOCKET
from hyperhive_agent.errors import SocketUnavailableError

logger = logging.getLogger("hyperhive_agent")

SOCKET_ENV = "HIVE_SOCKET"
AGENT_NAME_ENV = "HIVE_AGENT_NAME"
PARENT_PID_ENV = "HIVE_PARENT_PID"


def build_parser() -> argparse.ArgumentParser:
    """The `hive-agent` command line."""
    default_socket = Path(os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET)
    parser = argparse.ArgumentParser(prog="hive-agent", description="hyperhive's agent side, run inside each sandbox.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    mcp = commands.add_parser("mcp", help="relay MCP between stdio and the hive socket (for claude mcp add)")
    mcp.add_argument(
        "--socket", type=Path, default=default_socket, help=f"hive socket (default: ${SOCKET_ENV} or {DEFAULT_SOCKET})"
    )

    serve = commands.add_parser("serve", help="run the turn loop: recv, hand the batch to a driver, repeat")
    serve.add_argument(
        "--socket", type=Path, default=default_socket, help=f"hive socket (default: ${SOCKET_ENV} or {DEFAULT_SOCKET})"
    )
    serve.add_argument("--driver", choices=["echo"], default="echo", help="who answers messages (default: echo)")
    serve.add_argument(
        "--recv-timeout", type=float, default=30.0, metavar="S", help="seconds each recv waits (default: 30)"
    )
    return parser


def main() -> None:
    """Run `hive-agent`; exits 0 on a clean end, 1 when the hive socket cannot be opened."""
    args = build_parser().parse_args()
    command: str = args.command
    _configure_logging(command)
    try:
        if command == "mcp":
            _run_mcp(args.socket)
        else:
            _run_serve(args.socket, args.driver, args.recv_timeout)
    except SocketUnavailableError as exc:
        logger.error("%s", exc)
        sys.exit(1)


def _run_mcp(socket_path: Path) -> None:
    from hyperhive_agent.bridge import run_bridge

    def exit_quietly(signum: int, frame: FrameType | None) -> None:
        sys.exit(0)

    # claude ends its servers with a signal; that is a normal end, not a traceback
    signal.signal(signal.SIGTERM, exit_quietly)
    signal.signal(signal.SIGINT, exit_quietly)
    run_bridge(socket_path)


def _run_serve(socket_path: Path, driver_name: str, recv_timeout_s: float) -> None:
    from hyperhive_agent.drivers import create_driver
    from hyperhive_agent.turn import LoopConfig, die_with_parent, run_serve

    if parent := os.environ.get(PARENT_PID_ENV):
        die_with_parent(int(parent))
    run_serve(LoopConfig(socket_path=socket_path, recv_timeout_s=recv_timeout_s), create_driver(driver_name))


def _configure_logging(command: str) -> None:
    agent = os.environ.get(AGENT_NAME_ENV, "").replace("%", "%%")
    who = f"hive-agent {command}" + (f"[{agent}]" if agent else "")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{who}: %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


if __name__ == "__main__":
    main()

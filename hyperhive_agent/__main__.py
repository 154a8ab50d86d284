"""`hive-agent`: the in-sandbox entry point, `mcp` (stdio bridge) and `serve` (turn loop).

Subcommands import their modules lazily: `hive-agent mcp` starts on every claude session and
must stay fast, so nothing here pulls in more than argparse and logging.
"""

import argparse
import logging
import signal
import sys
from pathlib import Path
from types import FrameType

from hyperhive_agent.cli import add_serve_arguments, add_socket_argument, configure_logging
from hyperhive_agent.errors import AgentError, SettingsError, SocketUnavailableError

logger = logging.getLogger("hyperhive_agent")


def build_parser() -> argparse.ArgumentParser:
    """The `hive-agent` command line."""
    parser = argparse.ArgumentParser(prog="hive-agent", description="hyperhive's agent side, run inside each sandbox.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    mcp = commands.add_parser("mcp", help="relay MCP between stdio and the hive socket (for claude mcp add)")
    add_socket_argument(mcp)
    mcp.add_argument(
        "--reconnect-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds to wait for the daemon when it is not up yet or restarts, before giving up; 0 exits at once "
        "when it is not there (default: 60)",
    )
    serve = commands.add_parser("serve", help="run the turn loop: recv, hand the batch to a driver, repeat")
    add_serve_arguments(serve)
    return parser


def main() -> None:
    """Run `hive-agent`; exits 0 on a clean end, 1 on a failure (no hive socket, protocol error), 2 on bad settings."""
    parser = build_parser()
    args = parser.parse_args()
    command: str = args.command
    configure_logging("hive-agent", command)
    try:
        if command == "mcp":
            _run_mcp(args.socket, args.reconnect_timeout)
        else:
            from hyperhive_agent.serve import serve_from_args

            serve_from_args(args)
    except SettingsError as exc:
        parser.error(str(exc))
    except SocketUnavailableError as exc:
        logger.error("%s", exc)
        sys.exit(1)
    except AgentError as exc:
        logger.error("%s: %s", type(exc).__name__, exc)
        sys.exit(1)


def _run_mcp(socket_path: Path, reconnect_timeout_s: float) -> None:
    from hyperhive_agent.bridge import run_bridge

    def exit_quietly(signum: int, frame: FrameType | None) -> None:
        sys.exit(0)

    # claude ends its servers with a signal; that is a normal end, not a traceback
    signal.signal(signal.SIGTERM, exit_quietly)
    signal.signal(signal.SIGINT, exit_quietly)
    run_bridge(socket_path, reconnect_timeout_s=reconnect_timeout_s)


if __name__ == "__main__":
    main()

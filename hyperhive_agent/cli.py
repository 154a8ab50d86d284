"""Command-line pieces shared by `hive-agent serve` and `hive-mind serve`: their flags and log format.

Standard library only and light: `hive-agent mcp` imports this module on every claude session.
"""

import argparse
import logging
import os
import sys
from pathlib import Path

from hyperhive_agent._unix import DEFAULT_SOCKET

SOCKET_ENV = "HIVE_SOCKET"
AGENT_NAME_ENV = "HIVE_AGENT_NAME"
DRIVER_CHOICES = ("auto", "claude", "echo")


def default_socket() -> Path:
    """`$HIVE_SOCKET`, else the sandbox's fixed socket path."""
    return Path(os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET)


def add_socket_argument(parser: argparse.ArgumentParser) -> None:
    """`--socket PATH`."""
    parser.add_argument(
        "--socket",
        type=Path,
        default=default_socket(),
        help=f"hive socket (default: ${SOCKET_ENV} or {DEFAULT_SOCKET})",
    )


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The turn loop's flags; each overrides the environment variable the daemon sets."""
    add_socket_argument(parser)
    parser.add_argument(
        "--driver",
        choices=DRIVER_CHOICES,
        default=None,
        help="who answers: claude, echo, or auto (claude when installed and logged in); default $HIVE_DRIVER or auto",
    )
    parser.add_argument(
        "--turn-timeout",
        type=float,
        default=None,
        metavar="S",
        help="seconds one claude turn may take before it is killed (default: $HIVE_TURN_TIMEOUT_S or 600)",
    )
    parser.add_argument(
        "--recv-timeout", type=float, default=30.0, metavar="S", help="seconds each recv waits (default: 30)"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where role files, the session id and the mcp config live (default: .)",
    )


def configure_logging(program: str, command: str) -> None:
    """Log to stderr as `<program> <command>[<agent>]: LEVEL message`."""
    agent = os.environ.get(AGENT_NAME_ENV, "").replace("%", "%%")
    who = f"{program} {command}" + (f"[{agent}]" if agent else "")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{who}: %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)

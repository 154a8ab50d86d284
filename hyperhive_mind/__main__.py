"""`hive-mind serve`: the manager `hm1nd` runs the agent's turn loop with the manager's prompt as its role.

The daemon starts it in hm1nd's sandbox like any agent (`HIVE_AGENT_NAME=hm1nd`, its own socket
with the manager's toolset); flags and environment are those of `hive-agent serve`.
"""

import argparse
import logging
import os
import sys

from hyperhive_agent.cli import AGENT_NAME_ENV, add_serve_arguments, configure_logging
from hyperhive_agent.errors import SocketUnavailableError
from hyperhive_mind.prompt import MANAGER_NAME, MANAGER_PROMPT

logger = logging.getLogger("hyperhive_mind")


def build_parser() -> argparse.ArgumentParser:
    """The `hive-mind` command line."""
    parser = argparse.ArgumentParser(prog="hive-mind", description="hyperhive's manager agent, hm1nd.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the manager's turn loop: recv, claude (or echo), repeat")
    add_serve_arguments(serve)
    return parser


def main() -> None:
    """Run `hive-mind`; exits 0 on SIGTERM/SIGINT, 1 when the hive socket cannot be opened, 2 on bad settings."""
    parser = build_parser()
    args = parser.parse_args()
    # the manager is hm1nd unless the daemon says otherwise; prompts and logs name it
    os.environ.setdefault(AGENT_NAME_ENV, MANAGER_NAME)
    configure_logging("hive-mind", args.command)
    from hyperhive_agent.serve import serve_from_args

    try:
        serve_from_args(args, system_role=MANAGER_PROMPT)
    except SocketUnavailableError as exc:
        logger.error("%s", exc)
        sys.exit(1)
    except ValueError as exc:
        parser.error(str(exc))


if __name__ == "__main__":
    main()

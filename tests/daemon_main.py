"""A daemon for the tests that kill it with -9: `python -m tests.daemon_main RUN_DIR STATE_DIR [JSON]`.

JSON, when given, is the agents' command (a list), or fields of the config to override (an object:
another backend, for instance). Its agents (the manager too) are idle processes unless a command
is given (the tests drive their sockets themselves) and its runaway guard is out of the way of a
flood; it prints `ready` once every socket listens.
"""

import json
import sys
from pathlib import Path
from typing import cast

import anyio

from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import serve_until_signalled
from tests.helpers import IDLE_AGENT

UNBOUNDED = 10**9


def main(run_dir: str, state_dir: str, extra: str = "{}") -> None:
    """Serve until SIGTERM (or SIGKILL, which is the point)."""
    values: dict[str, object] = {
        "run_dir": Path(run_dir),
        "state_dir": Path(state_dir),
        "agent_command": IDLE_AGENT,
        "manager_command": IDLE_AGENT,
        "max_exchanges": UNBOUNDED,
        "rate_limit": UNBOUNDED,
    }
    given: object = json.loads(extra)
    overrides: dict[str, object]
    if isinstance(given, list):
        overrides = {"agent_command": tuple(str(arg) for arg in cast(list[object], given))}
    else:
        overrides = cast(dict[str, object], given)
    config = HiveConfig.model_validate(values | overrides)

    def ready() -> None:
        sys.stdout.write("ready\n")
        sys.stdout.flush()

    anyio.run(lambda: serve_until_signalled(config, on_ready=ready))


if __name__ == "__main__":
    main(*sys.argv[1:])

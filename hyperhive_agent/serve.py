"""`serve`: build the agent's config, driver and turn loop from flags and environment, then run it.

Shared by `hive-agent serve` and `hive-mind serve`; the manager passes its system prompt as the
start of its role.
"""

import argparse
import dataclasses
import logging
import os
from pathlib import Path

from hyperhive_agent.config import AgentConfig, DriverChoice
from hyperhive_agent.drivers import create_driver
from hyperhive_agent.errors import SettingsError
from hyperhive_agent.events import EventLog, Redactor
from hyperhive_agent.turn import LoopConfig, die_with_parent, run_serve

logger = logging.getLogger(__name__)

PARENT_PID_ENV = "HIVE_PARENT_PID"


def serve_from_args(args: argparse.Namespace, *, system_role: str = "") -> None:
    """Run the turn loop as `args` (from `add_serve_arguments`) and the environment say.

    Raises:
        SettingsError: a flag or environment variable holds something unusable.
    """
    if parent := os.environ.get(PARENT_PID_ENV):
        die_with_parent(int(parent))
    work_dir: Path | None = args.work_dir
    config = AgentConfig.from_env(work_dir=work_dir.resolve() if work_dir else None)
    driver: DriverChoice | None = args.driver
    turn_timeout_s: float | None = args.turn_timeout
    if turn_timeout_s is not None and not turn_timeout_s > 0:
        raise SettingsError(f"--turn-timeout {turn_timeout_s:g}: must be more than 0 seconds")
    role = "\n\n".join(part for part in (system_role.strip(), config.role) if part)
    config = dataclasses.replace(
        config,
        role=role,
        driver=driver or config.driver,
        turn_timeout_s=turn_timeout_s or config.turn_timeout_s,
    )
    socket_path: Path = args.socket
    redactor = Redactor(config.secrets)
    events = EventLog(redactor)
    chosen, announcement = create_driver(config, socket_path, redactor)
    events.emit(announcement)
    run_serve(LoopConfig(socket_path=socket_path, recv_timeout_s=args.recv_timeout), chosen, events)

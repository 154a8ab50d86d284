"""What `hive-agent serve` learns from its environment, read once at the edge and passed down.

The daemon sets `HIVE_*` for each agent; command-line flags override them. Secret values (an API
key, an OAuth token, from the environment or claude's own files) are kept only so they can be
scrubbed from logs and events, never shown.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hyperhive_agent.errors import SettingsError
from hyperhive_agent.login import GATEWAY_ENV, PROVIDER_ENV, SECRET_ENV, login_secrets

AGENT_NAME_ENV = "HIVE_AGENT_NAME"
ROLE_ENV = "HIVE_ROLE"
DRIVER_ENV = "HIVE_DRIVER"
TURN_TIMEOUT_ENV = "HIVE_TURN_TIMEOUT_S"
ECHO_GUARD_ENV = "HIVE_ECHO_GUARD"
CLAUDE_CONFIG_ENV = "CLAUDE_CONFIG_DIR"
KEEP_ALIVE_ENV = "HIVE_CLAUDE_KEEP_ALIVE"
# The environment variables that decide whether and how claude is logged in.
LOGIN_ENV = (*SECRET_ENV, *PROVIDER_ENV, GATEWAY_ENV)

DriverChoice = Literal["auto", "claude", "echo"]
DRIVER_CHOICES: tuple[DriverChoice, ...] = ("auto", "claude", "echo")
DEFAULT_AGENT_NAME = "agent"
# An idle claude holds a few hundred MB: after this long without a turn it is ended (and the next
# turn, resuming the session, pays claude's start once). HIVE_CLAUDE_KEEP_ALIVE=0: a claude per turn.
KEEP_ALIVE_S = 600.0
TURN_TIMEOUT_S = 600.0


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """One agent's settings: who it is, which driver answers, and where claude keeps its login."""

    name: str
    work_dir: Path
    home: Path
    role: str = ""
    driver: DriverChoice = "auto"
    turn_timeout_s: float = TURN_TIMEOUT_S
    claude_config_dir: Path | None = None
    echo_guard: bool = True
    # One claude process serves turn after turn until it has been idle this long (0: a fresh
    # claude per turn).
    claude_keep_alive_s: float = KEEP_ALIVE_S
    # The login variables that are set (their values are secrets), for judging claude's login.
    login_env: dict[str, str] = field(default_factory=dict[str, str], repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, work_dir: Path | None = None) -> "AgentConfig":
        """Read the agent's settings from `env` (default: this process's environment).

        Raises:
            SettingsError: `HIVE_DRIVER` or `HIVE_TURN_TIMEOUT_S` holds something unusable.
        """
        env = os.environ if env is None else env
        work_dir = Path.cwd() if work_dir is None else work_dir
        driver = env.get(DRIVER_ENV) or "auto"
        if driver not in DRIVER_CHOICES:
            raise SettingsError(f"{DRIVER_ENV}={driver!r}: choose one of {', '.join(DRIVER_CHOICES)}")
        claude_dir = env.get(CLAUDE_CONFIG_ENV)
        home = Path(env.get("HOME") or work_dir)
        login_env = {name: value for name in LOGIN_ENV if (value := env.get(name))}
        config_dir = Path(claude_dir) if claude_dir else home / ".claude"
        return cls(
            name=env.get(AGENT_NAME_ENV) or DEFAULT_AGENT_NAME,
            work_dir=work_dir,
            home=home,
            role=env.get(ROLE_ENV, "").strip(),
            driver=driver,
            turn_timeout_s=parse_timeout(env.get(TURN_TIMEOUT_ENV) or str(TURN_TIMEOUT_S), TURN_TIMEOUT_ENV),
            claude_config_dir=Path(claude_dir) if claude_dir else None,
            echo_guard=env.get(ECHO_GUARD_ENV, "1") != "0",
            claude_keep_alive_s=parse_seconds(env.get(KEEP_ALIVE_ENV) or str(KEEP_ALIVE_S), KEEP_ALIVE_ENV),
            login_env=login_env,
            secrets=login_secrets(config_dir, login_env),
        )

    @property
    def claude_dir(self) -> Path:
        """Where claude keeps its login and sessions: `$CLAUDE_CONFIG_DIR`, else `~/.claude`."""
        return self.claude_config_dir if self.claude_config_dir is not None else self.home / ".claude"


def parse_seconds(text: str, what: str) -> float:
    """A number of seconds, 0 or more.

    Raises:
        SettingsError: `text` is not a number of seconds.
    """
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{what}={text!r} is not a number of seconds") from None
    if not value >= 0:
        raise SettingsError(f"{what}={text!r} must be 0 or more seconds")
    return value


def parse_timeout(text: str, what: str) -> float:
    """A positive number of seconds.

    Raises:
        SettingsError: `text` is not a positive number.
    """
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{what}={text!r} is not a number of seconds") from None
    if not value > 0:
        raise SettingsError(f"{what}={text!r} must be more than 0 seconds")
    return value

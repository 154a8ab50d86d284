"""What `hive-agent serve` learns from its environment, read once at the edge and passed down.

The daemon sets `HIVE_*` for each agent; command-line flags override them. Secret values (an API
key, an OAuth token) are kept only so they can be scrubbed from logs and events, never shown.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hyperhive_agent.errors import SettingsError

AGENT_NAME_ENV = "HIVE_AGENT_NAME"
ROLE_ENV = "HIVE_ROLE"
DRIVER_ENV = "HIVE_DRIVER"
TURN_TIMEOUT_ENV = "HIVE_TURN_TIMEOUT_S"
ECHO_GUARD_ENV = "HIVE_ECHO_GUARD"
CLAUDE_CONFIG_ENV = "CLAUDE_CONFIG_DIR"
# Ways claude can be logged in without a credentials file; their values are secrets.
LOGIN_ENV = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN")
SECRET_ENV = (*LOGIN_ENV, "ANTHROPIC_AUTH_TOKEN")
# Shorter values would redact ordinary words; real keys and tokens are far longer.
MIN_SECRET_CHARS = 8

DriverChoice = Literal["auto", "claude", "echo"]
DRIVER_CHOICES: tuple[DriverChoice, ...] = ("auto", "claude", "echo")
DEFAULT_AGENT_NAME = "agent"
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
    # The names of the login variables that are set, for saying why claude was chosen.
    login_env: tuple[str, ...] = ()
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
        return cls(
            name=env.get(AGENT_NAME_ENV) or DEFAULT_AGENT_NAME,
            work_dir=work_dir,
            home=Path(env.get("HOME") or work_dir),
            role=env.get(ROLE_ENV, "").strip(),
            driver=driver,
            turn_timeout_s=parse_timeout(env.get(TURN_TIMEOUT_ENV) or str(TURN_TIMEOUT_S), TURN_TIMEOUT_ENV),
            claude_config_dir=Path(claude_dir) if claude_dir else None,
            echo_guard=env.get(ECHO_GUARD_ENV, "1") != "0",
            login_env=tuple(name for name in LOGIN_ENV if env.get(name)),
            secrets=tuple(v for name in SECRET_ENV if len(v := env.get(name, "")) >= MIN_SECRET_CHARS),
        )

    @property
    def claude_dir(self) -> Path:
        """Where claude keeps its login and sessions: `$CLAUDE_CONFIG_DIR`, else `~/.claude`."""
        return self.claude_config_dir if self.claude_config_dir is not None else self.home / ".claude"


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

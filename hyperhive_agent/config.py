"""What `hive-agent serve` learns from its environment, read once at the edge and passed down.

The daemon sets `HIVE_*` for each agent; command-line flags override them. Secret values (an API
key, an OAuth token, from the environment or claude's own files) are kept only so they can be
scrubbed from logs and events, never shown.
"""

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from hyperhive_agent.errors import SettingsError
from hyperhive_agent.login import GATEWAY_ENV, PROVIDER_ENV, SECRET_ENV, login_secrets

AGENT_NAME_ENV = "HIVE_AGENT_NAME"
ROLE_ENV = "HIVE_ROLE"
DRIVER_ENV = "HIVE_DRIVER"
TURN_TIMEOUT_ENV = "HIVE_TURN_TIMEOUT_S"
ECHO_GUARD_ENV = "HIVE_ECHO_GUARD"
CLAUDE_CONFIG_ENV = "CLAUDE_CONFIG_DIR"
KEEP_ALIVE_ENV = "HIVE_CLAUDE_KEEP_ALIVE"
# How claude runs for this agent (its `[claude]` settings and extra dirs, set by the daemon): in the
# environment the daemon gives the turn loop, which nothing in the sandbox can change.
TOOLS_ENV = "HIVE_CLAUDE_TOOLS"  # a JSON list of tool names or rules ("Bash(git *)"); unset: WORKING_SET
PERMISSION_MODE_ENV = "HIVE_CLAUDE_PERMISSION_MODE"
MODEL_ENV = "HIVE_CLAUDE_MODEL"
# The operator's claude settings (the login), bound read-only by the daemon: claude reads them
# from there and from no settings file the agent can write.
SETTINGS_FILE_ENV = "HIVE_CLAUDE_SETTINGS"
ADD_DIRS_ENV = "HIVE_CLAUDE_ADD_DIRS"  # a JSON list of absolute paths claude may work in besides its work dir
# The environment variables that decide whether and how claude is logged in.
LOGIN_ENV = (*SECRET_ENV, *PROVIDER_ENV, GATEWAY_ENV)

DriverChoice = Literal["auto", "claude", "echo"]
DRIVER_CHOICES: tuple[DriverChoice, ...] = ("auto", "claude", "echo")
DEFAULT_AGENT_NAME = "agent"
# An idle claude holds a few hundred MB: after this long without a turn it is ended (and the next
# turn, resuming the session, pays claude's start once). HIVE_CLAUDE_KEEP_ALIVE=0: a claude per turn.
KEEP_ALIVE_S = 600.0
TURN_TIMEOUT_S = 600.0
# The tools an agent gets unless its settings say otherwise: enough to work in its work dir. The
# sandbox, not claude's permission prompts, is the boundary (nobody answers a prompt in a hive).
WORKING_SET = ("Bash", "Read", "Edit", "Write", "Glob", "Grep")
PERMISSION_MODES = ("default", "acceptEdits", "bypassPermissions", "plan", "dontAsk")
DEFAULT_PERMISSION_MODE = "default"
# A tool name, optionally with a rule in parentheses: Read, Bash(git commit *), mcp__hive__send.
TOOL_RULE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*(\(.*\))?")


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
    # claude's tools (names or rules), permission mode, model and extra working dirs.
    claude_tools: tuple[str, ...] = WORKING_SET
    permission_mode: str = DEFAULT_PERMISSION_MODE
    claude_model: str | None = None
    add_dirs: tuple[str, ...] = ()
    settings_file: Path | None = None
    # The login variables that are set (their values are secrets), for judging claude's login.
    login_env: dict[str, str] = field(default_factory=dict[str, str], repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, work_dir: Path | None = None) -> "AgentConfig":
        """Read the agent's settings from `env` (default: this process's environment).

        Raises:
            SettingsError: `HIVE_DRIVER`, `HIVE_TURN_TIMEOUT_S` or a `HIVE_CLAUDE_*` holds something unusable.
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
        mode = env.get(PERMISSION_MODE_ENV) or DEFAULT_PERMISSION_MODE
        if mode not in PERMISSION_MODES:
            raise SettingsError(f"{PERMISSION_MODE_ENV}={mode!r}: choose one of {', '.join(PERMISSION_MODES)}")
        tools = env.get(TOOLS_ENV)
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
            claude_tools=WORKING_SET if tools is None else parse_tools(tools),
            permission_mode=mode,
            claude_model=env.get(MODEL_ENV) or None,
            add_dirs=parse_dirs(env.get(ADD_DIRS_ENV) or "[]"),
            settings_file=Path(settings) if (settings := env.get(SETTINGS_FILE_ENV)) else None,
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


def _json_strings(text: str, what: str) -> list[str]:
    try:
        value: object = json.loads(text)
    except ValueError:
        value = None
    items = cast(list[object], value) if isinstance(value, list) else None
    strings = [item for item in items or () if isinstance(item, str)]
    if items is None or len(strings) != len(items):
        raise SettingsError(f"{what}={text!r} is not a JSON list of strings")
    return strings


def parse_tools(text: str) -> tuple[str, ...]:
    """claude's tools from a JSON list of names or rules (`["Read", "Bash(git *)"]`); `[]`: the hive's tools only.

    Raises:
        SettingsError: not a JSON list of tool names or rules.
    """
    tools = _json_strings(text, TOOLS_ENV)
    for tool in tools:
        if not TOOL_RULE.fullmatch(tool):
            raise SettingsError(f"{TOOLS_ENV}: {tool!r} is no tool name or rule (like Read or Bash(git *))")
    return tuple(tools)


def parse_dirs(text: str) -> tuple[str, ...]:
    """Extra working dirs from a JSON list of absolute paths.

    Raises:
        SettingsError: not a JSON list of absolute paths.
    """
    dirs = _json_strings(text, ADD_DIRS_ENV)
    for path in dirs:
        if not path.startswith("/"):
            raise SettingsError(f"{ADD_DIRS_ENV}: {path!r} is not an absolute path")
    return tuple(dirs)

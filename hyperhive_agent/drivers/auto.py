"""Choosing the driver: `echo`, `claude` (falling back to echo), or `auto` (claude when it can run).

auto's rule: claude when `claude` is on PATH and logged in (a `.credentials.json` in its config
dir, `$CLAUDE_CONFIG_DIR` else `~/.claude`, or `ANTHROPIC_API_KEY`/`CLAUDE_CODE_OAUTH_TOKEN` set),
else echo. The choice is said once, plainly, in the log and as a `driver` event. A claude that
turns out not to be usable (it says `Not logged in`) hands the batch and every later one to echo.
"""

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hyperhive_agent.config import AgentConfig
from hyperhive_agent.drivers.base import Driver
from hyperhive_agent.drivers.claude import CLAUDE_EXECUTABLE, ClaudeDriver, ClaudeSettings
from hyperhive_agent.drivers.echo import EchoDriver
from hyperhive_agent.errors import ClaudeUnavailableError, SettingsError
from hyperhive_agent.events import EventLog, JsonObject, hive_event
from hyperhive_agent.prompt import Identity, load_role
from hyperhive_agent.tools import AgentTools, Message

logger = logging.getLogger(__name__)

CREDENTIALS_FILE = ".credentials.json"


@dataclass(frozen=True, slots=True)
class ClaudeStatus:
    """Whether claude can run turns here, and why (never with a secret in it)."""

    usable: bool
    reason: str


def claude_status(config: AgentConfig, *, executable: str = CLAUDE_EXECUTABLE) -> ClaudeStatus:
    """Whether claude is installed and logged in, judged without running it."""
    path = shutil.which(executable)
    if path is None:
        return ClaudeStatus(False, f"claude is not installed: no {executable!r} on PATH")
    credentials = config.claude_dir / CREDENTIALS_FILE
    if credentials.is_file():
        return ClaudeStatus(True, f"{path}, logged in with the credentials in {config.claude_dir}")
    if config.login_env:
        return ClaudeStatus(True, f"{path}, logged in with {config.login_env[0]} from the environment")
    return ClaudeStatus(False, f"claude is not logged in: no credentials in {config.claude_dir}")


class FallbackDriver:
    """claude until it proves unusable (not installed, not logged in), then echo for good."""

    def __init__(self, primary: ClaudeDriver, fallback: Driver) -> None:
        self.primary = primary
        self.fallback = fallback
        self._fell_back = False

    @property
    def name(self) -> str:
        """The driver answering now."""
        return self.fallback.name if self._fell_back else self.primary.name

    def run_turn(self, messages: Sequence[Message], tools: AgentTools, events: EventLog) -> None:
        """Run claude's turn; if claude cannot run at all, echo this batch and every later one.

        Raises:
            TurnFailedError: claude hung or crashed.
            ConnectionLostError: the hive went away mid-turn.
        """
        if not self._fell_back:
            try:
                self.primary.run_turn(messages, tools, events)
                return
            except ClaudeUnavailableError as exc:
                self._fell_back = True
                message = f"driver claude: {exc.reason}; using {self.fallback.name} from now on"
                logger.warning("%s", message)
                events.emit(hive_event("driver", message, driver=self.fallback.name, reason=exc.reason))
        self.fallback.run_turn(messages, tools, events)

    def cancel(self) -> None:
        """Cancel whichever driver is running."""
        self.primary.cancel()
        self.fallback.cancel()


def create_driver(config: AgentConfig, socket_path: Path) -> tuple[Driver, JsonObject]:
    """The driver `config.driver` asks for, and the `driver` event saying which and why (also logged).

    Raises:
        SettingsError: `config.driver` names no driver.
    """
    echo = EchoDriver(guard=config.echo_guard)
    if not config.echo_guard:
        logger.warning("the echo guard is off (HIVE_ECHO_GUARD=0): echo answers echoes; for tests only")
    if config.driver == "echo":
        return echo, _announce("echo", "driver echo (asked for)", "asked for")
    if config.driver == "claude":
        claude = FallbackDriver(_claude_driver(config, socket_path), echo)
        return claude, _announce("claude", "driver claude (asked for; echo if claude cannot run)", "asked for")
    if config.driver != "auto":
        raise SettingsError(f"unknown driver {config.driver!r}; choose one of auto, claude, echo")
    status = claude_status(config)
    if status.usable:
        driver: Driver = FallbackDriver(_claude_driver(config, socket_path), echo)
        return driver, _announce("claude", f"driver auto: using claude ({status.reason})", status.reason)
    return echo, _announce("echo", f"driver auto: using echo ({status.reason})", status.reason)


def _claude_driver(config: AgentConfig, socket_path: Path) -> ClaudeDriver:
    settings = ClaudeSettings(
        identity=Identity(config.name, load_role(config.role, config.work_dir)),
        socket_path=socket_path,
        work_dir=config.work_dir,
        turn_timeout_s=config.turn_timeout_s,
        secrets=config.secrets,
    )
    return ClaudeDriver(settings)


def _announce(driver: str, message: str, reason: str) -> JsonObject:
    logger.info("%s", message)
    return hive_event("driver", message, driver=driver, reason=reason)

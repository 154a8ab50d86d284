"""Choosing the driver: `echo`, `claude` (echo while claude cannot run), or `auto` (claude when it can run).

auto's rule: claude when `claude` is on PATH and logged in in any way claude accepts (see
`hyperhive_agent.login`), else echo. The choice is said once, plainly, in the log and as a `driver`
event whose `in_use` is what `hivectl status` shows (`claude`, or `echo (fallback: why)`).

Echo stands in for claude only while claude cannot run: a claude that says it is not logged in,
or whose key the API refuses, hands the batch to echo, and the agent tries claude again as soon
as its login files change (the operator fixed the key, logged in) or every `RECHECK_S` seconds.
"""

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hyperhive_agent.config import AgentConfig
from hyperhive_agent.drivers.base import Driver
from hyperhive_agent.drivers.claude import CLAUDE_EXECUTABLE, ClaudeDriver, ClaudeSettings
from hyperhive_agent.drivers.echo import EchoDriver
from hyperhive_agent.errors import ClaudeUnavailableError, SettingsError
from hyperhive_agent.events import EventLog, JsonObject, Redactor, hive_event
from hyperhive_agent.login import find_login, login_secrets, login_signature
from hyperhive_agent.prompt import Identity, load_role
from hyperhive_agent.tools import AgentTools, Message

logger = logging.getLogger(__name__)

# While claude cannot run, it is tried again this often even if its login files did not change.
RECHECK_S = 300.0


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
    login = find_login(config.claude_dir, config.login_env)
    if login is None:
        return ClaudeStatus(False, f"claude is not logged in: no credentials in {config.claude_dir}")
    return ClaudeStatus(True, f"{path}, logged in with {login.how}")


class FallbackDriver:
    """claude while it can run; echo while it cannot (not installed, not logged in), retrying claude later."""

    def __init__(
        self,
        primary: ClaudeDriver,
        fallback: Driver,
        *,
        status: Callable[[], ClaudeStatus],
        signature: Callable[[], object],
        on_login_change: Callable[[], None] = lambda: None,
        unavailable: str | None = None,
        recheck_s: float = RECHECK_S,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self._status = status
        self._signature = signature
        self._on_login_change = on_login_change
        self._recheck_s = recheck_s
        # Why claude is not answering now (None: it is).
        self._unavailable = unavailable
        self._since = time.monotonic()
        self._login_seen = signature()

    @property
    def name(self) -> str:
        """The driver answering now."""
        return self.fallback.name if self._unavailable is not None else self.primary.name

    @property
    def in_use(self) -> str:
        """What answers now, and why when it is the fallback: `claude` or `echo (fallback: why)`."""
        if self._unavailable is None:
            return self.primary.name
        return f"{self.fallback.name} (fallback: {self._unavailable})"

    def run_turn(self, messages: Sequence[Message], tools: AgentTools, events: EventLog) -> None:
        """Run claude's turn; while claude cannot run, echo this batch instead.

        Raises:
            TurnFailedError: claude hung or crashed.
            ConnectionLostError: the hive went away mid-turn.
        """
        retrying = self._unavailable is not None and self._worth_retrying()
        if self._unavailable is None or retrying:
            try:
                self.primary.run_turn(messages, tools, events)
            except ClaudeUnavailableError as exc:
                changed = self._unavailable != exc.reason
                self._unavailable = exc.reason
                self._since = time.monotonic()
                self._login_seen = self._signature()
                if changed:
                    self._announce(
                        events,
                        f"driver claude: {exc.reason}; {self.fallback.name} answers until claude can run "
                        f"(tried again when its login changes, or in {self._recheck_s:g} s)",
                        exc.reason,
                        warn=True,
                    )
            else:
                if retrying:
                    self._unavailable = None
                    self._announce(events, "driver claude: claude runs again", "claude runs again")
                return
        self.fallback.run_turn(messages, tools, events)

    def cancel(self) -> None:
        """Cancel whichever driver is running."""
        self.primary.cancel()
        self.fallback.cancel()

    def rest(self, idle_s: float) -> None:
        """Let both drivers let go of what they hold."""
        self.primary.rest(idle_s)
        self.fallback.rest(idle_s)

    def _worth_retrying(self) -> bool:
        signature = self._signature()
        changed = signature != self._login_seen
        if changed:
            self._login_seen = signature
            self._on_login_change()
        if not (changed or time.monotonic() - self._since >= self._recheck_s):
            return False
        status = self._status()
        if not status.usable:
            self._since = time.monotonic()
            return False
        return True

    def _announce(self, events: EventLog, message: str, reason: str, *, warn: bool = False) -> None:
        logger.log(logging.WARNING if warn else logging.INFO, "%s", message)
        events.emit(hive_event("driver", message, driver=self.name, reason=reason, in_use=self.in_use))


def create_driver(config: AgentConfig, socket_path: Path, redactor: Redactor) -> tuple[Driver, JsonObject]:
    """The driver `config.driver` asks for, and the `driver` event saying which and why (also logged).

    `redactor` learns the secrets of a login that appears while the agent runs.

    Raises:
        SettingsError: `config.driver` names no driver.
    """
    echo = EchoDriver(guard=config.echo_guard)
    if not config.echo_guard:
        logger.warning("the echo guard is off (HIVE_ECHO_GUARD=0): echo answers echoes; for tests only")
    if config.driver == "echo":
        return echo, _announce("echo", "driver echo (asked for)", "asked for", "echo")
    if config.driver not in ("auto", "claude"):
        raise SettingsError(f"unknown driver {config.driver!r}; choose one of auto, claude, echo")
    status = claude_status(config)
    driver = FallbackDriver(
        _claude_driver(config, socket_path, redactor),
        echo,
        status=lambda: claude_status(config),
        signature=lambda: login_signature(config.claude_dir),
        on_login_change=lambda: redactor.add(login_secrets(config.claude_dir, config.login_env)),
        # asked for by name, claude gets its chance even when it looks unusable; auto waits for a login
        unavailable=None if config.driver == "claude" or status.usable else status.reason,
    )
    if config.driver == "claude":
        message = "driver claude (asked for; echo while claude cannot run)"
        return driver, _announce("claude", message, "asked for", driver.in_use)
    verb = "using claude" if status.usable else "using echo"
    return driver, _announce(driver.name, f"driver auto: {verb} ({status.reason})", status.reason, driver.in_use)


def _claude_driver(config: AgentConfig, socket_path: Path, redactor: Redactor) -> ClaudeDriver:
    settings = ClaudeSettings(
        identity=Identity(config.name, load_role(config.role, config.work_dir)),
        socket_path=socket_path,
        work_dir=config.work_dir,
        turn_timeout_s=config.turn_timeout_s,
        secrets=config.secrets,
        keep_alive_s=config.claude_keep_alive_s,
        tools=config.claude_tools,
        permission_mode=config.permission_mode,
        model=config.claude_model,
        add_dirs=config.add_dirs,
        settings_file=config.settings_file,
    )
    return ClaudeDriver(settings, redactor=redactor)


def _announce(driver: str, message: str, reason: str, in_use: str) -> JsonObject:
    logger.info("%s", message)
    return hive_event("driver", message, driver=driver, reason=reason, in_use=in_use)

"""The claude driver: claude-code runs each turn, with the hive as its MCP server.

claude answers by calling `mcp__hive__send` itself, through `hive-agent mcp` (configured on
claude's command line, `alwaysLoad` so the hive tools are in the first request, with no
ToolSearch round trip). One `claude -p --input-format stream-json` process serves turn after
turn (each prompt is one stream-json user message; the turn ends at claude's `result` event), so
a turn does not pay claude's start-up. Every stream-json line claude prints becomes a turn event,
and each `result` is followed by a `usage` event with what the turn used (`hyperhive_agent.usage`).

The session id is kept in `<work dir>/.hive-claude-session`: a claude started again (after a
crash, a hang, an agent restart) resumes it; a session claude cannot resume is dropped and the
turn rerun once in a new one. A turn past the timeout is killed with the whole process group
(claude, its MCP bridge, their children). A claude that is not logged in, or whose credentials
the API refuses (401), raises `ClaudeUnavailableError` at once instead of retrying for minutes.

What claude may do is the agent's settings, from the daemon: the built-in tools it is offered
(`--tools`) and may use without asking (`--allowedTools`), its permission mode and model. All of it
is on claude's command line, and claude reads no settings from the work dir (`--setting-sources
user`, or only the operator's file the daemon binds read-only): nothing the agent can write widens
its own tools.
"""

import json
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from hyperhive_agent import wire
from hyperhive_agent.config import DEFAULT_PERMISSION_MODE, KEEP_ALIVE_S, WORKING_SET
from hyperhive_agent.drivers._process import ClaudeProcess, Ending
from hyperhive_agent.errors import ClaudeUnavailableError, TurnFailedError
from hyperhive_agent.events import EventLog, Redactor, hive_event
from hyperhive_agent.prompt import Identity, build_prompt
from hyperhive_agent.tools import AgentTools, Message
from hyperhive_agent.usage import UsageMeter

logger = logging.getLogger(__name__)

CLAUDE_EXECUTABLE = "claude"
SESSION_FILE = ".hive-claude-session"
# claude -p may use the hive's tools without asking (nobody is there to ask), and the agent's own ...
ALLOWED_TOOLS = ("mcp__hive",)
# ... except these, which claude then does not offer the model at all: the loop owns the
# agent's inbox (it takes the messages and acknowledges them once their turn is done) and its
# event log.
DISALLOWED_TOOLS = ("mcp__hive__report_events", "mcp__hive__recv", "mcp__hive__ack")
# Events reach the daemon at least this often while claude runs, so `hivectl logs` stays live.
FLUSH_EVERY_S = 0.5
# A claude asked to end between turns (its stdin closed) gets this long to exit on its own.
CLOSE_GRACE_S = 2.0
TAIL_LINES = 20
NOT_LOGGED_IN = "not logged in"
CANNOT_RESUME = ("no conversation found", "--resume requires a valid session")
AUTH_FAILED_STATUS = 401
AUTH_FAILED_ERROR = "authentication_failed"


@dataclass(frozen=True, slots=True)
class ClaudeSettings:
    """How the driver runs claude for one agent."""

    identity: Identity
    socket_path: Path
    work_dir: Path
    turn_timeout_s: float
    executable: str = CLAUDE_EXECUTABLE
    secrets: tuple[str, ...] = field(default=(), repr=False)
    # How long an idle claude is kept for the next turn; 0: a fresh claude per turn (resuming the
    # session), as before keep-alive existed.
    keep_alive_s: float = KEEP_ALIVE_S
    # Tool names or rules ("Bash(git *)"): their built-in tools are offered, and the rules allowed.
    tools: tuple[str, ...] = WORKING_SET
    permission_mode: str = DEFAULT_PERMISSION_MODE
    model: str | None = None
    add_dirs: tuple[str, ...] = ()
    # The operator's settings, read-only (the daemon's bind): claude then reads no other settings
    # file. None: only the user's settings (claude's config dir), never the work dir's.
    settings_file: Path | None = None


@dataclass(slots=True)
class _Turn:
    """What claude did during one turn."""

    ending: Ending | None = None
    saw_init: bool = False
    result: dict[str, Any] | None = None
    # Why the API refused claude's credentials, when it did (claude would retry that for minutes).
    auth_error: str | None = None
    exit_code: int | None = None
    stderr: deque[str] = field(default_factory=lambda: deque[str](maxlen=TAIL_LINES))
    text: deque[str] = field(default_factory=lambda: deque[str](maxlen=TAIL_LINES))

    def said(self, *needles: str) -> bool:
        """Whether claude's plain output, stderr or result text contains one of `needles` (any case)."""
        result_text = str(self.result.get("result", "")) if self.result else ""
        lines = [line.lower() for line in (*self.stderr, *self.text, result_text)]
        return any(needle in line for line in lines for needle in needles)


class ClaudeDriver:
    """Runs turns through one long-lived `claude -p --input-format stream-json` (restarted when needed)."""

    def __init__(self, settings: ClaudeSettings, *, redactor: Redactor | None = None) -> None:
        self.settings = settings
        self._redactor = redactor or Redactor(settings.secrets)
        self._cancelled = threading.Event()
        self._process: ClaudeProcess | None = None
        # Prompts the current process has taken; its first one opens the session when not resumed.
        self._prompts = 0
        self._resumed = False
        self._session: str | None = None
        self._meter = UsageMeter()

    @property
    def name(self) -> str:
        """Always `claude`."""
        return "claude"

    @property
    def session_path(self) -> Path:
        """Where the session id to resume is kept, in the work dir."""
        return self.settings.work_dir / SESSION_FILE

    @property
    def pid(self) -> int | None:
        """The running claude's pid, if one runs."""
        process = self._process
        return process.pid if process is not None and process.alive() else None

    def command(self, session: str | None) -> list[str]:
        """claude's command line, resuming `session` when given.

        `--allowedTools`/`--disallowedTools` take every following argument, so they come last.
        """
        settings = self.settings
        argv = [settings.executable, "-p", "--input-format", "stream-json"]
        argv += ["--output-format", "stream-json", "--verbose"]
        argv += [f"--mcp-config={self.mcp_config()}", "--strict-mcp-config"]
        # the operator's settings (the login) only: the work dir's .claude/ is the agent's to write
        if settings.settings_file is not None:
            argv += ["--setting-sources=", f"--settings={settings.settings_file}"]
        else:
            argv += ["--setting-sources", "user"]
        argv += ["--permission-mode", settings.permission_mode]
        if settings.model is not None:
            argv += ["--model", settings.model]
        # a dir the backend did not bind (not applied there) is left out, not an error of claude's
        argv += [f"--add-dir={path}" for path in settings.add_dirs if Path(path).is_dir()]
        if session is not None:
            argv += ["--resume", session]
        # the built-in tools offered at all: a tool left out cannot be allowed by any settings file
        builtins = dict.fromkeys(t.split("(", 1)[0] for t in settings.tools if not t.startswith("mcp__"))
        argv.append(f"--tools={','.join(builtins)}")
        argv += ["--allowedTools", *ALLOWED_TOOLS, *settings.tools, "--disallowedTools", *DISALLOWED_TOOLS]
        return argv

    def mcp_config(self) -> str:
        """The hive's MCP server for claude, as the JSON `--mcp-config` takes.

        On the command line rather than in a file: the work dir is the agent's to write, and a
        server it added there would get the hive's trust (`mcp__hive` is allowed without asking).
        """
        server = {
            # this interpreter, not the hive-agent script: it works in any install (venv, nix, checkout)
            "command": sys.executable,
            # -I: claude starts it in the work dir, which must not be able to shadow the bridge.
            "args": ["-I", "-m", "hyperhive_agent", "mcp"],
            "env": {"HIVE_SOCKET": str(self.settings.socket_path)},
            # every hive tool in the first request: without it claude defers MCP tools behind
            # ToolSearch, a model round trip before the first send of every session
            "alwaysLoad": True,
        }
        return json.dumps({"mcpServers": {"hive": server}}, separators=(",", ":"))

    def run_turn(self, messages: Sequence[Message], tools: AgentTools, events: EventLog) -> None:
        """Hand `messages` to claude as one prompt; claude replies through the hive tools itself.

        Raises:
            ClaudeUnavailableError: claude is not installed, not logged in, or its credentials were refused.
            TurnFailedError: claude hung past the turn timeout, crashed, or the turn was cancelled.
        """
        deadline = time.monotonic() + self.settings.turn_timeout_s
        turn = _Turn()
        for _ in range(2):
            process = self._ensure_process()
            reused = self._prompts > 0
            new_session = not self._resumed and self._prompts == 0
            prompt = build_prompt(self.settings.identity, messages, new_session=new_session)
            process.send({"type": "user", "message": {"role": "user", "content": prompt}})
            self._prompts += 1
            turn = self._follow(process, events, deadline)
            if turn.ending is Ending.RESULT and not turn.saw_init:
                # an error before the session even started (it cannot be resumed, no login):
                # claude exits next; its last words tell which
                self._follow(process, events, min(deadline, time.monotonic() + CLOSE_GRACE_S), turn)
            cannot_resume = self._resumed and not turn.saw_init and turn.said(*CANNOT_RESUME)
            if turn.ending is Ending.RESULT and turn.auth_error is None and not cannot_resume:
                if self.settings.keep_alive_s <= 0:
                    self._discard(grace_s=CLOSE_GRACE_S)
                break
            turn.exit_code = self._discard(grace_s=0 if turn.ending is not Ending.EXITED else CLOSE_GRACE_S)
            if reused and turn.ending is Ending.EXITED and not turn.saw_init:
                # it died between turns, just before this prompt reached it: not this turn's fault
                logger.warning("claude exited between turns (status %s); starting it again", turn.exit_code)
                continue
            if cannot_resume:
                reason = f"claude could not resume session {self._session} ({self._tail(turn)}); starting a new session"
                logger.warning("%s", reason)
                events.emit(hive_event("session", reason, session_id=self._session))
                self._save_session(None)
                continue
            break
        try:
            self._judge(turn)
        except ClaudeUnavailableError:
            # the next try must start a claude that reads its login afresh ...
            self._discard(grace_s=0)
            if not self._resumed:
                # ... and not resume a session born in this failed turn: its only content is a
                # prompt the fallback answered, which claude would answer a second time
                self._save_session(None)
                self._session = None
            raise

    def rest(self, idle_s: float) -> None:
        """End an idle claude once the agent has had no turn for `keep_alive_s` seconds.

        It holds a few hundred MB; the next turn starts another on the same session.
        """
        if idle_s >= self.settings.keep_alive_s and self._process is not None:
            logger.info("no turn for %.0f s: ending claude until the next one", idle_s)
            self._discard(grace_s=CLOSE_GRACE_S)

    def cancel(self) -> None:
        """Kill a running claude (its whole group); safe from a signal handler."""
        self._cancelled.set()
        process = self._process
        if process is not None:
            process.terminate()

    def _ensure_process(self) -> ClaudeProcess:
        process = self._process
        if process is not None and process.alive():
            return process
        if process is not None:
            # it ended between turns (crashed while idle): start another on the same session
            code = self._discard(grace_s=0)
            logger.warning("claude exited between turns (status %s); starting it again", code)
        if self._cancelled.is_set():
            raise TurnFailedError("cancelled: the agent is stopping")
        session = self._load_session()
        try:
            process = ClaudeProcess(self.command(session), cwd=self.settings.work_dir)
        except FileNotFoundError:
            raise ClaudeUnavailableError(f"claude is not installed: no {self.settings.executable!r} on PATH") from None
        except OSError as exc:
            raise TurnFailedError(f"cannot start claude: {exc.strerror or exc}") from exc
        self._process = process
        self._prompts = 0
        self._resumed = session is not None
        self._session = session
        return process

    def _discard(self, *, grace_s: float) -> int | None:
        """End the current claude process, if any; its exit status."""
        process, self._process = self._process, None
        if process is None:
            return None
        return process.close(grace_s=grace_s)

    def _follow(self, process: ClaudeProcess, events: EventLog, deadline: float, turn: _Turn | None = None) -> _Turn:
        """Follow claude's output until the turn ends; with `turn`, read what follows its result into it."""
        draining = turn is not None
        turn = turn or _Turn()

        def on_stderr(line: str) -> None:
            if line.strip():
                turn.stderr.append(self._redactor.text(line))

        ending = process.follow(
            deadline=deadline,
            cancelled=self._cancelled,
            on_stdout=lambda line: self._on_stdout(line, turn, events),
            on_stderr=on_stderr,
            on_idle=events.flush,
            idle_every_s=FLUSH_EVERY_S,
        )
        if not draining:
            turn.ending = ending
        events.flush()
        return turn

    def _on_stdout(self, line: str, turn: _Turn, events: EventLog) -> bool:
        """Handle one line of claude's output; True when the turn is over."""
        if not line.strip():
            return False
        try:
            decoded: object = json.loads(line)
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict):
            # not stream-json: claude's plain complaints ("No conversation found ...") land here
            turn.text.append(self._redactor.text(line))
            events.emit(hive_event("output", line))
            return False
        event = cast(dict[str, Any], decoded)
        events.emit(event)
        kind, subtype = event.get("type"), event.get("subtype")
        session = event.get("session_id")
        if kind in ("system", "result") and isinstance(session, str) and session and session != self._session:
            self._session = session
            self._save_session(session)
        if kind == "system" and subtype == "init":
            turn.saw_init = True
        elif kind == "system" and subtype == "api_retry" and _refused_credentials(event):
            turn.auth_error = f"the API refused claude's credentials ({event.get('error_status')} {event.get('error')})"
            return True
        elif kind == "result":
            turn.result = event
            # what the turn used, right after claude's own account of it: the daemon's budgets count it
            # (a result that used nothing, such as "Not logged in", reports nothing)
            usage = self._meter.turn(event)
            if usage["cost_usd"] or any(usage[key] for key in wire.USAGE_TOKEN_FIELDS):
                events.emit(usage)
            if event.get("api_error_status") == AUTH_FAILED_STATUS:
                turn.auth_error = (
                    f"the API refused claude's credentials ({self._redactor.text(str(event.get('result')))})"
                )
            return True
        return False

    def _judge(self, turn: _Turn) -> None:
        if turn.ending is Ending.CANCELLED:
            raise TurnFailedError("cancelled: the agent is stopping")
        if turn.ending is Ending.TIMED_OUT:
            raise TurnFailedError(f"claude did not finish within {self.settings.turn_timeout_s:g} s; killed it")
        if turn.auth_error is not None:
            raise ClaudeUnavailableError(f"claude is not logged in: {turn.auth_error}")
        if turn.said(NOT_LOGGED_IN):
            raise ClaudeUnavailableError(f"claude is not logged in (it said: {self._tail(turn)})")
        if turn.ending is Ending.EXITED:
            raise TurnFailedError(f"claude exited with status {turn.exit_code}: {self._tail(turn)}")
        if turn.result is not None and turn.result.get("is_error"):
            text = self._redactor.text(str(turn.result.get("result") or turn.result.get("subtype")))
            raise TurnFailedError(f"claude reported an error: {text}")

    def _tail(self, turn: _Turn) -> str:
        lines = [*turn.text, *turn.stderr]
        if turn.result is not None and turn.result.get("is_error"):
            lines.append(self._redactor.text(str(turn.result.get("result") or turn.result.get("subtype"))))
        return " | ".join(line.strip() for line in (lines or ["no output"])[-5:])

    def _load_session(self) -> str | None:
        return (_read_text(self.session_path) or "").strip() or None

    def _save_session(self, session: str | None) -> None:
        if session is None:
            self.session_path.unlink(missing_ok=True)
        else:
            self.session_path.write_text(session + "\n")


def _refused_credentials(event: dict[str, Any]) -> bool:
    return event.get("error_status") == AUTH_FAILED_STATUS or event.get("error") == AUTH_FAILED_ERROR


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, IsADirectoryError):
        return None

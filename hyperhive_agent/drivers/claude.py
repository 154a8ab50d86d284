"""The claude driver: one `claude -p` run per turn, with the hive as claude's MCP server.

claude answers by calling `mcp__hive__send` itself, through `hive-agent mcp` (configured in
`<work dir>/.hive-mcp.json`). Every stream-json line claude prints becomes a turn event. The
session id is kept in `<work dir>/.hive-claude-session` and resumed next turn; a session claude
cannot resume is dropped and the turn rerun once in a new session. A run past the turn timeout
is killed with its whole process group (claude, its MCP bridges, their children).
"""

import ctypes
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from hyperhive_agent.errors import ClaudeUnavailableError, TurnFailedError
from hyperhive_agent.events import EventLog, Redactor, hive_event
from hyperhive_agent.prompt import Identity, build_prompt
from hyperhive_agent.tools import AgentTools, Message

logger = logging.getLogger(__name__)

CLAUDE_EXECUTABLE = "claude"
MCP_CONFIG_FILE = ".hive-mcp.json"
SESSION_FILE = ".hive-claude-session"
# claude -p may use the hive's tools without asking (nobody is there to ask) ...
ALLOWED_TOOLS = ("mcp__hive",)
# ... except these: the loop owns the agent's inbox and its event log.
DISALLOWED_TOOLS = ("mcp__hive__report_events", "mcp__hive__recv")
# Linux caps one argument at 128 KiB; a larger prompt goes to claude's stdin instead.
MAX_PROMPT_ARG_BYTES = 100_000
KILL_GRACE_S = 2.0
# Events reach the daemon at least this often while claude runs, so `hivectl logs` stays live.
FLUSH_EVERY_S = 0.5
# After claude exits, output still in the pipes is read until they stay quiet this long.
DRAIN_S = 0.2
TAIL_LINES = 20
CHUNK_BYTES = 64 * 1024
NOT_LOGGED_IN = "not logged in"
NO_CONVERSATION = "no conversation found"
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class ClaudeSettings:
    """How the driver runs claude for one agent."""

    identity: Identity
    socket_path: Path
    work_dir: Path
    turn_timeout_s: float
    executable: str = CLAUDE_EXECUTABLE
    secrets: tuple[str, ...] = field(default=(), repr=False)


@dataclass(slots=True)
class _Run:
    """What one claude process did."""

    exit_code: int | None = None
    timed_out: bool = False
    saw_init: bool = False
    session_id: str | None = None
    result: dict[str, Any] | None = None
    stderr: deque[str] = field(default_factory=lambda: deque[str](maxlen=TAIL_LINES))
    text: deque[str] = field(default_factory=lambda: deque[str](maxlen=TAIL_LINES))

    def said(self, needle: str) -> bool:
        """Whether claude's plain output, stderr or result text contains `needle` (any case)."""
        result_text = str(self.result.get("result", "")) if self.result else ""
        return any(needle in line.lower() for line in (*self.stderr, *self.text, result_text))


class ClaudeDriver:
    """Runs each turn as `claude -p PROMPT --mcp-config=FILE --strict-mcp-config --output-format stream-json`."""

    def __init__(self, settings: ClaudeSettings) -> None:
        self.settings = settings
        self._redactor = Redactor(settings.secrets)
        self._cancelled = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        """Always `claude`."""
        return "claude"

    @property
    def mcp_config_path(self) -> Path:
        """The `--mcp-config` file, in the work dir."""
        return self.settings.work_dir / MCP_CONFIG_FILE

    @property
    def session_path(self) -> Path:
        """Where the session id to resume is kept, in the work dir."""
        return self.settings.work_dir / SESSION_FILE

    def run_turn(self, messages: Sequence[Message], tools: AgentTools, events: EventLog) -> None:
        """Run claude once over `messages`; claude replies through the hive tools itself.

        Raises:
            ClaudeUnavailableError: claude is not installed or not logged in.
            TurnFailedError: claude hung past the turn timeout, crashed, or the turn was cancelled.
        """
        self._write_mcp_config()
        session = self._load_session()
        run = self._run(messages, events, session)
        if session is not None and run.exit_code != 0 and not run.saw_init and run.said(NO_CONVERSATION):
            reason = f"claude could not resume session {session} ({self._tail(run)}); starting a new session"
            logger.warning("%s", reason)
            events.emit(hive_event("session", reason, session_id=session))
            self._save_session(None)
            run = self._run(messages, events, None)
        self._judge(run)

    def cancel(self) -> None:
        """Kill a running claude (its whole group); safe from a signal handler."""
        self._cancelled.set()
        process = self._process
        if process is not None:
            _signal_group(process.pid, signal.SIGTERM)

    def command(self, prompt: str | None, session: str | None) -> list[str]:
        """claude's command line; `prompt` None means claude reads it from stdin.

        The prompt comes first, right after `-p`: `--allowedTools`/`--disallowedTools` take every
        following argument, so they come last.
        """
        argv = [self.settings.executable, "-p"]
        if prompt is not None:
            argv.append(prompt)
        argv += [f"--mcp-config={self.mcp_config_path}", "--strict-mcp-config"]
        argv += ["--output-format", "stream-json", "--verbose"]
        if session is not None:
            argv += ["--resume", session]
        argv += ["--allowedTools", *ALLOWED_TOOLS, "--disallowedTools", *DISALLOWED_TOOLS]
        return argv

    def _run(self, messages: Sequence[Message], events: EventLog, session: str | None) -> _Run:
        prompt = build_prompt(self.settings.identity, messages, new_session=session is None)
        on_stdin = len(prompt.encode()) > MAX_PROMPT_ARG_BYTES
        argv = self.command(None if on_stdin else prompt, session)
        try:
            process = subprocess.Popen(
                argv,
                cwd=self.settings.work_dir,
                stdin=subprocess.PIPE if on_stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # its own group, so a hung claude is killed with every child it started
                start_new_session=True,
                preexec_fn=_die_with_parent_hook(),
            )
        except FileNotFoundError:
            raise ClaudeUnavailableError(f"claude is not installed: no {self.settings.executable!r} on PATH") from None
        except OSError as exc:
            raise TurnFailedError(f"cannot start claude: {exc.strerror or exc}") from exc
        self._process = process
        try:
            if on_stdin:
                assert process.stdin is not None
                _feed_in_background(process.stdin, prompt.encode())
            return self._follow(process, events)
        finally:
            self._process = None
            # claude is gone; anything it left behind in its group (a stuck MCP bridge) goes too
            _signal_group(process.pid, signal.SIGKILL)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()

    def _follow(self, process: subprocess.Popen[bytes], events: EventLog) -> _Run:
        run = _Run()
        assert process.stdout is not None
        assert process.stderr is not None
        buffers = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
        stdout_fd = process.stdout.fileno()
        deadline = time.monotonic() + self.settings.turn_timeout_s
        last_flush = time.monotonic()
        with selectors.DefaultSelector() as selector:
            for fd in buffers:
                selector.register(fd, selectors.EVENT_READ)
            while selector.get_map():
                if self._cancelled.is_set():
                    self._kill(process)
                    raise TurnFailedError("cancelled: the agent is stopping")
                now = time.monotonic()
                if now >= deadline:
                    run.timed_out = True
                    self._kill(process)
                    break
                exited = process.poll() is not None
                wait_s = DRAIN_S if exited else min(deadline - now, FLUSH_EVERY_S)
                ready = selector.select(wait_s)
                if not ready and exited:
                    break  # claude is gone and its pipes are quiet (a child may still hold them)
                for key, _ in ready:
                    fd = key.fd
                    data = os.read(fd, CHUNK_BYTES)
                    if not data:
                        selector.unregister(fd)
                        data = b"\n"  # EOF ends a last line that had no newline
                    lines = _split_lines(buffers[fd], data)
                    for line in lines:
                        if fd == stdout_fd:
                            self._on_stdout(line, run, events)
                        elif line.strip():
                            run.stderr.append(self._redactor.text(line))
                if time.monotonic() - last_flush >= FLUSH_EVERY_S:
                    events.flush()
                    last_flush = time.monotonic()
        if not run.timed_out:
            try:
                run.exit_code = process.wait(timeout=max(deadline - time.monotonic(), DRAIN_S))
            except subprocess.TimeoutExpired:
                run.timed_out = True
                self._kill(process)
        if run.timed_out:
            run.exit_code = process.poll()
        events.flush()
        return run

    def _on_stdout(self, line: str, run: _Run, events: EventLog) -> None:
        if not line.strip():
            return
        try:
            decoded: object = json.loads(line)
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict):
            # not stream-json: claude's plain complaints ("Not logged in ...") land here
            run.text.append(self._redactor.text(line))
            events.emit(hive_event("output", line))
            return
        event = cast(dict[str, Any], decoded)
        events.emit(event)
        kind, subtype = event.get("type"), event.get("subtype")
        if kind == "system" and subtype == "init":
            run.saw_init = True
        if kind == "result":
            run.result = event
        session = event.get("session_id")
        if kind in ("system", "result") and isinstance(session, str) and session and session != run.session_id:
            run.session_id = session
            self._save_session(session)

    def _judge(self, run: _Run) -> None:
        timeout_s = self.settings.turn_timeout_s
        if run.timed_out:
            raise TurnFailedError(f"claude did not finish within {timeout_s:g} s; killed it")
        if run.said(NOT_LOGGED_IN):
            raise ClaudeUnavailableError(f"claude is not logged in (it said: {self._tail(run)})")
        if run.exit_code != 0:
            raise TurnFailedError(f"claude exited with status {run.exit_code}: {self._tail(run)}")
        if run.result is not None and run.result.get("is_error"):
            text = self._redactor.text(str(run.result.get("result") or run.result.get("subtype")))
            raise TurnFailedError(f"claude reported an error: {text}")

    def _tail(self, run: _Run) -> str:
        lines = [*run.text, *run.stderr] or ["no output"]
        return " | ".join(line.strip() for line in lines[-5:])

    def _kill(self, process: subprocess.Popen[bytes]) -> None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()

    def _write_mcp_config(self) -> None:
        # this interpreter, not the hive-agent script: it works in any install (venv, nix, checkout)
        server = {
            "command": sys.executable,
            # -I: claude starts it in the work dir, which must not be able to shadow the bridge.
            "args": ["-I", "-m", "hyperhive_agent", "mcp"],
            "env": {"HIVE_SOCKET": str(self.settings.socket_path)},
        }
        text = json.dumps({"mcpServers": {"hive": server}}, indent=2) + "\n"
        if _read_text(self.mcp_config_path) != text:
            self.mcp_config_path.write_text(text)

    def _load_session(self) -> str | None:
        return (_read_text(self.session_path) or "").strip() or None

    def _save_session(self, session: str | None) -> None:
        if session is None:
            self.session_path.unlink(missing_ok=True)
        else:
            self.session_path.write_text(session + "\n")


def _split_lines(buffer: bytearray, data: bytes) -> list[str]:
    buffer += data
    *complete, rest = bytes(buffer).split(b"\n")
    buffer[:] = rest
    return [line.decode(errors="replace") for line in complete]


def _feed_in_background(stdin: IO[bytes], data: bytes) -> None:
    def feed() -> None:
        try:
            stdin.write(data)
            stdin.close()
        except OSError:
            logger.debug("claude closed its stdin before reading the whole prompt")

    # daemon: a claude that never reads its stdin must not keep the agent alive
    threading.Thread(target=feed, name="prompt->claude", daemon=True).start()


def _signal_group(pid: int, signum: signal.Signals) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A preexec hook asking Linux to SIGKILL claude if the agent dies without cleaning up."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return hook


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, IsADirectoryError):
        return None

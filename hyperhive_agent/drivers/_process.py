"""One running `claude -p --input-format stream-json` process: prompts in on stdin, events out on stdout.

A process serves turn after turn: each prompt is one stream-json user message, and the turn ends
at claude's `result` event. Reading is bounded by a deadline and a cancel flag; killing takes the
whole process group (claude, its MCP bridge, anything they started).
"""

import ctypes
import json
import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

KILL_GRACE_S = 2.0
# After claude exits, output still in the pipes is read until they stay quiet this long.
DRAIN_S = 0.2
CHUNK_BYTES = 64 * 1024
PR_SET_PDEATHSIG = 1

Event = dict[str, Any]


class Ending(Enum):
    """Why reading a turn's events stopped."""

    RESULT = "result"  # claude printed its `result` event: the turn is over, the process lives on
    EXITED = "exited"  # claude exited (or closed its output) before a result
    TIMED_OUT = "timed_out"  # the deadline passed
    CANCELLED = "cancelled"  # the agent is stopping
    STOPPED = "stopped"  # the event handler asked to stop (e.g. the API refused the credentials)


class ClaudeProcess:
    """A claude child in its own process group, with its stdout split into lines as they come."""

    def __init__(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None) -> None:
        """Start claude.

        Raises:
            FileNotFoundError: the executable does not exist.
            OSError: it could not be started.
        """
        self.argv = list(argv)
        self.started_at = time.monotonic()
        self._popen = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # its own group, so a hung claude is killed with every child it started
            start_new_session=True,
            preexec_fn=_die_with_parent_hook(),
        )
        assert self._popen.stdout is not None
        assert self._popen.stderr is not None
        self._stdout_fd = self._popen.stdout.fileno()
        self._buffers = {self._stdout_fd: bytearray(), self._popen.stderr.fileno(): bytearray()}
        self._open_fds = set(self._buffers)
        self._writer: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def exit_code(self) -> int | None:
        """claude's exit status once it has exited (negative: killed by that signal)."""
        return self._popen.poll()

    def alive(self) -> bool:
        """Whether claude still runs and can take a prompt."""
        return self._popen.poll() is None and self._stdout_fd in self._open_fds

    def send(self, message: Event) -> None:
        """Write one stream-json line to claude's stdin, from a helper thread.

        A claude that stops reading its stdin must not block the agent: the thread is a daemon and
        the turn's deadline still holds.
        """
        data = (json.dumps(message, ensure_ascii=False) + "\n").encode()
        stdin = self._popen.stdin
        assert stdin is not None

        def write() -> None:
            try:
                stdin.write(data)
                stdin.flush()
            except (OSError, ValueError):
                logger.debug("claude closed its stdin before reading the whole prompt")

        self._writer = threading.Thread(target=write, name="prompt->claude", daemon=True)
        self._writer.start()

    def follow(
        self,
        *,
        deadline: float,
        cancelled: threading.Event,
        on_stdout: Callable[[str], bool],
        on_stderr: Callable[[str], None],
        on_idle: Callable[[], None],
        idle_every_s: float,
    ) -> Ending:
        """Read claude's output line by line until its `result` (as `on_stdout` says), exit or the deadline.

        `on_stdout` gets each stdout line and returns True when the turn is over; `on_stderr` gets
        each stderr line; `on_idle` runs at least every `idle_every_s` seconds (to flush events).
        """
        last_idle = time.monotonic()
        with selectors.DefaultSelector() as selector:
            for fd in self._open_fds:
                selector.register(fd, selectors.EVENT_READ)
            while selector.get_map():
                if cancelled.is_set():
                    return Ending.CANCELLED
                now = time.monotonic()
                if now >= deadline:
                    return Ending.TIMED_OUT
                exited = self._popen.poll() is not None
                ready = selector.select(DRAIN_S if exited else min(deadline - now, idle_every_s))
                if not ready and exited:
                    return Ending.EXITED  # claude is gone and its pipes are quiet (a child may hold them)
                for key, _ in ready:
                    fd = key.fd
                    data = os.read(fd, CHUNK_BYTES)
                    if not data:
                        selector.unregister(fd)
                        self._open_fds.discard(fd)
                        data = b"\n"  # EOF ends a last line that had no newline
                    for line in _split_lines(self._buffers[fd], data):
                        if fd != self._stdout_fd:
                            on_stderr(line)
                        elif on_stdout(line):
                            return Ending.RESULT
                if time.monotonic() - last_idle >= idle_every_s:
                    on_idle()
                    last_idle = time.monotonic()
        return Ending.EXITED

    def wait_exit(self, timeout_s: float) -> int | None:
        """Wait up to `timeout_s` for claude to exit; its status, or None if it still runs."""
        try:
            return self._popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def close(self, *, grace_s: float = KILL_GRACE_S) -> int | None:
        """End claude: close its stdin (a clean end for a waiting claude), then TERM, then KILL its group.

        Whatever else is left in its group (a stuck MCP bridge) is killed too. Returns its status.
        """
        stdin = self._popen.stdin
        if stdin is not None and self._popen.poll() is None:
            try:
                stdin.close()
            except OSError:
                pass
        code = self.wait_exit(grace_s) if grace_s > 0 else self._popen.poll()
        if code is None:
            signal_group(self.pid, signal.SIGTERM)
            code = self.wait_exit(KILL_GRACE_S)
        if code is None:
            signal_group(self.pid, signal.SIGKILL)
            code = self._popen.wait()
        signal_group(self.pid, signal.SIGKILL)
        for stream in (self._popen.stdin, self._popen.stdout, self._popen.stderr):
            if stream is not None:
                _close_quietly(stream)
        return code

    def terminate(self) -> None:
        """SIGTERM claude's group without waiting; safe from a signal handler."""
        signal_group(self.pid, signal.SIGTERM)


def signal_group(pid: int, signum: signal.Signals) -> None:
    """Signal a process group; nothing if it is gone."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _close_quietly(stream: IO[bytes]) -> None:
    try:
        stream.close()
    except OSError:
        pass


def _split_lines(buffer: bytearray, data: bytes) -> list[str]:
    buffer += data
    *complete, rest = bytes(buffer).split(b"\n")
    buffer[:] = rest
    return [line.decode(errors="replace") for line in complete]


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

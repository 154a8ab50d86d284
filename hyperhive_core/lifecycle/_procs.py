"""Processes by pidfd: killing a set of them and knowing, not hoping, that they are gone.

A pid alone can be reused; a pid with its start time names one process, and a pidfd opened while
that still matches holds on to it. `kill_and_wait` SIGKILLs a sandbox's processes (its pid
namespace's init, which takes the namespace with it, and every member of its cgroup) and returns
only the ones still alive when its bound ran out, so a caller reports failure instead of success.
"""

import contextlib
import json
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import anyio

from hyperhive_core.lifecycle._cgroup import AgentCgroup

logger = logging.getLogger(__name__)


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing one.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def alive(pid: int) -> bool:
    """Whether the process exists and has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :][:1] not in ("Z", "X")


@dataclass(frozen=True, slots=True)
class ProcessRef:
    """One process, named by its pid and start time."""

    pid: int
    started: int

    @classmethod
    def of(cls, pid: int) -> "ProcessRef | None":
        """The process with this pid now; None if there is none."""
        started = start_time(pid)
        return None if started is None else cls(pid, started)

    def open(self) -> int | None:
        """A pidfd for this very process, or None if it is gone (or the pid is another's now)."""
        try:
            fd = os.pidfd_open(self.pid)
        except OSError:
            return None
        # Checked after opening: from here on the pidfd cannot come to mean another process.
        if start_time(self.pid) != self.started:
            os.close(fd)
            return None
        return fd


def signal_pidfd(fd: int, signum: signal.Signals) -> None:
    """Send `signum` through a pidfd; a process that already exited is no error."""
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(fd, signum)


async def kill_and_wait(refs: list[ProcessRef], cgroup: AgentCgroup | None, *, within_s: float) -> list[int]:
    """SIGKILL `refs` and every process of `cgroup`, wait until they exited; the pids still alive after `within_s`."""
    survivors: list[int] = []
    with anyio.move_on_after(within_s):
        while True:
            pidfds: dict[int, int] = {}
            for ref in refs:
                if (fd := ref.open()) is not None:
                    pidfds[ref.pid] = fd
            if cgroup is not None:
                cgroup.kill()
                for pid in cgroup.pids():
                    if pid not in pidfds and (ref := ProcessRef.of(pid)) is not None and (fd := ref.open()) is not None:
                        pidfds[pid] = fd
            try:
                survivors = [pid for pid in pidfds if alive(pid)]
                if not survivors:
                    return []
                for fd in pidfds.values():
                    signal_pidfd(fd, signal.SIGKILL)
                for pid in survivors:
                    # A pidfd turns readable when its process exits: no polling.
                    await anyio.wait_readable(pidfds[pid])
            finally:
                for fd in pidfds.values():
                    os.close(fd)
            # Once these are gone, look again: a cgroup member forked meanwhile is killed next round.
    return [pid for pid in survivors if alive(pid)]


@dataclass(frozen=True, slots=True)
class SandboxRecord:
    """What the daemon must kill to be sure an agent's sandbox is gone, kept in the agent's state dir.

    The state dir is outside every sandbox, so an agent cannot point the daemon at a process of its choosing.
    """

    processes: tuple[ProcessRef, ...]
    cgroups: tuple[Path, ...]

    def save(self, path: Path) -> None:
        """Write the record (replacing the file at once)."""
        data = {"processes": [[r.pid, r.started] for r in self.processes], "cgroups": [str(p) for p in self.cgroups]}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "SandboxRecord | None":
        """The record at `path`; None if there is none or it cannot be read."""
        try:
            data = json.loads(path.read_text())
            processes = tuple(ProcessRef(int(pid), int(started)) for pid, started in data["processes"])
            cgroups = tuple(Path(p) for p in data["cgroups"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return cls(processes, cgroups)

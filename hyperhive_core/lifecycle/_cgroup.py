"""One cgroup per agent: every process of the agent is in it, however it forks, setsid()s or detaches.

A cgroup is what the kernel counts an agent's processes and memory by, so it is what the daemon
kills by (`cgroup.kill` on cgroup v2; freeze, kill every member, thaw on v1) and limits by (memory,
process count, CPU). Works on cgroup v2, v1 and the v1/v2 hybrid: each job takes the hierarchy that
can do it (tracking and killing: v2, else v1 freezer; each limit: its v2 controller when enabled,
else its v1 hierarchy). A host without writable cgroups gets a `CgroupHost` that says what it
cannot enforce; the backend warns and falls back to the pid namespace.

Cgroups live beside the daemon, under its own cgroup in each hierarchy, in `hyperhive-<tag>/<agent>`
(the tag names the state dir, so two hives on one host never share one); their paths are also
recorded in the agent's state dir so a daemon started elsewhere still finds an earlier one's.
"""

import contextlib
import errno
import hashlib
import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from hyperhive_core.lifecycle.base import Limits, Usage

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
LIMITED = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000


@dataclass(frozen=True, slots=True)
class _Hierarchy:
    """Where the daemon's own cgroup is in one mounted hierarchy."""

    version: int  # 1 or 2
    controllers: frozenset[str]  # v1: the mount's; v2: those enabled for our children
    own: Path  # the daemon's cgroup dir in this hierarchy


def _read(path: Path) -> str:
    return path.read_text().strip()


def _write(path: Path, value: str) -> None:
    # One write(2) per value: cgroup files take one value per write.
    with path.open("w") as f:
        f.write(value)


def _mounted_hierarchies() -> list[_Hierarchy]:
    """Every cgroup hierarchy mounted here, with the daemon's cgroup in it."""
    own_paths: dict[str, str] = {}  # "2" or a v1 controller -> our path in that hierarchy
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if not controllers:
                own_paths["2"] = path
            for controller in controllers.split(","):
                own_paths.setdefault(controller, path)
    except (OSError, ValueError):
        return []
    found: list[_Hierarchy] = []
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in mountinfo:
        fields = line.split()
        try:
            sep = fields.index("-")
        except ValueError:
            continue
        root, mountpoint, fstype, options = fields[3], Path(fields[4]), fields[sep + 1], fields[sep + 3]
        if fstype == "cgroup2":
            path = own_paths.get("2")
            version, controllers = 2, frozenset[str]()
        elif fstype == "cgroup":
            names = [o for o in options.split(",") if o in (*LIMITED, "cpuacct", "freezer")]
            if not names:
                continue
            path = own_paths.get(names[0])
            version, controllers = 1, frozenset(names)
        else:
            continue
        if path is None or not (path == root or path.startswith(root.rstrip("/") + "/")):
            continue
        own = mountpoint / path[len(root.rstrip("/")) :].lstrip("/")
        if version == 2:
            with contextlib.suppress(OSError):
                controllers = frozenset(_read(own / "cgroup.controllers").split())
        found.append(_Hierarchy(version, controllers, own))
    return found


@dataclass(slots=True)
class AgentCgroup:
    """The cgroups of one agent: one dir per hierarchy in use."""

    dirs: list[Path]
    tracker: Path | None  # the dir that lists and kills every process (v2, else v1 freezer, else any)
    memory: Path | None = None
    memory_version: int = 0
    pids_dir: Path | None = None
    cpu: Path | None = None
    cpuacct: Path | None = None
    cpu_version: int = 0
    limits: Limits = field(default_factory=Limits)

    @property
    def procs_files(self) -> list[Path]:
        """The files a process writes its pid to, to join every hierarchy."""
        return [d / "cgroup.procs" for d in self.dirs]

    def pids(self) -> set[int]:
        """Every process of the agent, in every hierarchy (a process moved out of one is still in another)."""
        found: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        return found

    def kill(self) -> None:
        """SIGKILL every process, atomically against forks where the kernel can."""
        if self.tracker is not None and (self.tracker / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                _write(self.tracker / "cgroup.kill", "1")
                return
        freezer = self.tracker / "freezer.state" if self.tracker is not None else None
        frozen = False
        if freezer is not None and freezer.exists():
            # Frozen, nothing can fork between listing the members and killing them.
            with contextlib.suppress(OSError):
                _write(freezer, "FROZEN")
                frozen = True
        try:
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            if frozen and freezer is not None:
                # A SIGKILL is delivered once the task thaws.
                with contextlib.suppress(OSError):
                    _write(freezer, "THAWED")

    def signal(self, signum: signal.Signals) -> None:
        """Send `signum` to every process."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)

    def usage(self) -> Usage:
        """What the agent uses now."""
        memory = peak = pids = None
        cpu_s = None
        oom = 0
        with contextlib.suppress(OSError, ValueError):
            if self.memory is not None and self.memory_version == 2:
                memory = int(_read(self.memory / "memory.current"))
                with contextlib.suppress(OSError, ValueError):
                    peak = int(_read(self.memory / "memory.peak"))
                oom = _field(self.memory / "memory.events", "oom_kill")
            elif self.memory is not None:
                memory = int(_read(self.memory / "memory.usage_in_bytes"))
                peak = int(_read(self.memory / "memory.max_usage_in_bytes"))
                oom = _field(self.memory / "memory.oom_control", "oom_kill")
        with contextlib.suppress(OSError, ValueError):
            if self.pids_dir is not None:
                pids = int(_read(self.pids_dir / "pids.current"))
        with contextlib.suppress(OSError, ValueError):
            if self.cpu is not None and self.cpu_version == 2:
                cpu_s = _field(self.cpu / "cpu.stat", "usage_usec") / 1e6
            elif self.cpuacct is not None:
                cpu_s = int(_read(self.cpuacct / "cpuacct.usage")) / 1e9
        return Usage(memory_bytes=memory, memory_peak_bytes=peak, pids=pids, cpu_s=cpu_s, oom_kills=oom)

    def oom_eventfd(self) -> int | None:
        """An eventfd that turns readable when the OOM killer fires here (cgroup v1); None where there is none."""
        if self.memory is None or self.memory_version != 1:
            return None
        efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            control = os.open(self.memory / "memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
            try:
                _write(self.memory / "cgroup.event_control", f"{efd} {control}")
            finally:
                os.close(control)
        except OSError:
            os.close(efd)
            return None
        return efd

    def remove(self) -> None:
        """Remove the (empty) dirs; one still busy with a dying process is left for the next start."""
        for d in self.dirs:
            with contextlib.suppress(OSError):
                d.rmdir()


def _field(path: Path, key: str) -> int:
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


class CgroupHost:
    """The cgroup hierarchies this daemon can use, and what they let it enforce."""

    def __init__(self, hierarchies: list[_Hierarchy], tag: str) -> None:
        self.tag = tag
        self._tracker: _Hierarchy | None = None
        self._for: dict[str, _Hierarchy] = {}
        self.problems: list[str] = []
        v2 = next((h for h in hierarchies if h.version == 2), None)
        usable = [h for h in hierarchies if self._prepare(h)]
        v2 = v2 if v2 in usable else None
        v1 = {c: h for h in usable if h.version == 1 for c in h.controllers}
        self._tracker = v2 or v1.get("freezer") or v1.get("pids") or v1.get("memory")
        for controller in (*LIMITED, "cpuacct"):
            if v2 is not None and controller in v2.controllers and self._enable_v2(v2, controller):
                self._for[controller] = v2
            elif controller in v1:
                self._for[controller] = v1[controller]
        # Made only to see that it can be: the first agent makes it again (v2 keeps it when it
        # hands controllers down, which it must be there for).
        keep = {id(h) for h in self._for.values() if h.version == 2}
        for h in usable:
            if id(h) not in keep:
                with contextlib.suppress(OSError):
                    self._parent(h).rmdir()

    @classmethod
    def detect(cls, state_dir: Path) -> "CgroupHost":
        """The cgroups of this host, for the hive whose state dir is `state_dir`."""
        tag = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
        return cls(_mounted_hierarchies(), tag)

    @property
    def tracks(self) -> bool:
        """Whether every process of an agent can be found and killed through its cgroup."""
        return self._tracker is not None

    @property
    def enforced(self) -> list[str]:
        """The limits the kernel enforces here: memory, pids, cpu."""
        return [c for c in LIMITED if c in self._for]

    @property
    def kill_method(self) -> str:
        """How a whole cgroup is killed here."""
        if self._tracker is None:
            return "none"
        if self._tracker.version == 2:
            return "cgroup.kill"
        return "freezer" if "freezer" in self._tracker.controllers else "signals"

    def _parent(self, hierarchy: _Hierarchy) -> Path:
        return hierarchy.own / f"hyperhive-{self.tag}"

    def _prepare(self, hierarchy: _Hierarchy) -> bool:
        """Whether the hive's dir can be made here; made for the test, it waits for the first agent."""
        parent = self._parent(hierarchy)
        try:
            parent.mkdir(exist_ok=True)
        except OSError as exc:
            self.problems.append(f"{hierarchy.own}: {exc.strerror or exc}")
            return False
        return True

    def _enable_v2(self, hierarchy: _Hierarchy, controller: str) -> bool:
        # The hive's own dir must hand the controller down to the agents' dirs; the daemon's
        # cgroup already lists it in cgroup.controllers, so its parent enabled it for us.
        parent = self._parent(hierarchy)
        try:
            if controller not in _read(parent / "cgroup.controllers").split():
                _write(hierarchy.own / "cgroup.subtree_control", f"+{controller}")
            _write(parent / "cgroup.subtree_control", f"+{controller}")
        except OSError as exc:
            self.problems.append(f"cannot enable the {controller} controller under {hierarchy.own}: {exc}")
            return False
        return True

    def close(self) -> None:
        """Remove the hive's cgroup dirs that no agent uses any more (all of them once every agent stopped)."""
        for h in {id(h): h for h in (self._tracker, *self._for.values()) if h is not None}.values():
            with contextlib.suppress(OSError):
                for child in self._parent(h).iterdir():
                    if child.is_dir():
                        with contextlib.suppress(OSError):
                            child.rmdir()
                self._parent(h).rmdir()

    def dirs_of(self, name: str) -> list[Path]:
        """Where agent `name`'s cgroups are (whether or not they exist now)."""
        hierarchies = {id(h): h for h in (self._tracker, *self._for.values()) if h is not None}
        return [self._parent(h) / name for h in hierarchies.values()]

    def leftover_dirs(self) -> list[Path]:
        """Every agent cgroup of this hive that exists now."""
        found: list[Path] = []
        for h in {id(h): h for h in (self._tracker, *self._for.values()) if h is not None}.values():
            with contextlib.suppress(OSError):
                found.extend(p for p in self._parent(h).iterdir() if p.is_dir())
        return found

    def create(self, name: str, limits: Limits) -> AgentCgroup:
        """Fresh cgroups for agent `name` with `limits` (dirs left by an earlier start must be empty).

        Raises:
            OSError: a cgroup could not be made or limited.
        """
        if self._tracker is None:
            raise OSError(errno.ENOTSUP, "no writable cgroup hierarchy")
        dirs: dict[int, Path] = {}

        def dir_for(h: _Hierarchy) -> Path:
            if id(h) not in dirs:
                self._parent(h).mkdir(exist_ok=True)
                path = self._parent(h) / name
                with contextlib.suppress(FileNotFoundError):
                    path.rmdir()  # fresh counters (peak, oom kills) for every start
                path.mkdir(exist_ok=True)
                dirs[id(h)] = path
            return dirs[id(h)]

        group = AgentCgroup(dirs=[], tracker=dir_for(self._tracker), limits=limits)
        if (h := self._for.get("memory")) is not None:
            group.memory, group.memory_version = dir_for(h), h.version
            if limits.memory_bytes is not None:
                _limit_memory(group.memory, h.version, limits.memory_bytes)
        if (h := self._for.get("pids")) is not None:
            group.pids_dir = dir_for(h)
            if limits.pids is not None:
                _write(group.pids_dir / "pids.max", str(limits.pids))
        if (h := self._for.get("cpu")) is not None:
            group.cpu, group.cpu_version = dir_for(h), h.version
            if limits.cpus is not None:
                quota = max(1000, round(limits.cpus * CPU_PERIOD_US))
                if h.version == 2:
                    _write(group.cpu / "cpu.max", f"{quota} {CPU_PERIOD_US}")
                else:
                    _write(group.cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
                    _write(group.cpu / "cpu.cfs_quota_us", str(quota))
        if (h := self._for.get("cpuacct")) is not None:
            group.cpuacct = dir_for(h)
        group.dirs = list(dirs.values())
        return group


def _limit_memory(path: Path, version: int, limit: int) -> None:
    if version == 2:
        _write(path / "memory.max", str(limit))
        # No swap: past its limit the agent is stopped, not slowed down by swapping the host.
        with contextlib.suppress(OSError):
            _write(path / "memory.swap.max", "0")
        return
    _write(path / "memory.limit_in_bytes", str(limit))
    with contextlib.suppress(OSError):
        _write(path / "memory.memsw.limit_in_bytes", str(limit))


def group_of_dirs(dirs: list[Path]) -> AgentCgroup:
    """An agent's cgroups from their recorded paths (an earlier daemon's), enough to list and kill."""
    existing = [d for d in dirs if d.is_dir()]
    tracker = next((d for d in existing if (d / "cgroup.kill").exists()), None)
    tracker = tracker or next((d for d in existing if (d / "freezer.state").exists()), None)
    return AgentCgroup(dirs=existing, tracker=tracker or (existing[0] if existing else None))

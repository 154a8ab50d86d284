"""The local backend, the embedded default: each agent is a child process in a bubblewrap sandbox.

Inside the sandbox the agent is root of its own user namespace with no capabilities and no way to
make another; it sees only its own processes. The root filesystem is read-only; /tmp and /run are
private; the hive's state and run dirs and the host's homes are empty and read-only; the host's
password hashes and ssh host keys cannot be read; its socket dir is bound at /run/hive and its
work dir (with the extra dirs it was given read-write) is the only other writable place. An agent
with `--repo` works in its own clone (`workspace`), and the repository's checkouts are masked.
claude reads the operator's settings file through a read-only bind, never from the claude dir the
agents share read-write: a hook or permission written there would be run or honoured by them all.
Without `bwrap` on PATH (and sandbox="auto") agents run as plain subprocesses, and the backend says
so in a warning.

Containment is the kernel's, not the agent's to undo: a seccomp filter denies ptrace and every
other way to reach into the sandbox's init (pid 1 of its pid namespace) or out of the sandbox, and
init's /proc/1/mem is covered. Stopping an agent kills that init, which takes every process of the
namespace with it, and kills the agent's cgroup, which holds every process it started however it
detached; `stop` returns only once they are gone. Init dies with bwrap, and bwrap with the daemon
(parent-death signals nothing in the sandbox can clear), and a daemon that starts kills whatever an
earlier one left (`serve`). Per-agent limits (memory, processes, CPU) are the cgroups'.
"""

import contextlib
import functools
import glob
import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import anyio
from anyio.abc import Process, TaskGroup, TaskStatus

from hyperhive_core.config import SandboxMode
from hyperhive_core.errors import BackendError, BackendUnavailableError
from hyperhive_core.lifecycle._agent_log import AgentLog
from hyperhive_core.lifecycle._cgroup import AgentCgroup, CgroupHost, group_of_dirs
from hyperhive_core.lifecycle._procs import ProcessRef, SandboxRecord, alive, kill_and_wait, start_time
from hyperhive_core.lifecycle._seccomp import filter_fd, native_arch
from hyperhive_core.lifecycle.base import AgentSpec, AgentStatus, BackendInfo
from hyperhive_core.lifecycle.workspace import check_extra_dirs, hidden_paths, prepare_clone
from hyperhive_core.states import AgentState

logger = logging.getLogger(__name__)

SANDBOX_SOCKET_DIR = Path("/run/hive")
SANDBOX_CLAUDE_DIR = Path("/run/claude")
CLAUDE_SETTINGS = "settings.json"
NO_CLAUDE_SETTINGS = "no-claude-settings.json"
# In the sandbox's private /run, so the bind's mount point is made there, never in the operator's dir.
SANDBOX_CLAUDE_SETTINGS = Path("/run/claude-settings.json")
KILL_WAIT_S = 5.0
# How long bwrap may take to say which process is its sandbox's init.
INFO_WAIT_S = 10.0
RECORD_NAME = "agent.sandbox"
# Passed through from the daemon's environment; everything else (tokens, keys) stays outside.
PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "TERM", "TZ")
# The host's homes hold the operator's keys and logins (ssh, claude, npm, git, clouds): agents see
# them empty, with only what their interpreter and tools need bound back read-only.
HOST_HOMES = (Path("/root"), Path("/home"))
# Readable by root (the daemon's uid, so the agent's) but nobody's business inside a sandbox.
SECRET_FILE_GLOBS = ("/etc/shadow*", "/etc/gshadow*", "/etc/ssh/ssh_host_*_key")
# Executables an agent runs besides its command; when they live under a masked dir (a claude
# from the native installer in ~/.local/bin, a node from nvm) they are bound back read-only.
AGENT_TOOLS = ("claude", "node")
# Joins the cgroups named before "--" (writing its own pid), then execs the rest: the agent's
# first process is in its cgroups before it can fork anything.
JOIN_CGROUPS = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
# Init's memory is the one door to it the seccomp filter cannot shut (open+write, no ptrace call):
# these nodev binds of /dev/null make opening it fail.
INIT_MEM = ("/proc/1/mem", "/proc/1/task/1/mem")


@dataclass(slots=True)
class _Child:
    process: Process
    started_at: float
    log: AgentLog
    cgroup: AgentCgroup | None = None
    init: ProcessRef | None = None  # the sandbox's pid namespace init (bwrap's child)
    state_dir: Path = Path()  # the agent's state dir, where its sandbox record is kept
    init_known: anyio.Event = field(default_factory=anyio.Event)  # set once `init` is known (or never will be)
    stopping: bool = False
    failure: str = ""


def _under(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


class LocalBackend:
    """Agents as child processes of the daemon, sandboxed with bubblewrap when it is installed."""

    def __init__(
        self,
        *,
        sandbox: SandboxMode = "auto",
        hidden: Sequence[Path] = (),
        state_dir: Path | None = None,
        cgroups: bool = True,
    ) -> None:
        self._bwrap = shutil.which("bwrap") if sandbox != "none" else None
        self._setpriv = shutil.which("setpriv")
        if sandbox == "bwrap" and self._bwrap is None:
            raise BackendUnavailableError(
                "sandbox 'bwrap' was asked for but bwrap is not on PATH; install bubblewrap "
                "(apt-get install bubblewrap) or choose --sandbox auto"
            )
        self._hidden = tuple(p.resolve() for p in hidden)
        self._state_dir = state_dir
        self._children: dict[str, _Child] = {}
        self._tg: TaskGroup | None = None
        self._arch = native_arch()
        self._cgroups = CgroupHost.detect(state_dir or Path.cwd()) if cgroups else None
        warnings: list[str] = []
        if self._bwrap is None and sandbox == "auto":
            warnings.append(
                "bwrap is not on PATH: agents run as plain subprocesses WITHOUT a sandbox; "
                "install bubblewrap (apt-get install bubblewrap) to isolate them"
            )
        if self._bwrap is not None and self._arch is None:
            warnings.append(
                f"no seccomp filter for this architecture ({os.uname().machine}): agents can ptrace "
                "their sandbox's init and outlive kill; run on x86_64 or aarch64"
            )
        if self._cgroups is None or not self._cgroups.tracks:
            problems = "; ".join(self._cgroups.problems) if self._cgroups is not None else "turned off"
            fallback = "their pid namespace" if self._bwrap else "their process group, which an agent can leave"
            warnings.append(
                f"no writable cgroups ({problems}): agents are stopped through {fallback}, and no memory, "
                "process or CPU limit is enforced; run the daemon as root or in a delegated cgroup"
            )
        else:
            missing = [c for c in ("memory", "pids", "cpu") if c not in self._cgroups.enforced]
            if missing:
                warnings.append(f"cgroup limits not enforced here: {', '.join(missing)}")
        self._info = BackendInfo(name="local", warnings=warnings)

    @property
    def info(self) -> BackendInfo:
        """The backend's name and its warning when it cannot sandbox."""
        return self._info

    @property
    def sandboxed(self) -> bool:
        """Whether agents run inside bubblewrap."""
        return self._bwrap is not None

    @property
    def containment(self) -> str:
        """What stops and limits an agent on this host, in words for `status`."""
        parts: list[str] = []
        if self._bwrap:
            parts.append("pid namespace")
            if self._arch is not None:
                parts.append("seccomp")
        if self._cgroups is not None and self._cgroups.tracks:
            limits = ", ".join(self._cgroups.enforced) or "no limits"
            parts.append(f"cgroup ({self._cgroups.kill_method}; {limits})")
        return ", ".join(parts) or "process group only"

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Kill every sandbox an earlier daemon of this state dir left, then watch agents until cancelled."""
        await self._reap_leftovers()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._tg = None

    async def create(self, spec: AgentSpec) -> None:
        """Make the agent's work and socket dirs (its work dir a clone of its repo, if it has one); idempotent.

        Raises:
            WorkspaceError: its repository cannot be cloned, or an extra dir cannot be bound.
        """
        for path in (spec.socket_dir, spec.log_path.parent):
            path.mkdir(parents=True, exist_ok=True)
        await anyio.to_thread.run_sync(check_extra_dirs, spec.name, spec.extra_dirs, self._hidden)
        if spec.repo is not None:
            await anyio.to_thread.run_sync(prepare_clone, spec.name, spec.repo, spec.work_dir)
        for path in {spec.work_dir, _home(spec)}:
            path.mkdir(parents=True, exist_ok=True)

    async def start(self, spec: AgentSpec) -> None:
        """Start the agent's turn loop; a running agent is left running.

        Raises:
            BackendError: the process could not be started.
        """
        child = self._children.get(spec.name)
        if child is not None and child.process.returncode is None:
            return
        if child is not None and not child.log.pumping:
            child.log.close()
        await self.create(spec)
        # Checked here: behind the cgroup shell and bwrap, a missing command would only show as an exit code.
        if shutil.which(spec.command[0], path=os.environ.get("PATH")) is None:
            raise BackendError(f"cannot start agent {spec.name!r} ({spec.command[0]}): not found or not executable")
        await self._reap_record(_record_path(spec.log_path.parent), spec.name)
        cgroup = self._make_cgroup(spec)
        passed: list[int] = []
        info_read: int | None = None
        options: list[str] = []
        if self._bwrap is not None:
            # bwrap writes its sandbox's init's pid there; the filter it loads from the other fd.
            info_read, info_write = os.pipe()
            passed.append(info_write)
            options += ["--info-fd", str(info_write)]
            if self._arch is not None:
                seccomp = filter_fd(self._arch)
                passed.append(seccomp)
                options += ["--seccomp", str(seccomp)]
        # The repository's checkouts (the operator's files, other agents' worktrees) are out of reach.
        repo_paths = await anyio.to_thread.run_sync(hidden_paths, spec.name, spec.repo) if spec.repo else []
        argv, env = self._command(spec, options, repo_paths)
        if cgroup is not None:
            argv = ["/bin/sh", "-c", JOIN_CGROUPS, "hyperhive-join", *map(str, cgroup.procs_files), "--", *argv]
        log = AgentLog(spec.log_path)
        try:
            process = await anyio.open_process(
                argv,
                stdin=subprocess.DEVNULL,
                # Through the daemon, not straight into the file: the agent's output is bounded in
                # bytes and in rate (an agent with a shell could otherwise fill the disk).
                stdout=subprocess.PIPE if self._tg is not None else log.file,
                stderr=subprocess.STDOUT,
                cwd=spec.work_dir,
                env=env,
                # Own process group: stop signals reach the sandbox and the agent, not the daemon.
                start_new_session=True,
                pass_fds=passed,
            )
        except OSError as exc:
            log.close()
            if info_read is not None:
                os.close(info_read)
            if cgroup is not None:
                cgroup.remove()
            raise BackendError(f"cannot start agent {spec.name!r} ({argv[0]}): {exc}") from exc
        finally:
            for fd in passed:
                os.close(fd)
        child = _Child(process=process, started_at=time.time(), log=log, cgroup=cgroup, state_dir=spec.log_path.parent)
        self._children[spec.name] = child
        if self._tg is not None and process.stdout is not None:
            self._tg.start_soon(functools.partial(log.pump, process.stdout, process=process))
        await self._save_record(child)
        if info_read is None:
            child.init_known.set()
        elif self._tg is not None:
            # bwrap says which process is its init once the sandbox is set up: learnt meanwhile.
            self._tg.start_soon(self._learn_init, child, info_read)
        else:
            await self._learn_init(child, info_read)
        if self._tg is not None:
            self._tg.start_soon(self._watch, spec.name, child)
        logger.info("started agent %s (pid %d, %s)", spec.name, process.pid, self._sandbox_label)

    async def _learn_init(self, child: _Child, info_read: int) -> None:
        try:
            child.init = await _read_init(info_read, child.process)
            await self._save_record(child)
        finally:
            child.init_known.set()

    async def _save_record(self, child: _Child) -> None:
        refs = [r for r in (ProcessRef.of(child.process.pid), child.init) if r is not None]
        record = SandboxRecord(tuple(refs), tuple(child.cgroup.dirs) if child.cgroup is not None else ())
        await anyio.to_thread.run_sync(record.save, _record_path(child.state_dir))

    def _make_cgroup(self, spec: AgentSpec) -> AgentCgroup | None:
        if self._cgroups is None or not self._cgroups.tracks:
            return None
        try:
            return self._cgroups.create(spec.name, spec.limits)
        except OSError as exc:
            # Still started: contained by its pid namespace, but unlimited; status says so.
            logger.warning("agent %s runs without its cgroup (%s): no limits, no cgroup kill", spec.name, exc)
            return None

    async def _watch(self, name: str, child: _Child) -> None:
        """Until the agent exits: when the kernel's OOM killer fires in its cgroup, stop the whole agent."""
        oom_fd = child.cgroup.oom_eventfd() if child.cgroup is not None else None
        try:
            async with anyio.create_task_group() as tg:

                async def on_exit() -> None:
                    await child.process.wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(on_exit)
                if oom_fd is not None:
                    # Readable on an OOM kill, and when the cgroup is removed (a stop).
                    await anyio.wait_readable(oom_fd)
                    tg.cancel_scope.cancel()
        finally:
            if oom_fd is not None:
                os.close(oom_fd)
        # Without an eventfd (cgroup v2) the counter is read once the agent exited.
        if not _note_oom(child):
            return
        logger.warning("agent %s %s", name, child.failure)
        try:
            await self.stop(name, grace_s=0)
        except BackendError:
            logger.exception("could not stop agent %s after it ran out of memory", name)

    async def stop(self, name: str, *, grace_s: float) -> None:
        """Ask the agent to stop (SIGTERM), wait up to `grace_s`, then kill its whole sandbox.

        Raises:
            BackendError: processes of the agent were still alive after SIGKILL.
        """
        child = self._children.get(name)
        if child is None:
            return
        if child.process.returncode is not None and child.cgroup is None:
            return
        child.stopping = True
        survivors: list[int] = []
        # shielded: a cancelled caller must still not leave a half-stopped agent behind.
        with anyio.CancelScope(shield=True):
            if child.process.returncode is None:
                self._ask_to_stop(child)
                with anyio.move_on_after(grace_s):
                    await child.process.wait()
            survivors = await self._kill(child)
            if not survivors:
                if child.cgroup is not None:
                    child.cgroup.remove()
                # Nothing left for a later daemon to kill.
                await anyio.Path(_record_path(child.state_dir)).unlink(missing_ok=True)
        if survivors:
            raise BackendError(
                f"agent {name!r} did not stop: {len(survivors)} of its processes (pids "
                f"{', '.join(map(str, sorted(survivors)))}) are still alive after SIGKILL; "
                "see the daemon's log and kill them by hand"
            )

    def _ask_to_stop(self, child: _Child) -> None:
        if child.cgroup is not None:
            # The agent's own processes, not bwrap: bwrap's death would kill them before they could clean up.
            outer = {child.process.pid, *(() if child.init is None else (child.init.pid,))}
            for pid in child.cgroup.pids() - outer:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGTERM)
            if self._bwrap is not None:
                return
        self._signal_group(child.process, signal.SIGTERM)

    async def _kill(self, child: _Child) -> list[int]:
        """SIGKILL the sandbox's init, its cgroup and its process group; the pids that survived."""
        with anyio.move_on_after(INFO_WAIT_S):
            await child.init_known.wait()
        if child.process.returncode is None:
            self._signal_group(child.process, signal.SIGKILL)
        refs = [r for r in (child.init,) if r is not None]
        survivors = await kill_and_wait(refs, child.cgroup, within_s=KILL_WAIT_S)
        with anyio.move_on_after(KILL_WAIT_S):
            await child.process.wait()
        if child.process.returncode is None:
            survivors.append(child.process.pid)
        return survivors

    async def wait_exit(self, name: str) -> int | None:
        """Wait until the agent's process exits by itself or is stopped; its exit code, None if never started."""
        child = self._children.get(name)
        if child is None:
            return None
        return await child.process.wait()

    async def destroy(self, name: str) -> None:
        """Forget the agent; its work dir and log stay for the operator to read."""
        child = self._children.pop(name, None)
        if child is not None and not child.log.pumping:
            child.log.close()

    async def status(self, name: str) -> AgentStatus:
        """Report running, stopped (on purpose) or failed (exited by itself), with limits and usage."""
        child = self._children.get(name)
        if child is None:
            return AgentStatus(state=AgentState.STOPPED, sandbox=self._sandbox_label, containment=self.containment)
        code = child.process.returncode
        containment = self.containment if child.cgroup is not None or self._cgroups is None else self._no_cgroup()
        limits = child.cgroup.limits if child.cgroup is not None else None
        base = AgentStatus(state=AgentState.FAILED, sandbox=self._sandbox_label, containment=containment, limits=limits)
        if code is None:
            usage = child.cgroup.usage() if child.cgroup is not None else None
            return replace(
                base, state=AgentState.RUNNING, pid=child.process.pid, started_at=child.started_at, usage=usage
            )
        _note_oom(child)  # exited: the watcher may not have looked yet
        if child.failure:
            return replace(base, detail=child.failure)
        if child.stopping:
            return replace(base, state=AgentState.STOPPED)
        return replace(base, detail=f"exited with code {code}; see its log")

    def _no_cgroup(self) -> str:
        return ", ".join(p for p in self.containment.split(", ") if not p.startswith("cgroup")) or "process group only"

    async def aclose(self) -> None:
        """Stop every child; agents never outlive the daemon that started them."""
        async with anyio.create_task_group() as tg:
            for name in list(self._children):

                async def stop(n: str = name) -> None:
                    try:
                        await self.stop(n, grace_s=KILL_WAIT_S)
                    except BackendError:
                        logger.exception("could not stop agent %s", n)

                tg.start_soon(stop)
        for name in list(self._children):
            await self.destroy(name)
        if self._cgroups is not None:
            self._cgroups.close()

    async def _reap_leftovers(self) -> None:
        """Kill every sandbox an earlier daemon of this state dir left running, whatever its session."""
        records: list[tuple[Path, str]] = []
        if self._state_dir is not None:
            agents = self._state_dir / "agents"
            records = [(d / RECORD_NAME, d.name) for d in sorted(agents.glob("*")) if (d / RECORD_NAME).exists()]
        for path, name in records:
            try:
                await self._reap_record(path, name)
            except BackendError:
                # That agent's start fails the same way, saying so; the rest of the hive starts.
                logger.exception("could not kill what an earlier daemon left of agent %s", name)
        if self._cgroups is not None:
            for directory in self._cgroups.leftover_dirs():
                group = group_of_dirs([directory])
                if group.pids():
                    logger.warning("killing the processes left in %s by an earlier daemon", directory)
                    await kill_and_wait([], group, within_s=KILL_WAIT_S)
                group.remove()

    async def _reap_record(self, path: Path, name: str) -> None:
        """Kill what `path` records of an earlier start of agent `name`, unless this daemon runs it."""
        child = self._children.get(name)
        if child is not None and child.process.returncode is None:
            return
        record = await anyio.to_thread.run_sync(SandboxRecord.load, path)
        if record is None:
            return
        # Only a hive's own cgroups: the record is the daemon's, but a path is checked before it is killed.
        group = group_of_dirs([p for p in record.cgroups if any(part.startswith("hyperhive-") for part in p.parts)])
        # A zombie (an orphan its new parent has not reaped yet) is dead already.
        live = [r for r in record.processes if alive(r.pid) and r.started == start_time(r.pid)]
        if live or group.pids():
            logger.warning(
                "agent %s: its sandbox from an earlier daemon is still running (pids %s); killing it",
                name,
                ", ".join(str(p) for p in sorted({r.pid for r in live} | group.pids())),
            )
            survivors = await kill_and_wait(live, group, within_s=KILL_WAIT_S)
            if survivors:
                raise BackendError(
                    f"agent {name!r}: processes {survivors} left by an earlier daemon survive SIGKILL; "
                    "kill them by hand before starting it again"
                )
        group.remove()
        await anyio.Path(path).unlink(missing_ok=True)

    @property
    def _sandbox_label(self) -> str:
        return "bwrap" if self._bwrap else "none"

    def _signal_group(self, process: Process, signum: signal.Signals) -> None:
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass

    def _command(
        self, spec: AgentSpec, options: Sequence[str] = (), repo_paths: Sequence[Path] = ()
    ) -> tuple[list[str], dict[str, str]]:
        env = {k: v for k in PASSTHROUGH_ENV if (v := os.environ.get(k)) is not None}
        env |= {"HOME": str(_home(spec)), "HIVE_AGENT_NAME": spec.name, "PYTHONUNBUFFERED": "1"}
        env |= dict(spec.env)
        if self._bwrap is None:
            env["HIVE_SOCKET"] = str(spec.socket_dir / "mcp.sock")
            env["HIVE_PARENT_PID"] = str(os.getpid())
            if spec.claude_config_dir is not None:
                env["CLAUDE_CONFIG_DIR"] = str(spec.claude_config_dir)
            return list(spec.command), env
        env["HIVE_SOCKET"] = str(SANDBOX_SOCKET_DIR / "mcp.sock")
        # claude refuses bypassPermissions as root unless it knows it runs in a sandbox: it does.
        env["IS_SANDBOX"] = "1"
        if spec.claude_config_dir is not None:
            env["CLAUDE_CONFIG_DIR"] = str(SANDBOX_CLAUDE_DIR)
            env["HIVE_CLAUDE_SETTINGS"] = str(SANDBOX_CLAUDE_SETTINGS)
        # bwrap's --die-with-parent ties the sandbox to bwrap, not bwrap to us: setpriv makes the
        # kernel kill bwrap when the daemon dies (even by kill -9), so no agent is left orphaned.
        argv = [self._setpriv, "--pdeathsig", "KILL", "--"] if self._setpriv else []
        # --cap-drop ALL: run by root, bwrap would leave the agent every capability in its user
        # namespace, enough to unmount the tmpfs that hides the host's /tmp or /root.
        argv += [self._bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
        if spec.share_net:
            argv.append("--share-net")
        argv += ["--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
        for mem in INIT_MEM:
            argv += ["--ro-bind", "/dev/null", mem]
        argv += ["--tmpfs", "/tmp", "--tmpfs", "/run"]
        masked = self._masked(repo_paths)
        # (destination, arguments): applied parents first, so a mount on a deeper path always lands
        # on top: a masked state dir inside a checkout bound back stays masked, and the interpreter
        # bound back inside a masked home stays visible.
        mounts: list[tuple[Path, list[str]]] = [(path, ["--tmpfs", str(path)]) for path in masked]
        # A nodev bind of /dev/null: opening the file fails with EACCES.
        mounts.extend((secret, ["--ro-bind", "/dev/null", str(secret)]) for secret in _secret_files())
        # The interpreter, our code and the agent's tools may live under a masked path (a venv in
        # /tmp, a pyenv in /root, a checkout in the state dir): bind them back read-only.
        needed = [*_interpreter_paths(), *_tool_paths((spec.command[0], *AGENT_TOOLS), env.get("PATH"))]
        mounts.extend(
            (path, ["--ro-bind", str(path), str(path)])
            for path in needed
            if _under(path, (Path("/tmp"), Path("/run"), *masked))
        )
        mounts.extend(
            (extra.path, ["--bind" if extra.writable else "--ro-bind", str(extra.path), str(extra.path)])
            for extra in spec.extra_dirs
        )
        mounts.extend((path, ["--bind", str(path), str(path)]) for path in dict.fromkeys([spec.work_dir, _home(spec)]))
        mounts.append((SANDBOX_SOCKET_DIR, ["--bind", str(spec.socket_dir), str(SANDBOX_SOCKET_DIR)]))
        if spec.claude_config_dir is not None:
            # Read-write: claude keeps its sessions (for --resume) and token refreshes there ...
            mounts.append((SANDBOX_CLAUDE_DIR, ["--bind", str(spec.claude_config_dir), str(SANDBOX_CLAUDE_DIR)]))
            # ... but claude reads its settings (the login, hooks, permissions) from a read-only bind
            # of the operator's file, not from that shared dir: what an agent wrote there would be run
            # or honoured by every agent's claude. No file: an empty one (claude's defaults).
            source = spec.claude_config_dir / CLAUDE_SETTINGS
            if not source.is_file():
                # a regular empty file, in the agent's state dir (the sandbox's /dev is nodev: no /dev/null)
                source = spec.log_path.parent / NO_CLAUDE_SETTINGS
                source.write_bytes(b"")
            mounts.append((SANDBOX_CLAUDE_SETTINGS, ["--ro-bind", str(source), str(SANDBOX_CLAUDE_SETTINGS)]))
        for _, arguments in sorted(mounts, key=lambda mount: len(mount[0].parts)):
            argv += arguments
        argv += ["--chdir", str(spec.work_dir)]
        # Last, once the binds above made their mount points: nothing new appears in a masked dir.
        for path in masked:
            argv += ["--remount-ro", str(path)]
        argv += [*options, "--clearenv"]
        for key, value in sorted(env.items()):
            argv += ["--setenv", key, value]
        return [*argv, "--", *spec.command], env

    def _masked(self, extra: Sequence[Path] = ()) -> list[Path]:
        """The dirs the agent sees empty and read-only: the hive's state and run dirs, the host's homes,
        and `extra` (its repository's checkouts)."""
        candidates = [*self._hidden, *HOST_HOMES, Path.home().resolve(), *(p.resolve() for p in extra)]
        existing = [p for p in dict.fromkeys(candidates) if p.is_dir() and p != Path("/")]
        # A dir inside another masked one is hidden with it.
        return [p for p in existing if not any(o != p and o in p.parents for o in existing)]


def _home(spec: AgentSpec) -> Path:
    """The agent's HOME: its work dir, or beside it when the work dir is a clone (caches stay out of its commits)."""
    return spec.work_dir.parent / "home" if spec.repo is not None else spec.work_dir


def _note_oom(child: _Child) -> bool:
    """Whether the kernel's OOM killer fired in the agent's cgroup; if so, say so as its failure."""
    if child.failure:
        return True
    if child.stopping or child.cgroup is None or not child.cgroup.usage().oom_kills:
        return False
    limit = child.cgroup.limits.memory_bytes
    child.failure = (
        f"stopped: it went over its memory limit ({_mib(limit) if limit else 'none set'}) and the kernel "
        "killed a process of it; spawn it again with a higher --memory-mb if it needs more"
    )
    return True


def _record_path(agent_state_dir: Path) -> Path:
    # Beside the log, in the agent's state dir: outside the sandbox's reach (only work/ is bound in).
    return agent_state_dir / RECORD_NAME


async def _read_init(fd: int, process: Process) -> ProcessRef | None:
    """The sandbox's init, from bwrap's --info-fd JSON; None if bwrap failed before it made one."""
    os.set_blocking(fd, False)
    data = b""
    try:
        with anyio.move_on_after(INFO_WAIT_S):
            while True:
                await anyio.wait_readable(fd)
                try:
                    chunk = os.read(fd, 4096)
                except BlockingIOError:
                    continue
                if not chunk:
                    break
                data += chunk
    finally:
        os.close(fd)
    try:
        pid = int(json.loads(data)["child-pid"])
    except (ValueError, KeyError, TypeError):
        return None
    ref = ProcessRef.of(pid)
    # bwrap (our child) made it: it is ours only while its parent is our child.
    if ref is None or _parent_of(pid) != process.pid:
        return None
    return ref


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def _secret_files() -> list[Path]:
    return sorted(p for pattern in SECRET_FILE_GLOBS for p in map(Path, glob.glob(pattern)) if p.is_file())


def _tool_paths(names: Sequence[str], path: str | None) -> list[Path]:
    """The bin dir of each executable found on PATH, and the dir of the file it resolves to."""
    paths: list[Path] = []
    for name in names:
        found = shutil.which(name, path=path)
        if found is None:
            continue
        for dir_ in (Path(found).parent, Path(found).resolve().parent):
            if dir_ not in paths:
                paths.append(dir_)
    return paths


def _interpreter_paths() -> list[Path]:
    paths: list[Path] = [Path(sys.prefix), Path(sys.base_prefix)]
    # The agent's code: an editable install keeps it in a checkout, outside the venv.
    spec = importlib.util.find_spec("hyperhive_agent")
    if spec is not None and spec.origin is not None:
        paths.append(Path(spec.origin).resolve().parent.parent)
    resolved: list[Path] = []
    for path in paths:
        real = path.resolve()
        if real not in resolved:
            resolved.append(real)
        if path not in resolved and path.exists():
            resolved.append(path)
    return resolved

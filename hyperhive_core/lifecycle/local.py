"""The local backend, the embedded default: each agent is a child process in a bubblewrap sandbox.

Inside the sandbox the agent is root of its own user namespace with no capabilities and no way to
make another; it sees only its own processes. The root filesystem is read-only; /tmp and /run are
private; the hive's state and run dirs and the host's homes are empty and read-only; the host's
password hashes and ssh host keys cannot be read; its socket dir is bound at /run/hive and its
work dir is the only other writable place. Without `bwrap` on PATH (and sandbox="auto") agents run
as plain subprocesses, and the backend says so in a warning. Children never outlive the daemon:
bwrap's --die-with-parent, or the agent's own parent-death signal (HIVE_PARENT_PID) when unsandboxed.
"""

import contextlib
import glob
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import anyio
from anyio.abc import Process

from hyperhive_core.config import SandboxMode
from hyperhive_core.errors import BackendError, BackendUnavailableError
from hyperhive_core.lifecycle.base import AgentSpec, AgentStatus, BackendInfo
from hyperhive_core.states import AgentState

logger = logging.getLogger(__name__)

SANDBOX_SOCKET_DIR = Path("/run/hive")
SANDBOX_CLAUDE_DIR = Path("/run/claude")
KILL_WAIT_S = 5.0
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


@dataclass(slots=True)
class _Child:
    process: Process
    started_at: float
    log: IO[bytes]
    stopping: bool = False


def _under(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


class LocalBackend:
    """Agents as child processes of the daemon, sandboxed with bubblewrap when it is installed."""

    def __init__(self, *, sandbox: SandboxMode = "auto", hidden: Sequence[Path] = ()) -> None:
        self._bwrap = shutil.which("bwrap") if sandbox != "none" else None
        self._setpriv = shutil.which("setpriv")
        if sandbox == "bwrap" and self._bwrap is None:
            raise BackendUnavailableError(
                "sandbox 'bwrap' was asked for but bwrap is not on PATH; install bubblewrap "
                "(apt-get install bubblewrap) or choose --sandbox auto"
            )
        self._hidden = tuple(p.resolve() for p in hidden)
        self._children: dict[str, _Child] = {}
        warnings: list[str] = []
        if self._bwrap is None and sandbox == "auto":
            warnings.append(
                "bwrap is not on PATH: agents run as plain subprocesses WITHOUT a sandbox; "
                "install bubblewrap (apt-get install bubblewrap) to isolate them"
            )
        self._info = BackendInfo(name="local", warnings=warnings)

    @property
    def info(self) -> BackendInfo:
        """The backend's name and its warning when it cannot sandbox."""
        return self._info

    @property
    def sandboxed(self) -> bool:
        """Whether agents run inside bubblewrap."""
        return self._bwrap is not None

    async def create(self, spec: AgentSpec) -> None:
        """Make the agent's work and socket dirs; idempotent."""
        for path in (spec.work_dir, spec.socket_dir, spec.log_path.parent):
            path.mkdir(parents=True, exist_ok=True)

    async def start(self, spec: AgentSpec) -> None:
        """Start the agent's turn loop; a running agent is left running.

        Raises:
            BackendError: the process could not be started.
        """
        child = self._children.get(spec.name)
        if child is not None and child.process.returncode is None:
            return
        if child is not None:
            child.log.close()
        await self.create(spec)
        await _reap_leftover(spec)
        argv, env = self._command(spec)
        log = spec.log_path.open("ab")
        try:
            process = await anyio.open_process(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=spec.work_dir,
                env=env,
                # Own process group: stop signals reach the sandbox and the agent, not the daemon.
                start_new_session=True,
            )
        except OSError as exc:
            log.close()
            raise BackendError(f"cannot start agent {spec.name!r} ({argv[0]}): {exc}") from exc
        self._children[spec.name] = _Child(process=process, started_at=time.time(), log=log)
        await anyio.Path(_pid_file(spec)).write_text(f"{process.pid}\n")
        logger.info("started agent %s (pid %d, %s)", spec.name, process.pid, self._sandbox_label)

    async def stop(self, name: str, *, grace_s: float) -> None:
        """SIGTERM the agent's process group, wait up to `grace_s`, then SIGKILL it."""
        child = self._children.get(name)
        if child is None or child.process.returncode is not None:
            return
        child.stopping = True
        # shielded: a cancelled caller must still not leave a half-stopped agent behind.
        with anyio.CancelScope(shield=True):
            self._signal_group(child.process, signal.SIGTERM)
            with anyio.move_on_after(grace_s):
                await child.process.wait()
            if child.process.returncode is None:
                logger.warning("agent %s ignored SIGTERM for %.1f s; killing it", name, grace_s)
                self._signal_group(child.process, signal.SIGKILL)
                with anyio.move_on_after(KILL_WAIT_S):
                    await child.process.wait()

    async def wait_exit(self, name: str) -> int | None:
        """Wait until the agent's process exits by itself or is stopped; its exit code, None if never started."""
        child = self._children.get(name)
        if child is None:
            return None
        return await child.process.wait()

    async def destroy(self, name: str) -> None:
        """Forget the agent; its work dir and log stay for the operator to read."""
        child = self._children.pop(name, None)
        if child is not None:
            child.log.close()

    async def status(self, name: str) -> AgentStatus:
        """Report running, stopped (on purpose) or failed (exited by itself)."""
        child = self._children.get(name)
        if child is None:
            return AgentStatus(state=AgentState.STOPPED, sandbox=self._sandbox_label)
        code = child.process.returncode
        if code is None:
            return AgentStatus(
                state=AgentState.RUNNING,
                pid=child.process.pid,
                started_at=child.started_at,
                sandbox=self._sandbox_label,
            )
        if child.stopping:
            return AgentStatus(state=AgentState.STOPPED, sandbox=self._sandbox_label)
        return AgentStatus(
            state=AgentState.FAILED, sandbox=self._sandbox_label, detail=f"exited with code {code}; see its log"
        )

    async def aclose(self) -> None:
        """Stop every child; agents never outlive the daemon that started them."""
        async with anyio.create_task_group() as tg:
            for name in list(self._children):
                tg.start_soon(lambda n=name: self.stop(n, grace_s=KILL_WAIT_S))
        for name in list(self._children):
            await self.destroy(name)

    @property
    def _sandbox_label(self) -> str:
        return "bwrap" if self._bwrap else "none"

    def _signal_group(self, process: Process, signum: signal.Signals) -> None:
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass

    def _command(self, spec: AgentSpec) -> tuple[list[str], dict[str, str]]:
        env = {k: v for k in PASSTHROUGH_ENV if (v := os.environ.get(k)) is not None}
        env |= {"HOME": str(spec.work_dir), "HIVE_AGENT_NAME": spec.name, "PYTHONUNBUFFERED": "1"}
        env |= dict(spec.env)
        if self._bwrap is None:
            env["HIVE_SOCKET"] = str(spec.socket_dir / "mcp.sock")
            env["HIVE_PARENT_PID"] = str(os.getpid())
            if spec.claude_config_dir is not None:
                env["CLAUDE_CONFIG_DIR"] = str(spec.claude_config_dir)
            return list(spec.command), env
        env["HIVE_SOCKET"] = str(SANDBOX_SOCKET_DIR / "mcp.sock")
        if spec.claude_config_dir is not None:
            env["CLAUDE_CONFIG_DIR"] = str(SANDBOX_CLAUDE_DIR)
        # bwrap's --die-with-parent ties the sandbox to bwrap, not bwrap to us: setpriv makes the
        # kernel kill bwrap when the daemon dies (even by kill -9), so no agent is left orphaned.
        argv = [self._setpriv, "--pdeathsig", "KILL", "--"] if self._setpriv else []
        # --cap-drop ALL: run by root, bwrap would leave the agent every capability in its user
        # namespace, enough to unmount the tmpfs that hides the host's /tmp or /root.
        argv += [self._bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
        if spec.share_net:
            argv.append("--share-net")
        argv += ["--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
        argv += ["--tmpfs", "/tmp", "--tmpfs", "/run"]
        masked = self._masked()
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
        mounts.append((spec.work_dir, ["--bind", str(spec.work_dir), str(spec.work_dir)]))
        mounts.append((SANDBOX_SOCKET_DIR, ["--bind", str(spec.socket_dir), str(SANDBOX_SOCKET_DIR)]))
        if spec.claude_config_dir is not None:
            # Read-write: claude keeps its sessions (for --resume) and token refreshes there.
            mounts.append((SANDBOX_CLAUDE_DIR, ["--bind", str(spec.claude_config_dir), str(SANDBOX_CLAUDE_DIR)]))
        for _, arguments in sorted(mounts, key=lambda mount: len(mount[0].parts)):
            argv += arguments
        argv += ["--chdir", str(spec.work_dir)]
        # Last, once the binds above made their mount points: nothing new appears in a masked dir.
        for path in masked:
            argv += ["--remount-ro", str(path)]
        argv += ["--clearenv"]
        for key, value in sorted(env.items()):
            argv += ["--setenv", key, value]
        return [*argv, "--", *spec.command], env

    def _masked(self) -> list[Path]:
        """The dirs the agent sees empty and read-only: the hive's state and run dirs, the host's homes."""
        candidates = [*self._hidden, *HOST_HOMES, Path.home().resolve()]
        existing = [p for p in dict.fromkeys(candidates) if p.is_dir() and p != Path("/")]
        # A dir inside another masked one is hidden with it.
        return [p for p in existing if not any(o != p and o in p.parents for o in existing)]


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


def _pid_file(spec: AgentSpec) -> Path:
    # Beside the log, in the agent's state dir: outside the sandbox's reach (only work/ is bound in),
    # so an agent cannot point the daemon at a process of its choosing.
    return spec.log_path.parent / "agent.pid"


def _is_our_agent(pid: int, spec: AgentSpec) -> bool:
    # Every agent process (bwrap or plain) is started in its own work dir, which names the agent.
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")) == spec.work_dir.resolve()
    except OSError:
        return False


async def _reap_leftover(spec: AgentSpec) -> None:
    """Kill an agent process an earlier daemon left behind, so two never serve one socket.

    The parent-death signal normally takes agents down with their daemon; a daemon killed in the
    instant between starting an agent and arming that signal leaves one running.
    """
    try:
        pid = int((await anyio.Path(_pid_file(spec)).read_text()).strip())
    except (OSError, ValueError):
        return
    if pid <= 1 or not _is_our_agent(pid, spec):
        return
    logger.warning(
        "agent %s: a process left by an earlier daemon (pid %d) is still running; killing it", spec.name, pid
    )
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        with anyio.move_on_after(KILL_WAIT_S):
            await anyio.wait_readable(pidfd)
    finally:
        os.close(pidfd)


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

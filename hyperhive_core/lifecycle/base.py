"""The lifecycle seam: one small protocol every backend (local bubblewrap, nixos, nspawn) implements.

The hive composes the verbs: spawn = create + start, kill = stop + destroy, rebuild = stop +
create (idempotent) + start. A backend owns only the agent's process or container; sockets, names
and messages belong to the hive.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import anyio
from anyio.abc import TaskStatus

from hyperhive_core.states import AgentState


@dataclass(frozen=True, slots=True)
class Limits:
    """What one agent may use; None: unlimited."""

    memory_bytes: int | None = None
    pids: int | None = None
    cpus: float | None = None


@dataclass(frozen=True, slots=True)
class ExtraMount:
    """A host dir bound into the agent's sandbox at the same path."""

    path: Path
    writable: bool = False


@dataclass(frozen=True, slots=True)
class Usage:
    """What an agent uses now, as its cgroups count it; None where no hierarchy counts it."""

    memory_bytes: int | None = None
    memory_peak_bytes: int | None = None
    pids: int | None = None
    cpu_s: float | None = None
    oom_kills: int = 0


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """Everything a backend needs to run one agent."""

    name: str
    socket_dir: Path  # bound at /run/hive inside the sandbox
    work_dir: Path  # the agent's only writable place besides /tmp
    log_path: Path
    command: tuple[str, ...]  # the turn loop, run inside the sandbox
    env: tuple[tuple[str, str], ...] = ()
    share_net: bool = True
    claude_config_dir: Path | None = None  # the operator's claude login, shared by every agent
    # The agent's own system, where the backend has one (nixos: its container's NixOS config):
    # nixpkgs attribute paths on its PATH ("git", "python3Packages.numpy"), and claude-code
    # settings for it alone.
    packages: tuple[str, ...] = ()
    claude_settings: Mapping[str, object] = field(default_factory=dict[str, object])
    limits: Limits = field(default_factory=Limits)  # memory, process count, CPU; None in one: unlimited
    extra_dirs: tuple[ExtraMount, ...] = ()
    # A git repository the work dir is a clone of (on branch hive/<name>); None: a plain work dir.
    repo: Path | None = None


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """A backend's answer to "how is this agent?"."""

    state: AgentState
    pid: int | None = None
    started_at: float | None = None
    sandbox: str = ""
    detail: str = ""
    # What keeps the agent contained and limited here (e.g. "pid namespace, seccomp, cgroup"), and
    # its limits and usage where the backend counts them.
    containment: str = ""
    limits: Limits | None = None
    usage: Usage | None = None


@dataclass(slots=True)
class BackendInfo:
    """What a backend says about itself, once, when the daemon starts."""

    name: str
    warnings: list[str] = field(default_factory=list[str])


class LifecycleBackend(Protocol):
    """Runs agents; one module per implementation, looked up by name."""

    @property
    def info(self) -> BackendInfo:
        """The backend's name and anything the operator should be warned about."""
        ...

    async def create(self, spec: AgentSpec) -> None:
        """Prepare the agent's container or dirs; idempotent, also for an agent that exists."""
        ...

    async def start(self, spec: AgentSpec) -> None:
        """Start the agent; a running agent is left running."""
        ...

    async def stop(self, name: str, *, grace_s: float) -> None:
        """Stop the agent: ask, wait up to `grace_s`, then force; a stopped agent is left stopped."""
        ...

    async def destroy(self, name: str) -> None:
        """Remove what `create` made; the agent must be stopped."""
        ...

    async def status(self, name: str) -> AgentStatus:
        """Report the agent's state."""
        ...

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run what the backend watches while the daemon runs; first, kill what an earlier daemon left.

        Reports started once the leftovers are gone, so restored agents never run twice.
        """
        ...

    async def aclose(self) -> None:
        """Stop everything this backend owns that must not outlive the daemon."""
        ...

"""The nixos backend: each agent is a NixOS container `h-<name>` (the manager `hm1nd`), via nixos-container.

`nixos-container` has no --bind flag and ignores /run/systemd/nspawn/*.nspawn, so the agent's
socket dir (and the shared claude credentials dir) is bound by rewriting EXTRA_NSPAWN_FLAGS in
`<conf dir>/<C>.conf`; nspawn reads it only when the container starts, which is why the hive's
rebuild (stop, create = rewrite + update, start) is the reconcile verb. Containers are systemd
units of their own: they outlive the daemon, and `aclose` leaves them running.
"""

import logging
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import anyio
from anyio.abc import TaskStatus

from hyperhive_core.errors import BackendError, BackendUnavailableError, ConfigError
from hyperhive_core.lifecycle._nspawn_conf import Bind, set_binds, set_value
from hyperhive_core.lifecycle.base import AgentSpec, AgentStatus, BackendInfo
from hyperhive_core.names import MANAGER
from hyperhive_core.states import AgentState

logger = logging.getLogger(__name__)

SANDBOX_SOCKET_DIR = "/run/hive"
SANDBOX_CLAUDE_DIR = "/root/.claude"
# In the socket dir, so the container sees it as /run/hive/agent.env: the agent service's EnvironmentFile.
ENV_FILE = "agent.env"
# Enough for `terminate` (machinectl terminate) once a clean stop has run out of grace.
TERMINATE_WAIT_S = 30.0
_STATES = {"up": AgentState.RUNNING, "down": AgentState.STOPPED}


def container_name(agent: str) -> str:
    """The container that runs `agent`: `h-<name>`, or `hm1nd` for the manager."""
    return MANAGER if agent == MANAGER else f"h-{agent}"


class NixosBackend:
    """Agents as imperative NixOS containers built from one template module."""

    def __init__(
        self,
        *,
        template: Path | None,
        conf_dir: Path = Path("/etc/nixos-containers"),
        executable: str = "nixos-container",
    ) -> None:
        """Check the host can run containers.

        Raises:
            BackendUnavailableError: `executable` is not on PATH.
            ConfigError: no template is given, or it is not a file.
        """
        found = shutil.which(executable)
        if found is None:
            raise BackendUnavailableError(_unavailable(executable))
        if template is None:
            raise ConfigError(
                "the nixos backend needs a container template: pass --nixos-template FILE "
                "(the NixOS module passes its own)"
            )
        if not template.is_file():
            raise ConfigError(f"container template {template} is not a file")
        self._executable = found
        self._name = executable
        self._template = template.resolve()
        self._conf_dir = conf_dir
        self._info = BackendInfo(name="nixos")

    @property
    def info(self) -> BackendInfo:
        """The backend's name; nixos has nothing to warn about once it exists."""
        return self._info

    async def create(self, spec: AgentSpec) -> None:
        """Create the container, or update an existing one; either way its conf gets our binds.

        Raises:
            BackendError: nixos-container failed, or the conf file cannot be rewritten.
        """
        container = container_name(spec.name)
        await anyio.Path(spec.socket_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
        if spec.claude_config_dir is not None:
            # nspawn refuses a bind whose source is missing; an empty dir waits for the login.
            await anyio.Path(spec.claude_config_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
        await anyio.to_thread.run_sync(self._write_env, spec)
        exists = container in await self.containers()
        if not exists:
            await self._run("create", container, "--config-file", str(self._template))
        await anyio.to_thread.run_sync(self._rewrite_conf, container, spec)
        if exists:
            await self._run("update", container, "--config-file", str(self._template))

    async def start(self, spec: AgentSpec) -> None:
        """Start the container; a running one is left running (and keeps the binds it started with).

        Raises:
            BackendError: nixos-container failed.
        """
        await self._run("start", container_name(spec.name))

    async def stop(self, name: str, *, grace_s: float) -> None:
        """Stop the container cleanly, and terminate it if that takes longer than `grace_s`.

        Raises:
            BackendError: nixos-container failed.
        """
        container = container_name(name)
        # shielded: a cancelled caller must still not leave a half-stopped container behind.
        with anyio.CancelScope(shield=True):
            if container not in await self.containers():
                return
            with anyio.move_on_after(grace_s) as scope:
                await self._run("stop", container)
            if scope.cancelled_caught:
                logger.warning("container %s did not stop within %.1f s; terminating it", container, grace_s)
                with anyio.move_on_after(TERMINATE_WAIT_S) as terminating:
                    await self._run("terminate", container)
                if terminating.cancelled_caught:
                    raise BackendError(f"container {container} did not stop, nor terminate within {TERMINATE_WAIT_S} s")

    async def destroy(self, name: str) -> None:
        """Remove the container, its root and its conf; a missing container is not an error.

        Raises:
            BackendError: nixos-container failed.
        """
        await self._run("destroy", container_name(name))

    async def status(self, name: str) -> AgentStatus:
        """Map `nixos-container status`: up is running, down is stopped, gone (or anything else) is missing."""
        container = container_name(name)
        result = await self._call(["status", container], check=False)
        said = result.stdout.decode(errors="replace").strip()
        if said in _STATES:
            return AgentStatus(state=_STATES[said], sandbox=container)
        if said == "gone":
            detail = f"container {container} does not exist; rebuild re-creates it"
        else:
            detail = f"nixos-container status {container} said {said or _stderr(result.stderr)!r}"
        return AgentStatus(state=AgentState.MISSING, sandbox=container, detail=detail)

    async def containers(self) -> set[str]:
        """Every container nixos-container knows on this host, ours or not.

        Raises:
            BackendError: nixos-container failed.
        """
        result = await self._call(["list"], check=True)
        return set(result.stdout.decode(errors="replace").split())

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Nothing to watch: containers are systemd units, which nixos-container stops whole."""
        task_status.started()

    async def aclose(self) -> None:
        """Leave every container running: they outlive the daemon, and a restart plus rebuild reconciles them."""

    async def _run(self, verb: str, container: str, *args: str) -> None:
        await self._call([verb, container, *args], check=True)

    async def _call(self, argv: list[str], *, check: bool) -> subprocess.CompletedProcess[bytes]:
        """Run the tool; the one place its failures become hyperhive errors."""
        try:
            return await anyio.run_process([self._executable, *argv], check=check)
        except subprocess.CalledProcessError as exc:
            verb, *rest = argv
            target = f" {rest[0]!r}" if rest else ""
            options = f" {shlex.join(rest[1:])}" if rest[1:] else ""
            stderr = _stderr(exc.stderr) or f"exit status {exc.returncode}"
            raise BackendError(f"{self._name} {verb}{target}{options} failed: {stderr}") from exc
        except OSError as exc:
            raise BackendUnavailableError(f"{_unavailable(self._name)} ({exc})") from exc

    def _write_env(self, spec: AgentSpec) -> None:
        env = {"HIVE_AGENT_NAME": spec.name, "HIVE_SOCKET": f"{SANDBOX_SOCKET_DIR}/mcp.sock"}
        if spec.claude_config_dir is not None:
            env["CLAUDE_CONFIG_DIR"] = SANDBOX_CLAUDE_DIR
        env |= dict(spec.env)
        lines: list[str] = []
        for key, value in env.items():
            if "\n" in value:
                raise BackendError(f"environment value of {key} for agent {spec.name!r} spans lines")
            lines.append(f"{key}={_systemd_quote(value)}\n")
        path = spec.socket_dir / ENV_FILE
        try:
            path.write_text("".join(lines))
        except OSError as exc:
            raise BackendError(f"cannot write {path}: {exc}") from exc

    def _binds(self, spec: AgentSpec) -> list[Bind]:
        binds = [Bind(spec.socket_dir.resolve(), SANDBOX_SOCKET_DIR)]
        if spec.claude_config_dir is not None:
            binds.append(Bind(spec.claude_config_dir.resolve(), SANDBOX_CLAUDE_DIR))
        return binds

    def _rewrite_conf(self, container: str, spec: AgentSpec) -> None:
        path = self._conf_dir / f"{container}.conf"
        if path.is_symlink():
            raise BackendError(
                f"{path} is a symlink: container {container} is declared in the host's configuration "
                "(containers.<name>); hyperhive manages only imperative containers"
            )
        try:
            text = path.read_text()
        except FileNotFoundError as exc:
            raise BackendError(
                f"{self._name} create {container!r} left no {path}; is the conf dir ({self._conf_dir}) right?"
            ) from exc
        except OSError as exc:
            raise BackendError(f"cannot read {path}: {exc}") from exc
        try:
            updated = set_binds(text, self._binds(spec))
            # Sharing the host's network is how agents reach claude's API; a private network has no route out.
            updated = set_value(updated, "PRIVATE_NETWORK", "0" if spec.share_net else "1")
        except ValueError as exc:
            raise BackendError(f"cannot rewrite {path}: {exc}") from exc
        if updated == text:
            return
        temporary = path.with_name(f".{path.name}.hyperhive")
        try:
            temporary.write_text(updated)
            os.chmod(temporary, path.stat().st_mode & 0o7777)
            # atomic: the start script never reads a half-written conf.
            os.replace(temporary, path)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise BackendError(f"cannot rewrite {path}: {exc}") from exc
        logger.info("rewrote %s: %s", path, " ".join(b.flag for b in self._binds(spec)))


def _unavailable(executable: str) -> str:
    return f"{executable} is not on PATH: the nixos backend runs on a NixOS host; use --backend local elsewhere"


def _systemd_quote(value: str) -> str:
    # Inside double quotes an EnvironmentFile takes these four escaped, and nothing else.
    return '"' + "".join("\\" + c if c in '"\\`$' else c for c in value) + '"'


def _stderr(raw: bytes | None) -> str:
    return (raw or b"").decode(errors="replace").strip()

"""The nixos backend: each agent is a NixOS container `h-<name>` (the manager `hm1nd`), via nixos-container.

A container's NixOS config is `--config`: the template plus the agent's own settings (packages,
claude settings, network). `nixos-container` has no --bind flag and ignores
/run/systemd/nspawn/*.nspawn, so the agent's socket dir (and the shared claude credentials dir)
is bound by rewriting EXTRA_NSPAWN_FLAGS in `<conf dir>/<C>.conf`; nspawn reads it only when the
container starts, which is why the hive's rebuild (stop, create = rewrite + update, start) is the
reconcile verb. Building a container is slow (a NixOS evaluation at least), so the conf also
keeps a hash of everything the container was built from, and `create` runs `update` only when
that changed. Containers are systemd units of their own (`container@<C>.service`): they outlive
the daemon, and `aclose` leaves them running. An agent's memory, CPU and process limits are that
unit's properties, set before every start (`systemctl set-property --runtime`); a container the
kernel OOM-killed in is stopped by systemd and reported as over its memory limit.
"""

import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import anyio
from anyio.abc import TaskStatus

from hyperhive_core.errors import BackendError, BackendUnavailableError, ConfigError
from hyperhive_core.lifecycle._nspawn_conf import Bind, read_value, set_binds, set_value
from hyperhive_core.lifecycle._systemd import SHOWN, UnitReport, limit_assignments, parse_show, unit_of
from hyperhive_core.lifecycle.base import AgentSpec, AgentStatus, BackendInfo
from hyperhive_core.lifecycle.desired import desired_hash
from hyperhive_core.names import MANAGER
from hyperhive_core.states import AgentState

logger = logging.getLogger(__name__)

SANDBOX_SOCKET_DIR = "/run/hive"
SANDBOX_CLAUDE_DIR = "/root/.claude"
# In the socket dir, so the container sees it as /run/hive/agent.env: the agent service's EnvironmentFile.
ENV_FILE = "agent.env"
# Enough for `terminate` (machinectl terminate) once a clean stop has run out of grace.
TERMINATE_WAIT_S = 30.0
# In the container's conf: the desired_hash of what it was last built from (written after the build).
HASH_KEY = "HYPERHIVE_CONFIG_HASH"
CONTAINMENT = "NixOS container (systemd-nspawn), its unit's cgroup limits"
# A nixpkgs attribute path: git, python3Packages.numpy.
_ATTRIBUTE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_'-]*(\.[A-Za-z_][A-Za-z0-9_'-]*)*")


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
        nix_path: str | None = None,
        systemctl: str = "systemctl",
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
        self._systemctl = shutil.which(systemctl)
        self._template = template.resolve()
        self._conf_dir = conf_dir
        self._nix_path = nix_path
        self._info = BackendInfo(name="nixos")
        if not any(entry.startswith("nixpkgs=") for entry in (nix_path or "").split(":")):
            self._info.warnings.append(
                f"NIX_PATH ({nix_path or 'unset'}) names no nixpkgs: nixos-container builds containers "
                "from the host's channel, or fails without one; the NixOS module sets NIX_PATH=nixpkgs=… "
                "to the flake's pinned nixpkgs"
            )
        if self._systemctl is None:
            self._info.warnings.append(
                f"{systemctl} is not on PATH: agents' memory, CPU and process limits cannot be set on "
                "their containers' units, so agents do not start; the NixOS module's service has it"
            )

    @property
    def info(self) -> BackendInfo:
        """The backend's name, and a warning when NIX_PATH names no nixpkgs to build containers from."""
        return self._info

    async def create(self, spec: AgentSpec) -> None:
        """Create the container, or update one whose desired config changed; either way its conf gets our binds.

        Raises:
            ConfigError: the agent's packages or claude settings cannot be put into a NixOS config.
            BackendError: nixos-container failed, or the conf file cannot be rewritten.
        """
        container = container_name(spec.name)
        config = container_config(self._template, spec)
        await anyio.Path(spec.socket_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
        if spec.claude_config_dir is not None:
            # nspawn refuses a bind whose source is missing; an empty dir waits for the login.
            await anyio.Path(spec.claude_config_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
        await anyio.to_thread.run_sync(self._write_env, spec)
        desired = await anyio.to_thread.run_sync(self._desired_hash, spec, config)
        # What `nixos-container list` reads, without a process per agent on a daemon's restore.
        conf = anyio.Path(self._conf_dir / f"{container}.conf")
        if not (await conf.exists() or await conf.is_symlink()):
            await self._run("create", container, "--config", config)
            await anyio.to_thread.run_sync(self._rewrite_conf, container, spec, desired)
            return
        # The binds first (cheap, and only read at the next start); the hash only once built.
        built = await anyio.to_thread.run_sync(self._rewrite_conf, container, spec, None)
        if built == desired:
            logger.debug("container %s: desired config unchanged (%s); not rebuilding it", container, desired)
            return
        logger.info("container %s: desired config changed; nixos-container update", container)
        await self._run("update", container, "--config", config)
        await anyio.to_thread.run_sync(self._rewrite_conf, container, spec, desired)

    async def start(self, spec: AgentSpec) -> None:
        """Limit the container's unit, then start it; a running one is left running (with the binds it started with).

        The limits reach a running container at once: systemd changes its cgroup in place.

        Raises:
            BackendError: systemctl refused the limits, or nixos-container failed.
        """
        container = container_name(spec.name)
        await self._systemd(["set-property", "--runtime", unit_of(container), *limit_assignments(spec.limits)])
        await self._run("start", container)

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
        """Running, stopped, failed (systemd stopped it for its memory) or missing, with its unit's limits and use.

        What `nixos-container status` does, in one process: a container without a conf does not
        exist, else `systemctl show container@<C>.service` says whether it is active, and also how
        it last ended, its limits and its use.
        """
        container = container_name(name)
        conf = anyio.Path(self._conf_dir / f"{container}.conf")
        if not (await conf.exists() or await conf.is_symlink()):
            detail = f"container {container} does not exist; rebuild re-creates it"
            return AgentStatus(state=AgentState.MISSING, sandbox=container, detail=detail)
        try:
            shown = await self._systemd(["show", unit_of(container), f"--property={','.join(SHOWN)}"])
        except BackendError as exc:
            return AgentStatus(state=AgentState.MISSING, sandbox=container, detail=str(exc))
        unit = parse_show(shown)
        status = AgentStatus(state=AgentState.STOPPED, sandbox=container, containment=CONTAINMENT, limits=unit.limits)
        if unit.active:
            return replace(status, state=AgentState.RUNNING, usage=unit.usage)
        if unit.oom_killed:
            return replace(status, state=AgentState.FAILED, detail=_oom_detail(container, unit))
        return status

    async def _systemd(self, argv: list[str]) -> str:
        """Run systemctl; its stdout. The one place its failures become hyperhive errors."""
        if self._systemctl is None:
            raise BackendUnavailableError(f"systemctl is not on PATH: cannot run systemctl {shlex.join(argv)}")
        try:
            result = await anyio.run_process([self._systemctl, *argv], check=True)
        except subprocess.CalledProcessError as exc:
            stderr = _stderr(exc.stderr) or f"exit status {exc.returncode}"
            raise BackendError(f"systemctl {shlex.join(argv)} failed: {stderr}") from exc
        except OSError as exc:
            raise BackendUnavailableError(f"cannot run {self._systemctl}: {exc}") from exc
        return result.stdout.decode(errors="replace")

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
        # The tool's nix-env finds `<nixpkgs/nixos>` through NIX_PATH: the configured one, always.
        env = None if self._nix_path is None else {**os.environ, "NIX_PATH": self._nix_path}
        try:
            return await anyio.run_process([self._executable, *argv], check=check, env=env)
        except subprocess.CalledProcessError as exc:
            verb, *rest = argv
            target = f" {rest[0]!r}" if rest else ""
            # --config is a whole NixOS module; the error names the template instead.
            shown = ["--config", f"<{self._template.name} + agent settings>"] if rest[1:2] == ["--config"] else rest[1:]
            options = f" {shlex.join(shown)}" if shown else ""
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

    def _desired_hash(self, spec: AgentSpec, config: str) -> str:
        """Everything the container is built and started from: a change in any of it means update."""
        try:
            template = hashlib.sha256(self._template.read_bytes()).hexdigest()
        except OSError as exc:
            raise BackendError(f"cannot read the container template {self._template}: {exc}") from exc
        return desired_hash(
            {
                # --config names the template by path; its bytes change when anything it is built
                # from does (the NixOS module's template names every package by store path).
                "config": config,
                "template_sha256": template,
                "nix_path": self._nix_path,
                "binds": [bind.flag for bind in self._binds(spec)],
                "private_network": not spec.share_net,
            }
        )

    def _rewrite_conf(self, container: str, spec: AgentSpec, built: str | None) -> str | None:
        """Write our binds and network into the conf (and `built`, the hash, when given).

        Returns the hash the conf held before.
        """
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
            previous = read_value(text, HASH_KEY)
            updated = set_binds(text, self._binds(spec))
            # Sharing the host's network is how agents reach claude's API; a private network has no route out.
            updated = set_value(updated, "PRIVATE_NETWORK", "0" if spec.share_net else "1")
            if built is not None:
                updated = set_value(updated, HASH_KEY, built)
        except ValueError as exc:
            raise BackendError(f"cannot rewrite {path}: {exc}") from exc
        if updated == text:
            return previous
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
        return previous


def container_config(template: Path, spec: AgentSpec) -> str:
    """The `--config` of the agent's container: the template, and the agent's own settings.

    nixos-container puts it into the container's configuration.nix; the template declares the
    options (hyperhive.agent.extraPackages, claudeSettings, network) and type-checks them.

    Raises:
        ConfigError: a package is not a nixpkgs attribute path, or the claude settings are not JSON.
    """
    for package in spec.packages:
        if not _ATTRIBUTE_PATH.fullmatch(package):
            raise ConfigError(
                f"package {package!r} of agent {spec.name!r} is not a nixpkgs attribute path "
                "(like git or python3Packages.numpy)"
            )
    settings: Mapping[str, object] = {
        "extraPackages": list(spec.packages),
        "claudeSettings": dict(spec.claude_settings),
        "network": "host" if spec.share_net else "private",
    }
    try:
        encoded = json.dumps(settings, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"claude settings of agent {spec.name!r} are not JSON: {exc}") from exc
    return f"imports = [ {_nix_string(str(template))} ]; hyperhive.agent = builtins.fromJSON {_nix_string(encoded)};"


def _oom_detail(container: str, unit: UnitReport) -> str:
    limit = unit.limits.memory_bytes
    shown = f"{limit / 2**20:.0f} MiB" if limit is not None else "none set"
    return (
        f"stopped: it went over its memory limit ({shown}); the kernel killed a process of it and systemd "
        f"stopped its container ({unit_of(container)}: Result={unit.result}); give it a higher limits.memory_mb "
        "in its agent file if it needs more"
    )


def _nix_string(text: str) -> str:
    # A Nix double-quoted string: backslash, quote and the start of an interpolation escaped.
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${") + '"'


def _unavailable(executable: str) -> str:
    return f"{executable} is not on PATH: the nixos backend runs on a NixOS host; use --backend local elsewhere"


def _systemd_quote(value: str) -> str:
    # Inside double quotes an EnvironmentFile takes these four escaped, and nothing else.
    return '"' + "".join("\\" + c if c in '"\\`$' else c for c in value) + '"'


def _stderr(raw: bytes | None) -> str:
    return (raw or b"").decode(errors="replace").strip()

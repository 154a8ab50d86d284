"""The fake `nixos-container` on PATH, with its conf and state dirs in a short temp dir.

Containers are built from the stand-in nixpkgs in nix/tests (NIX_PATH=nixpkgs=…, as the NixOS
module sets it to the flake's), whose `<nixpkgs/nixos>` evaluates each container's configuration
with the real module system; the template is nix/tests/agent-template.nix, what the NixOS
module's template is on a real host.
"""

import fcntl
import json
import os
import select
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
FAKES = ROOT / "tests" / "fakes"
TEMPLATE = ROOT / "nix" / "tests" / "agent-template.nix"
STAND_IN_NIXPKGS = ROOT / "nix" / "tests" / "nixpkgs"
# A fake container's leader is `sleep`: SIGKILL ends it at once, unless the machine is loaded.
LEADER_EXIT_S = 30.0


@dataclass(frozen=True, slots=True)
class FakeNixos:
    """Where the fake keeps containers: its conf dir (the real /etc/nixos-containers) and its state."""

    conf_dir: Path
    state_dir: Path

    def conf(self, container: str) -> Path:
        """The container's conf file."""
        return self.conf_dir / f"{container}.conf"

    def configuration(self, container: str) -> Path:
        """The container's etc/nixos/configuration.nix, as nixos-container writes it."""
        return self.state_dir / "containers" / container / "etc" / "nixos" / "configuration.nix"

    def state(self) -> dict[str, Any]:
        """The fake's recorded state: containers and every call it got."""
        path = self.state_dir / "state.json"
        return json.loads(path.read_text()) if path.exists() else {"containers": {}, "calls": [], "terminated": []}

    def container(self, name: str) -> dict[str, Any]:
        """One container's record."""
        return self.state()["containers"][name]

    def calls(self, verb: str) -> list[list[str]]:
        """Every call of `verb`, in order."""
        return [call for call in self.state()["calls"] if call[:1] == [verb]]

    def unit(self, container: str) -> dict[str, Any]:
        """What the fake systemd keeps of the container's unit: its properties and last result."""
        return self.state()["units"][f"container@{container}.service"]

    def oom_kill(self, container: str) -> None:
        """What the kernel and systemd do to a container over its MemoryMax, which the fake cannot enforce.

        The kernel's OOM killer kills a process in the unit's cgroup; systemd (OOMPolicy=stop)
        stops the unit, whose Result is then oom-kill.
        """
        with (self.state_dir / "lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self.state()
            record = state["containers"][container]
            leader = record["leader"]
            pidfd = os.pidfd_open(leader)
            try:
                os.kill(leader, signal.SIGKILL)
                # Gone (or a zombie: its pidfd is readable) before the fake says the unit stopped.
                readable, _, _ = select.select([pidfd], [], [], LEADER_EXIT_S)
                assert readable, f"the leader of {container} did not die of SIGKILL"
            finally:
                os.close(pidfd)
            record.update(state="down", leader=None)
            unit = state.setdefault("units", {}).setdefault(f"container@{container}.service", {"properties": {}})
            unit["result"] = "oom-kill"
            path = self.state_dir / "state.json"
            path.write_text(json.dumps(state, indent=2, sort_keys=True))

    def builds(self) -> int:
        """How many systems were built (create and update), over every container there is."""
        return sum(c["builds"] for c in self.state()["containers"].values())


@pytest.fixture
def fake_nixos(short_tmpdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNixos]:
    fake = FakeNixos(conf_dir=short_tmpdir / "etc-nc", state_dir=short_tmpdir / "fake-nc")
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_NIXOS_CONTAINER_CONF_DIR", str(fake.conf_dir))
    monkeypatch.setenv("FAKE_NIXOS_CONTAINER_STATE_DIR", str(fake.state_dir))
    monkeypatch.setenv("NIX_PATH", f"nixpkgs={STAND_IN_NIXPKGS}")
    yield fake
    # Containers outlive daemons on purpose; the test's must not outlive the test.
    for container in fake.state()["containers"].values():
        if container.get("leader") is not None:
            try:
                os.kill(container["leader"], signal.SIGKILL)
            except ProcessLookupError:
                pass

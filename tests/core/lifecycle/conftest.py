"""The fake `nixos-container` on PATH, with its conf and state dirs in a short temp dir.

Containers are built from the stand-in nixpkgs in nix/tests (NIX_PATH=nixpkgs=…, as the NixOS
module sets it to the flake's), whose `<nixpkgs/nixos>` evaluates each container's configuration
with the real module system; the template is nix/tests/agent-template.nix, what the NixOS
module's template is on a real host.
"""

import json
import os
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

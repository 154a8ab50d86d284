"""The fake `nixos-container` on PATH, with its conf and state dirs in a short temp dir."""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
FAKES = ROOT / "tests" / "fakes"
TEMPLATE = ROOT / "nix" / "templates" / "agent-base.nix"


@dataclass(frozen=True, slots=True)
class FakeNixos:
    """Where the fake keeps containers: its conf dir (the real /etc/nixos-containers) and its state."""

    conf_dir: Path
    state_dir: Path

    def conf(self, container: str) -> Path:
        """The container's conf file."""
        return self.conf_dir / f"{container}.conf"

    def state(self) -> dict[str, Any]:
        """The fake's recorded state: containers and every call it got."""
        path = self.state_dir / "state.json"
        return json.loads(path.read_text()) if path.exists() else {"containers": {}, "calls": []}

    def container(self, name: str) -> dict[str, Any]:
        """One container's record."""
        return self.state()["containers"][name]

    def calls(self, verb: str) -> list[list[str]]:
        """Every call of `verb`, in order."""
        return [call for call in self.state()["calls"] if call[:1] == [verb]]


@pytest.fixture
def fake_nixos(short_tmpdir: Path, monkeypatch: pytest.MonkeyPatch) -> FakeNixos:
    fake = FakeNixos(conf_dir=short_tmpdir / "etc-nc", state_dir=short_tmpdir / "fake-nc")
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_NIXOS_CONTAINER_CONF_DIR", str(fake.conf_dir))
    monkeypatch.setenv("FAKE_NIXOS_CONTAINER_STATE_DIR", str(fake.state_dir))
    return fake

"""Helpers shared by the tests: configs in short temp dirs and stand-in agent commands."""

import shutil
from pathlib import Path

import pytest

from hyperhive_core.config import HiveConfig

# A real process that idles until the daemon stops it: for tests that drive an agent's socket
# themselves and want no turn loop consuming its messages.
IDLE_AGENT = ("sleep", "infinity")

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")


def hive_config(root: Path, **overrides: object) -> HiveConfig:
    """A config whose run and state dirs live under `root` (a short temp dir)."""
    values: dict[str, object] = {"run_dir": root / "run", "state_dir": root / "state"}
    values.update(overrides)
    return HiveConfig.model_validate(values)

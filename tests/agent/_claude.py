"""A rig for running agents against the fake `claude` in tests/fakes: dirs, environment, its run log."""

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from tests.agent._process import REPO_ROOT
from tests.agent._server import FakeHive

FAKES_DIR = REPO_ROOT / "tests" / "fakes"
# The fake's `#!/usr/bin/env python3` must find the venv's python, which has the mcp SDK.
VENV_BIN = Path(sys.executable).parent
# A claude run starts python, the SDK and a bridge: bounds are generous, never a fixed sleep.
TURN_BOUND_S = 30.0
# Nothing from the machine running the tests may decide whether "claude" is logged in.
MACHINE_ONLY = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "CLAUDE_CONFIG_DIR")

Event = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ClaudeRig:
    """One agent's dirs under a short temp dir: its work dir, its claude config dir, the fake's log."""

    root: Path

    @property
    def socket(self) -> Path:
        return self.root / "mcp.sock"

    @property
    def work_dir(self) -> Path:
        return self.root / "work"

    @property
    def claude_dir(self) -> Path:
        return self.root / "claude"

    @property
    def log(self) -> Path:
        return self.root / "claude.log"

    def log_in(self) -> None:
        """Give the agent's claude a (dummy) login."""
        (self.claude_dir / ".credentials.json").write_text('{"claudeAiOauth": {"accessToken": "dummy"}}')

    def env(self, *, mode: str = "reply", path: str | None = None, **extra: str) -> dict[str, str]:
        """The agent's whole environment, as the daemon would set it, with the fake claude on PATH."""
        env = {k: v for k, v in os.environ.items() if k not in MACHINE_ONLY and not k.startswith("HIVE_")}
        env |= {
            "PATH": path if path is not None else f"{FAKES_DIR}:{VENV_BIN}:{os.environ.get('PATH', '')}",
            "HOME": str(self.work_dir),
            "HIVE_SOCKET": str(self.socket),
            "HIVE_AGENT_NAME": "alice",
            "CLAUDE_CONFIG_DIR": str(self.claude_dir),
            "FAKE_CLAUDE_MODE": mode,
            "FAKE_CLAUDE_LOG": str(self.log),
            "PYTHONUNBUFFERED": "1",
        }
        return env | extra

    def runs(self) -> list[dict[str, Any]]:
        """Every run of the fake claude so far: its argv, prompt and cwd."""
        if not self.log.exists():
            return []
        return [cast(dict[str, Any], json.loads(line)) for line in self.log.read_text().splitlines()]


def make_rig(root: Path) -> ClaudeRig:
    rig = ClaudeRig(root)
    rig.work_dir.mkdir()
    rig.claude_dir.mkdir()
    return rig


async def events_until(hive: FakeHive, subtype: str) -> list[Event]:
    """Reported events up to and including the next one whose subtype is `subtype`."""
    seen: list[Event] = []
    while True:
        event = await hive.events.receive()
        seen.append(event)
        if event.get("subtype") == subtype:
            return seen


def kinds(events: list[Event]) -> list[str]:
    """Each event as `type/subtype` (or `type/content-kind` for claude's assistant and user events)."""
    named: list[str] = []
    for event in events:
        kind = str(event.get("type"))
        detail = event.get("subtype")
        if detail is None and isinstance(message := event.get("message"), dict):
            content = cast(dict[str, Any], message).get("content")
            if isinstance(content, list) and content:
                detail = cast(dict[str, Any], cast(list[object], content)[0]).get("type")
        named.append(f"{kind}/{detail}")
    return named

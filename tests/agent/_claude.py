"""A rig for running agents against the real claude-code and the fake Messages API (tests/fakes).

claude is the pinned claude-code that `scripts/test` installs into `.tools/` (ensure_claude); its
`settings.json` in the rig's config dir points it at a `MessagesApi` the test serves on 127.0.0.1.
"""

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from tests.agent._process import REPO_ROOT
from tests.agent._server import FakeHive
from tests.fakes.messages_api import DUMMY_KEY, MessagesApi

CLAUDE_BIN_DIR = REPO_ROOT / ".tools" / "node_modules" / ".bin"
CLAUDE = CLAUDE_BIN_DIR / "claude"
VENV_BIN = Path(sys.executable).parent
# A real claude starts in 1-3 s (more on a loaded machine): bounds are generous, never a fixed sleep.
TURN_BOUND_S = 60.0
# Nothing from the machine running the tests may decide whether claude is logged in.
MACHINE_ONLY = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CONFIG_DIR",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
)

# CI installs claude-code (scripts/test runs ensure_claude), so there a missing claude fails loudly.
needs_claude = pytest.mark.skipif(
    not CLAUDE.exists() and not os.environ.get("CI"),
    reason=f"claude-code is not installed at {CLAUDE}: ./scripts/test installs it (ensure_claude)",
)

Event = dict[str, Any]


def claude_path(path: str | None = None) -> str:
    """A PATH with the pinned claude and this venv's python first."""
    return f"{CLAUDE_BIN_DIR}:{VENV_BIN}:{path if path is not None else os.environ.get('PATH', '')}"


@dataclass(frozen=True, slots=True)
class ClaudeRig:
    """One agent's dirs under a short temp dir: its socket, its work dir, its claude config dir."""

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

    def use_api(self, api: MessagesApi, *, key: str = DUMMY_KEY, **env: str) -> None:
        """Log claude in to `api` with `key` (its settings.json), as an operator would with a gateway."""
        api.write_settings(self.claude_dir, key=key, **env)

    def env(self, *, path: str | None = None, **extra: str) -> dict[str, str]:
        """The agent's whole environment, as the daemon would set it, with the real claude on PATH."""
        env = {k: v for k, v in os.environ.items() if k not in MACHINE_ONLY and not k.startswith("HIVE_")}
        env |= {
            "PATH": path if path is not None else claude_path(),
            "HOME": str(self.work_dir),
            "HIVE_SOCKET": str(self.socket),
            "HIVE_AGENT_NAME": "alice",
            "CLAUDE_CONFIG_DIR": str(self.claude_dir),
            "PYTHONUNBUFFERED": "1",
        }
        return env | extra

    def session(self) -> str | None:
        """The session id the agent keeps for --resume."""
        path = self.work_dir / ".hive-claude-session"
        return path.read_text().strip() if path.exists() else None


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


def children(pid: int) -> list[int]:
    """The pids of a process's children (from /proc, so no polling of our own)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found

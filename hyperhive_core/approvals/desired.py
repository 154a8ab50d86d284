"""The desired hive at one revision of the state repo: every agent's validated file and the hive's settings.

A revision with one bad file is refused as a whole (the first bad file, by path, is named): half
of a broken commit is never applied, and an agent whose file does not parse is never taken for
removed. Parsed files are cached by blob id, so reading main again after a commit parses only
what changed.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from hyperhive_core.approvals.agentfile import (
    AGENTS_DIR,
    HIVE_FILE,
    AgentFile,
    HiveSettings,
    config_hash,
    parse_agent,
    parse_settings,
)
from hyperhive_core.approvals.repo import Snapshot, StateRepo
from hyperhive_core.errors import AgentFileError


@dataclass(frozen=True, slots=True)
class DesiredHive:
    """Every agent main wants, with its settings, and the hive-wide settings."""

    rev: str
    agents: Mapping[str, AgentFile]
    settings: HiveSettings
    hashes: Mapping[str, str] = field(default_factory=dict[str, str])

    def hash_of(self, name: str) -> str:
        """The config hash of an agent of this revision."""
        return self.hashes.get(name) or config_hash(self.agents[name])


def is_desired_file(path: str) -> bool:
    """Whether a path of the repo describes the hive (agents/* and hive.toml); other files are the operator's."""
    return path == HIVE_FILE or path.startswith(f"{AGENTS_DIR}/")


class DesiredReader:
    """Reads and validates revisions of the state repo."""

    def __init__(self, repo: StateRepo) -> None:
        self._repo = repo
        self._agents: dict[tuple[str, str], tuple[str, AgentFile]] = {}
        self._settings: dict[str, HiveSettings] = {}
        self._last: DesiredHive | None = None

    async def read(self, rev: str) -> DesiredHive:
        """The desired hive of commit `rev`.

        Raises:
            AgentFileError: a file of the revision is not valid.
            StateRepoError: git failed.
        """
        if self._last is not None and self._last.rev == rev:
            return self._last
        snapshot = await self._repo.snapshot(rev)
        desired = await self.from_snapshot(snapshot)
        self._last = desired
        return desired

    async def from_snapshot(self, snapshot: Snapshot, overlay: Mapping[str, bytes | None] | None = None) -> DesiredHive:
        """The desired hive of a snapshot, with `overlay`'s files (None: deleted) put over it.

        Raises:
            AgentFileError: a file is not valid.
        """
        overlay = overlay or {}
        files = {p: b for p, b in snapshot.files.items() if is_desired_file(p) and p not in overlay}
        missing = [
            blob for path, blob in files.items() if (path, blob) not in self._agents and blob not in self._settings
        ]
        contents = await self._repo.blobs(missing)
        agents: dict[str, AgentFile] = {}
        settings = HiveSettings()
        fresh_agents: dict[tuple[str, str], tuple[str, AgentFile]] = {}
        fresh_settings: dict[str, HiveSettings] = {}
        problems: list[AgentFileError] = []
        entries: list[tuple[str, str | None, bytes | None]] = [(p, b, contents.get(b)) for p, b in files.items()]
        entries += [(p, None, raw) for p, raw in overlay.items() if raw is not None and is_desired_file(p)]
        for path, blob, raw in sorted(entries, key=lambda entry: entry[0]):
            try:
                if path == HIVE_FILE:
                    parsed_settings = self._settings.get(blob or "") if blob else None
                    if parsed_settings is None:
                        assert raw is not None
                        parsed_settings = parse_settings(raw)
                    if blob:
                        fresh_settings[blob] = parsed_settings
                    settings = parsed_settings
                    continue
                cached = self._agents.get((path, blob)) if blob else None
                if cached is None:
                    assert raw is not None
                    cached = parse_agent(path, raw)
                if blob:
                    fresh_agents[(path, blob)] = cached
                name, agent = cached
                agents[name] = agent
            except AgentFileError as exc:
                problems.append(exc)
        # Only what this revision holds stays cached: the cache never outgrows the hive.
        if not overlay:
            self._agents, self._settings = fresh_agents, fresh_settings
        if problems:
            raise problems[0]
        return DesiredHive(snapshot.rev, agents, settings, {name: config_hash(a) for name, a in agents.items()})

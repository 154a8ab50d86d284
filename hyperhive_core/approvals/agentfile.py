"""The files of the desired hive: `agents/<name>.toml` (one agent) and `hive.toml` (hive-wide settings).

Every field is optional with a default, so a file holds only what differs from the defaults and
later features add fields without touching existing files. A file that fails validation is
refused with the file, the line and the field; `config_hash` is what the reconciler compares to
decide whether an agent must be rebuilt (its validated settings, not its text: a comment or a
reordering rebuilds nothing).
"""

import hashlib
import json
import re
import tomllib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hyperhive_core.approvals._toml import Value, dumps
from hyperhive_core.errors import AgentFileError, InvalidAgentNameError
from hyperhive_core.names import MANAGER, validate_agent_name

AGENTS_DIR = "agents"
HIVE_FILE = "hive.toml"
AGENT_SUFFIX = ".toml"
DAY_S = 86_400.0
Driver = Literal["auto", "claude", "echo"]
PermissionMode = Literal["default", "acceptEdits", "bypassPermissions", "plan", "dontAsk"]
# The agent's turn loop checks the same shape (hyperhive_agent.config.TOOL_RULE).
TOOL_RULE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*(\(.*\))?")
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}")


class _Section(BaseModel):
    # strict: a hand-written `prune = "yes"` or `memory_mb = "512"` is an error to fix, not a guess.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ClaudeSettings(_Section):
    """[claude]: how claude runs in this agent (the turn loop passes it to claude at every start)."""

    model: str | None = Field(default=None, description="The model claude uses; none: claude's default.")
    tools: list[str] | None = Field(
        default=None,
        description="Tools claude is offered and may use without asking: names or rules (Bash(git *)); "
        "none: the hive's working set (Bash, Read, Edit, Write, Glob, Grep); []: the hive's tools only.",
    )
    permission_mode: PermissionMode | None = Field(
        default=None, description="claude's --permission-mode; none: default (allowed tools run, others are refused)."
    )

    @field_validator("tools")
    @classmethod
    def _tool_rules(cls, tools: list[str] | None) -> list[str] | None:
        for tool in tools or ():
            if not TOOL_RULE.fullmatch(tool):
                raise ValueError(f"{tool!r} is no tool name or rule (like Read, Bash or Bash(git *))")
        return tools

    @field_validator("model")
    @classmethod
    def _model_name(cls, model: str | None) -> str | None:
        if model is not None and not MODEL_NAME.fullmatch(model):
            raise ValueError("give a model name or alias, like sonnet or claude-sonnet-4-5")
        return model


class ExtraDir(_Section):
    """A host directory bound into the agent's sandbox."""

    path: str = Field(description="An absolute host path; seen at the same path inside.")
    mode: Literal["ro", "rw"] = "ro"

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError("give an absolute path")
        return path


class SandboxSettings(_Section):
    """[sandbox]: what the agent's sandbox lets it reach."""

    network: bool | None = Field(default=None, description="Share the host's network; none: the daemon's setting.")
    extra_dirs: list[ExtraDir] = Field(
        default_factory=list[ExtraDir], description="More host dirs in the sandbox, read-only or read-write."
    )
    repo: str | None = Field(
        default=None,
        description="A git repository (absolute path): the agent works in its own clone of it, on branch hive/<name>.",
    )

    @field_validator("repo")
    @classmethod
    def _absolute_repo(cls, repo: str | None) -> str | None:
        if repo is not None and not repo.startswith("/"):
            raise ValueError("give an absolute path")
        return repo


class Limits(_Section):
    """[limits]: the agent's resources; unset: the daemon's --agent-* defaults (the local backend's cgroups)."""

    memory_mb: int | None = Field(default=None, gt=0)
    cpus: float | None = Field(default=None, gt=0)
    pids: int | None = Field(default=None, gt=0)


class Budget(_Section):
    """[budget]: what the agent may spend. Recorded, not applied: budgets are set with `hivectl budget`."""

    usd_per_day: float | None = Field(default=None, ge=0)
    usd_total: float | None = Field(default=None, ge=0)
    tokens_per_day: int | None = Field(default=None, ge=0)
    tokens_total: int | None = Field(default=None, ge=0)


class NixosSettings(_Section):
    """[nixos]: the agent's container, on the nixos backend (the container template reads it)."""

    packages: list[str] = Field(
        default_factory=list[str], description="nixpkgs attribute names added to the container."
    )


class AgentFile(_Section):
    """`agents/<name>.toml`: one agent of the desired hive; its name is the file's."""

    role: str = Field(default="", description="What the agent is for; it opens the agent's prompt.")
    driver: Driver = "auto"
    backend: str | None = Field(default=None, description="The lifecycle backend; none: the daemon's.")
    host: str | None = Field(
        default=None, description="The host whose daemon runs it (a hive of several hosts); none: here."
    )
    generation: int = Field(default=0, ge=0, description="Bump it to rebuild the agent with the same settings.")
    claude: ClaudeSettings = ClaudeSettings()
    sandbox: SandboxSettings = SandboxSettings()
    limits: Limits = Limits()
    budget: Budget = Budget()
    nixos: NixosSettings = NixosSettings()


class HiveSettings(_Section):
    """`hive.toml`: how the reconciler and the approvals behave, for the whole hive."""

    prune: bool = Field(default=False, description="Stop agents that run but that main does not know.")
    proposal_ttl_s: float = Field(default=DAY_S, gt=0, description="A proposal with no verdict expires after this.")
    operation_timeout_s: float = Field(default=300.0, gt=0, description="Most one reconcile step may take.")
    restart_backoff_s: float = Field(default=1.0, gt=0, description="First wait before restarting a dead agent.")
    restart_backoff_max_s: float = Field(default=300.0, gt=0, description="Longest wait between restarts.")

    @model_validator(mode="after")
    def _backoff_in_order(self) -> "HiveSettings":
        if self.restart_backoff_max_s < self.restart_backoff_s:
            raise ValueError(
                f"restart_backoff_max_s ({self.restart_backoff_max_s:g}) is below restart_backoff_s "
                f"({self.restart_backoff_s:g}); raise it"
            )
        return self


# Fields this daemon applies today (some on one backend only); any other field set to a
# non-default value is reported as not applied (in the plan and the agent's status), never
# silently ignored.
# claude's settings travel in the agent's environment, which every backend passes to it.
APPLIED_FIELDS = frozenset(
    {
        "role",
        "driver",
        "backend",
        "generation",
        "sandbox.network",
        "claude.model",
        "claude.tools",
        "claude.permission_mode",
        "host",
    }
)
APPLIED_BY_BACKEND = {
    "local": frozenset({"limits.memory_mb", "limits.pids", "limits.cpus", "sandbox.extra_dirs", "sandbox.repo"}),
    "nixos": frozenset({"nixos.packages", "limits.memory_mb", "limits.pids", "limits.cpus"}),
}


def agent_path(name: str) -> str:
    """Where agent `name`'s file lives in the state repo."""
    return f"{AGENTS_DIR}/{name}{AGENT_SUFFIX}"


def agent_name(path: str) -> str:
    """The agent a file under agents/ describes.

    Raises:
        AgentFileError: the path is not `agents/<name>.toml` with a valid agent name.
    """
    stem = path.removeprefix(f"{AGENTS_DIR}/")
    if "/" in stem or not stem.endswith(AGENT_SUFFIX):
        raise AgentFileError(path, 0, "", f"not an agent file: agents/ holds only <name>{AGENT_SUFFIX} files")
    name = stem.removesuffix(AGENT_SUFFIX)
    if name != MANAGER:
        try:
            validate_agent_name(name)
        except InvalidAgentNameError as exc:
            raise AgentFileError(path, 0, "", f"the file name is no agent name ({exc.reason})") from exc
    return name


def _plain(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


def settings_diff(file: AgentFile) -> dict[str, Any]:
    """The fields of `file` that differ from the defaults, as dotted names: {"sandbox.network": False}."""
    default = _plain(AgentFile())
    found: dict[str, Any] = {}
    for key, value in _plain(file).items():
        if isinstance(value, dict):
            inner_default: dict[str, Any] = default[key]
            found.update(
                {f"{key}.{k}": v for k, v in value.items() if v != inner_default[k]}  # pyright: ignore[reportUnknownVariableType]
            )
        elif value != default[key]:
            found[key] = value
    return found


def not_applied(file: AgentFile, backend: str) -> list[str]:
    """Fields set in `file` that a daemon on `backend` does not apply (shown, never silently dropped)."""
    applied = APPLIED_FIELDS | APPLIED_BY_BACKEND.get(backend, frozenset())
    return sorted(key for key in settings_diff(file) if key not in applied)


def config_hash(file: AgentFile) -> str:
    """A short hash of the agent's validated settings: equal hashes run the same agent."""
    canonical = json.dumps(_plain(file), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _section_text(model: BaseModel) -> dict[str, Value]:
    default = _plain(type(model)())
    return {key: value for key, value in _plain(model).items() if value != default[key] and value is not None}


def render_agent(name: str, file: AgentFile) -> str:
    """The text of `agents/<name>.toml`: only what differs from the defaults, in a fixed order."""
    document: dict[str, Value] = {}
    for key, value in _plain(file).items():
        section = getattr(file, key)
        if isinstance(section, BaseModel):
            if table := _section_text(section):
                document[key] = table
        elif value != _plain(AgentFile())[key] and value is not None:
            document[key] = value
    what = "the manager" if name == MANAGER else f"agent {name}"
    return dumps(document, header=f"{what}; the fields and their defaults: README.md, 'Approvals'")


def render_settings(settings: HiveSettings) -> str:
    """The text of `hive.toml`, every setting written out so the file documents itself."""
    return dumps(_plain(settings), header="hive-wide settings; see README.md, 'Approvals'")


# parsing, with the line of each error

_TABLE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\"' -]+?)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")


def _key_parts(text: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in text.split("."))


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Where each key (as its full dotted path) and each table header is, 1-based; first one wins."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("#"):
            continue
        if match := _TABLE.match(line):
            table = _key_parts(match[1])
            lines.setdefault(table, number)
        elif match := _KEY.match(line):
            lines.setdefault(table + _key_parts(match[1]), number)
    return lines


def _locate(text: str, loc: tuple[int | str, ...]) -> int:
    where = _key_lines(text)
    path = tuple(str(part) for part in loc if isinstance(part, str))
    for size in range(len(path), 0, -1):
        if (line := where.get(path[:size])) is not None:
            return line
    return 1 if text.strip() else 0


def _validation_error(path: str, text: str, error: ValidationError) -> AgentFileError:
    problems = error.errors(include_url=False)
    first = problems[0]
    loc = tuple(first["loc"])
    field = ".".join(str(part) for part in loc) or "(file)"
    problem = first["msg"]
    if first["type"] == "extra_forbidden":
        problem = "unknown field (a typo?); see README.md, 'Approvals' for the fields"
    elif "input" in first and first["type"] != "missing":
        got = repr(first["input"])
        problem += f" (got {got if len(got) <= 60 else got[:57] + '...'})"
    if len(problems) > 1:
        problem += f"; and {len(problems) - 1} more problem(s) in this file"
    return AgentFileError(path, _locate(text, loc), field, problem)


def _load(path: str, raw: bytes) -> tuple[str, dict[str, Any]]:
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise AgentFileError(path, 0, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        line = int(m[1]) if (m := re.search(r"at line (\d+)", message)) else 0
        message = re.sub(r"\s*\(at line \d+, column (\d+)\)", r" (column \1)", message)
        raise AgentFileError(path, line, "", f"not valid TOML: {message}") from exc


def parse_agent(path: str, raw: bytes) -> tuple[str, AgentFile]:
    """The agent a file describes, and its settings.

    Raises:
        AgentFileError: a bad path, not TOML, or a field that fails validation (with its line).
    """
    name = agent_name(path)
    text, data = _load(path, raw)
    try:
        return name, AgentFile.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(path, text, exc) from None


def parse_settings(raw: bytes) -> HiveSettings:
    """The hive-wide settings of `hive.toml`.

    Raises:
        AgentFileError: not TOML, or a field that fails validation (with its line).
    """
    text, data = _load(HIVE_FILE, raw)
    try:
        return HiveSettings.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(HIVE_FILE, text, exc) from None

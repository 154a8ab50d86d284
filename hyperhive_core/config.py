"""HiveConfig: where the hive keeps its sockets and state, and the daemon's bounds.

The only module that reads the environment (besides typer's `envvar=`). Directory defaults:
explicit flag, then `HYPERHIVE_RUN_DIR`/`HYPERHIVE_STATE_DIR`, then systemd's
`RUNTIME_DIRECTORY`/`STATE_DIRECTORY` (a system service), then `/run/hyperhive` and
`/var/lib/hyperhive` for root, else the XDG runtime and state dirs of the user.
"""

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hyperhive_core.broker.dburl import check_database_url
from hyperhive_core.dashboard.address import DEFAULT_ADDRESS, Address, parse_setting
from hyperhive_core.errors import ConfigError

MAX_BODY_BYTES = 64 * 1024
MAX_INBOX_DEPTH = 10_000
STOP_GRACE_S = 5.0
TURN_TIMEOUT_S = 600.0
MAX_EXCHANGES = 20
RATE_LIMIT = 120
RATE_WINDOW_S = 60.0
# Each agent's default limits (a spawn may set its own): claude-code with its node and MCP
# children takes a few hundred MB and some dozens of threads, which count as processes.
AGENT_MEMORY_MB = 2048
AGENT_PIDS = 512
AGENT_CPUS = 1.0
MIN_FREE_MB = 64
# How long a named reader's leases wait for it after its session ended or the daemon restarted: as
# long as a bridge waits for a restarting daemon, and far longer than the turn loop's reconnect.
LEASE_HOLD_S = 60.0
# A stat of main's ref files this often notices a change made with plain git (a push, a merge).
WATCH_INTERVAL_S = 1.0
HEALTH_INTERVAL_S = 30.0
# How often a daemon fetches the shared desired state (`desired_remote`).
DESIRED_FETCH_S = 3.0
# AF_UNIX paths are limited to 108 bytes including the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107
SandboxMode = Literal["auto", "bwrap", "none"]


def default_run_dir() -> Path:
    """Return the run dir a daemon started now would use, ignoring flags."""
    if env := os.environ.get("HYPERHIVE_RUN_DIR"):
        return Path(env)
    if env := os.environ.get("RUNTIME_DIRECTORY"):
        return Path(env.split(":")[0])
    if os.geteuid() == 0:
        return Path("/run/hyperhive")
    if env := os.environ.get("XDG_RUNTIME_DIR"):
        return Path(env) / "hyperhive"
    return Path(f"/tmp/hyperhive-{os.geteuid()}")


def default_state_dir() -> Path:
    """Return the state dir a daemon started now would use, ignoring flags."""
    if env := os.environ.get("HYPERHIVE_STATE_DIR"):
        return Path(env)
    if env := os.environ.get("STATE_DIRECTORY"):
        return Path(env.split(":")[0])
    if os.geteuid() == 0:
        return Path("/var/lib/hyperhive")
    if env := os.environ.get("XDG_STATE_HOME"):
        return Path(env) / "hyperhive"
    return Path.home() / ".local" / "state" / "hyperhive"


def default_failpoints() -> frozenset[str]:
    """`HYPERHIVE_FAILPOINTS` (comma-separated): where the daemon kills itself on purpose, for crash tests."""
    return frozenset(f for f in os.environ.get("HYPERHIVE_FAILPOINTS", "").split(",") if f)


def default_dashboard() -> str | None:
    """`HYPERHIVE_DASHBOARD` (`HOST:PORT`, or `off`), else 127.0.0.1:8420."""
    address = parse_setting(os.environ.get("HYPERHIVE_DASHBOARD", DEFAULT_ADDRESS))
    return None if address is None else str(address)


class HiveConfig(BaseModel):
    """Everything the daemon needs to know, loaded once at the edge and passed down."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_dir: Path = Field(default_factory=default_run_dir)
    state_dir: Path = Field(default_factory=default_state_dir)
    backend: str = "local"
    sandbox: SandboxMode = "auto"
    share_net: bool = True
    max_body_bytes: int = Field(default=MAX_BODY_BYTES, gt=0)
    max_inbox_depth: int = Field(default=MAX_INBOX_DEPTH, gt=0)
    stop_grace_s: float = Field(default=STOP_GRACE_S, ge=0)
    # Command that runs an agent's turn loop; None = this interpreter's `-m hyperhive_agent serve`.
    agent_command: tuple[str, ...] | None = None
    # Start the manager (hm1nd) with the daemon when the hive has none yet.
    start_manager: bool = False
    # Command that runs the manager (hm1nd); None = this interpreter's `-m hyperhive_mind serve`.
    manager_command: tuple[str, ...] | None = None
    turn_timeout_s: float = Field(default=TURN_TIMEOUT_S, gt=0)
    # The runaway guard: messages a pair of agents may exchange with no operator or manager
    # message in between, and each agent's sending rate.
    max_exchanges: int = Field(default=MAX_EXCHANGES, gt=0)
    rate_limit: int = Field(default=RATE_LIMIT, gt=0)
    rate_window_s: float = Field(default=RATE_WINDOW_S, gt=0)
    # The database: how long a write waits for a lock another process holds, and a size cap
    # (None: as large as the disk allows) so a runaway hive cannot fill the host's disk.
    db_busy_timeout_s: float = Field(default=5.0, gt=0)
    # Every agent's limits unless its spawn set its own (None: unlimited); enforced where the
    # backend has cgroups, and shown by `hivectl status`.
    agent_memory_mb: int | None = Field(default=AGENT_MEMORY_MB, gt=0)
    agent_pids: int | None = Field(default=AGENT_PIDS, gt=0)
    agent_cpus: float | None = Field(default=AGENT_CPUS, gt=0)
    max_db_mb: int | None = Field(default=None, gt=0)
    # A PostgreSQL URL (no password in it: see broker/dburl.py): the hive's messages, events and
    # records live there, shared with the daemons of other hosts. None: SQLite in the state dir.
    database: str | None = None
    # This daemon's host in a hive of several hosts (on a shared database): the HOST its agents are
    # placed on. Tests give each daemon its own.
    host_name: str = Field(default_factory=socket.gethostname, min_length=1)
    # The desired hive shared by every host (GitOps): a git URL (a path, ssh://, https://) the state
    # repo mirrors. The daemon fetches it at start and every `desired_fetch_s`, and pushes each of its
    # writes there (compare-and-swap) before its own ref moves. None: the state repo is this host's own.
    desired_remote: str | None = Field(default=None, min_length=1)
    desired_fetch_s: float = Field(default=DESIRED_FETCH_S, gt=0)
    # Sends are refused while the state dir's disk has less than this free, so what is queued can
    # still be handed out and acknowledged (the operator reads its agents' last words).
    min_free_mb: int = Field(default=MIN_FREE_MB, ge=0)
    # How long a named reader's leases (the turn loop's) wait for it after its connection ended.
    lease_hold_s: float = Field(default=LEASE_HOLD_S, gt=0)
    # A host dir with claude's login (the operator logs in once); bound into every sandbox as the
    # agent's ~/.claude. None: agents have no credentials and the claude driver falls back to echo.
    claude_config_dir: Path | None = None
    # nixos backend: the container template (a NixOS module file), where nixos-container keeps its
    # conf files, and the tool itself (tests point both at a fake).
    nixos_template: Path | None = None
    nixos_conf_dir: Path = Path("/etc/nixos-containers")
    nixos_container: str = "nixos-container"
    # The state repo: the git executable, how often the daemon looks whether main moved under it
    # (a push, a merge with plain git), and how often it checks every agent's health anyway
    # (the local backend also hears of an agent's exit at once).
    git: str = "git"
    watch_interval_s: float = Field(default=WATCH_INTERVAL_S, gt=0)
    health_interval_s: float = Field(default=HEALTH_INTERVAL_S, gt=0)
    # The Nix search path nixos-container builds containers with (its `<nixpkgs/nixos>`); the
    # NixOS module sets NIX_PATH=nixpkgs=<the flake's nixpkgs> for the service.
    nixos_nix_path: str | None = Field(default_factory=lambda: os.environ.get("NIX_PATH") or None)
    # The dashboard (HTTP + SSE): `HOST:PORT` it listens on (port 0: any free one), None for none.
    dashboard: str | None = Field(default_factory=default_dashboard)
    # A file whose content is the dashboard's access token (required off loopback); None: a token
    # the daemon makes once and keeps in <state dir>/dashboard.token.
    dashboard_token_file: Path | None = None
    # Host header values the dashboard accepts besides its own address (and, on loopback,
    # localhost): the names a browser reaches it by through a proxy or a tunnel.
    dashboard_hosts: tuple[str, ...] = ()
    # How often the dashboard's sampler records the hive's stats.
    dashboard_sample_s: float = Field(default=10.0, gt=0)
    # Crash tests only: named points where the daemon SIGKILLs itself (`send-committed`: a send is
    # committed and not yet answered; `apply` or `apply:<agent>`: a reconcile step acted and is not
    # yet journaled done; `approve-merged`: an approval is merged into main, not yet applied).
    # Empty in any real use.
    failpoints: frozenset[str] = Field(default_factory=default_failpoints)

    @field_validator("database")
    @classmethod
    def _check_database(cls, value: str | None) -> str | None:
        return None if value is None else check_database_url(value)

    @field_validator("dashboard")
    @classmethod
    def _check_dashboard(cls, value: str | None) -> str | None:
        address = parse_setting(value)
        return None if address is None else str(address)

    @property
    def dashboard_address(self) -> Address | None:
        """Where the dashboard listens, or None when it is off."""
        return parse_setting(self.dashboard)

    @property
    def dashboard_info(self) -> Path:
        """Where a running daemon says where its dashboard is (for `hivectl dashboard`)."""
        return self.run_dir / "dashboard.json"

    @property
    def host_socket(self) -> Path:
        """The operator's socket."""
        return self.run_dir / "host.sock"

    @property
    def state_repo(self) -> Path:
        """The git repository of the desired hive (bare): main, and the manager's proposal branches."""
        return self.state_dir / "hive.git"

    @property
    def broker_path(self) -> Path:
        """The SQLite database that holds messages and the desired hive."""
        return self.state_dir / "broker.sqlite"

    def agent_socket_dir(self, name: str) -> Path:
        """The dir bound at /run/hive inside the agent's sandbox."""
        return self.run_dir / "agents" / name

    def agent_socket(self, name: str) -> Path:
        """The agent's MCP socket; its path is the agent's identity."""
        return self.agent_socket_dir(name) / "mcp.sock"

    def agent_state_dir(self, name: str) -> Path:
        """Per-agent state: its work dir and its log."""
        return self.state_dir / "agents" / name

    def check_socket_paths(self) -> None:
        """Fail early when the longest socket path would not fit AF_UNIX.

        Raises:
            ConfigError: the run dir is too deep for unix socket paths.
        """
        longest = self.agent_socket("x" * 9)
        if len(os.fsencode(longest)) > MAX_SOCKET_PATH_BYTES:
            raise ConfigError(
                f"run dir {self.run_dir} is too long: socket paths like {longest} exceed "
                f"{MAX_SOCKET_PATH_BYTES} bytes; choose a shorter --run-dir"
            )

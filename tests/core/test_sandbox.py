"""The local backend's sandbox, seen from inside: a probe agent looks around and writes what it found.

The probe is a small Python program run as the agent's command in real bubblewrap under a real
daemon. It tries each write, read and connection itself and reports in `report.json` in its work
dir, which the test reads once `wait_exit` says the probe is done.
"""

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Listener, SocketAttribute, SocketStream

from hyperhive_core.client import open_hive_client
from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import running_daemon
from hyperhive_core.lifecycle.local import AGENT_TOOLS, PASSTHROUGH_ENV, LocalBackend, _interpreter_paths, _tool_paths
from tests.helpers import hive_config, needs_bwrap

pytestmark = [pytest.mark.containers, needs_bwrap]

REPO = Path(__file__).resolve().parents[2]
HOST_HOME = Path.home().resolve()
SECRET = "sk-test-SANDBOX-SECRET"
BOUND_S = 30.0
MARK = ".hh-probe"

# Runs as every agent of the hive: bob idles, alice probes. Its one argument is PARAMS as JSON.
PROBE = r"""
import ctypes, errno, json, os, signal, socket, sys
if os.environ["HIVE_AGENT_NAME"] != "alice":
    signal.pause()
P = json.loads(sys.argv[1])
MARK = P["mark"]

def can_write(d):
    path = os.path.join(d, MARK)
    try:
        with open(path, "w") as f:
            f.write("x")
    except OSError:
        return False
    os.remove(path)
    return True

def can_read(p):
    try:
        with open(p, "rb") as f:
            return len(f.read(64)) > 0
    except OSError:
        return False

def listing(d):
    try:
        return sorted(os.listdir(d))
    except OSError:
        return None

def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[0].decode()
    except OSError:
        return None

libc = ctypes.CDLL(None, use_errno=True)

def errno_of(call, *args):
    return 0 if call(*args) == 0 else ctypes.get_errno()

r = {
    "write": {d: can_write(d) for d in P["write"]},
    "exists": {p: os.path.lexists(p) for p in P["exists"]},
    "read": {p: can_read(p) for p in P["read"]},
    "list": {d: listing(d) for d in P["list"]},
    "env": dict(os.environ),
    "procs": {e: cmdline(e) for e in os.listdir("/proc") if e.isdigit()},
    "self": os.getpid(),
    "cap_eff": next(l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff:")),
    # MNT_DETACH; CLONE_NEWUSER
    "umount_tmp": errno_of(libc.umount2, b"/tmp", 2),
    "umount_home": errno_of(libc.umount2, P["home"].encode(), 2),
    "unshare_user": errno_of(libc.unshare, 0x10000000),
}
try:
    with socket.create_connection(("127.0.0.1", P["port"]), timeout=5) as s:
        s.sendall(b"hello from the sandbox")
    r["net"] = "connected"
except OSError as exc:
    r["net"] = type(exc).__name__
with open("report.json", "w") as f:
    json.dump(r, f)
"""


@dataclass(frozen=True, slots=True)
class Probed:
    """What the probe reported, and what the test knew about the host when it ran."""

    config: HiveConfig
    report: dict[str, Any]
    daemon_pid: int
    reached_listener: bool
    # the probe's "exists" paths, as the host saw them while the hive ran
    host_exists: dict[str, bool]

    @property
    def alice_work(self) -> Path:
        return self.config.agent_state_dir("alice") / "work"

    @property
    def bob_work(self) -> Path:
        return self.config.agent_state_dir("bob") / "work"


def probe_params(config: HiveConfig, port: int) -> dict[str, Any]:
    bob_work = config.agent_state_dir("bob") / "work"
    state, run = config.state_dir, config.run_dir
    return {
        "mark": MARK,
        "port": port,
        "home": str(HOST_HOME),
        "write": [
            str(config.agent_state_dir("alice") / "work"),
            "/tmp",
            "/",
            "/etc",
            "/usr",
            str(REPO),
            str(HOST_HOME),
            str(bob_work),
            str(state),
            str(state / "agents"),
            str(run),
            str(run / "agents"),
        ],
        "exists": [
            str(bob_work),
            str(bob_work / "bob-secret.txt"),
            str(config.broker_path),
            str(config.agent_state_dir("alice") / "agent.log"),
            str(config.host_socket),
            str(config.agent_socket("bob")),
            str(config.agent_socket("alice")),
            "/run/hive/mcp.sock",
        ],
        "read": ["/etc/shadow", "/etc/gshadow", *map(str, sorted(Path("/etc/ssh").glob("ssh_host_*_key")))],
        "list": [
            str(HOST_HOME),
            "/root",
            "/home",
            str(state),
            str(state / "agents"),
            str(state / "agents" / "alice"),
            str(run),
            "/run",
        ],
    }


async def serve_one_connection(listener: Listener[SocketStream], reached: anyio.Event) -> None:
    async def handle(stream: SocketStream) -> None:
        async with stream:
            reached.set()

    await listener.serve(handle)


async def probe_hive(config: HiveConfig, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bool]]:
    """Spawn bob (idle) and alice (the probe); alice's report once she exited, and what the host had."""
    probe = (sys.executable, "-c", PROBE, json.dumps(params))
    config = config.model_copy(update={"agent_command": probe})
    async with running_daemon(config) as daemon, open_hive_client(config.host_socket) as operator:
        await operator.spawn("bob")
        (config.agent_state_dir("bob") / "work" / "bob-secret.txt").write_text("for bob only")
        await operator.spawn("alice")
        backend = daemon.hive.backend
        assert isinstance(backend, LocalBackend)
        code = await backend.wait_exit("alice")
        assert code == 0, (config.agent_state_dir("alice") / "agent.log").read_text()
        report = json.loads((config.agent_state_dir("alice") / "work" / "report.json").read_text())
        host_exists = {p: await anyio.Path(p).exists() for p in params["exists"]}
        return report, host_exists


async def run_probe(config: HiveConfig) -> Probed:
    """Probe the hive of `config` with a listener up on the host's loopback."""
    reached = anyio.Event()
    probed: Probed | None = None
    with anyio.fail_after(BOUND_S):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(serve_one_connection, listener, reached)
            params = probe_params(config, listener.extra(SocketAttribute.local_port))
            report, host_exists = await probe_hive(config, params)
            if report["net"] == "connected":
                await reached.wait()
            tg.cancel_scope.cancel()
            probed = Probed(config, report, os.getpid(), reached.is_set(), host_exists)
    assert probed is not None
    return probed


@pytest.fixture(scope="module")
def probed() -> Iterator[Probed]:
    """One hive, probed once, for every test that reads the default sandbox's report."""
    root = Path(tempfile.mkdtemp(prefix="hh-", dir="/tmp"))
    try:
        with pytest.MonkeyPatch.context() as mp:
            # the operator's shell holds secrets; none may reach an agent
            mp.setenv("ANTHROPIC_API_KEY", SECRET)
            mp.setenv("HIVE_TEST_SECRET", SECRET)
            yield anyio.run(run_probe, hive_config(root, sandbox="bwrap"))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _bound_back_entries(home: Path) -> set[str]:
    """Entries of `home` that hold something an agent needs to start (a pyenv, a venv, a checkout)."""
    needed = [*_interpreter_paths(), *_tool_paths((sys.executable, *AGENT_TOOLS), os.environ.get("PATH"))]
    return {p.relative_to(home).parts[0] for p in needed if home in p.parents}


# writes


def test_an_agent_can_write_its_work_dir_and_its_private_tmp(probed: Probed) -> None:
    writes = probed.report["write"]
    assert writes[str(probed.alice_work)] is True
    assert writes["/tmp"] is True


def test_an_agent_cannot_write_anywhere_else(probed: Probed) -> None:
    refused = {d: ok for d, ok in probed.report["write"].items() if d not in (str(probed.alice_work), "/tmp")}
    assert refused == dict.fromkeys(refused, False)
    # and nothing it tried reached the host
    for d in refused:
        assert not (Path(d) / MARK).exists(), d
    assert not list(probed.config.state_dir.rglob(MARK))
    assert not list(probed.config.run_dir.rglob(MARK))


# what it sees


def test_an_agent_sees_neither_other_agents_nor_the_hives_state_and_run_dirs(probed: Probed) -> None:
    config, exists = probed.config, probed.report["exists"]
    hidden = {p: seen for p, seen in exists.items() if p != "/run/hive/mcp.sock"}
    # the host had them all while alice looked
    assert all(probed.host_exists[p] for p in hidden), probed.host_exists
    assert hidden == dict.fromkeys(hidden, False)
    assert exists["/run/hive/mcp.sock"] is True
    listed = probed.report["list"]
    # the state dir holds only the way to alice's own work dir; the run dir is empty; /run has her socket dir
    assert listed[str(config.state_dir)] == ["agents"]
    assert listed[str(config.state_dir / "agents")] == ["alice"]
    assert listed[str(config.state_dir / "agents" / "alice")] == ["work"]
    assert listed[str(config.run_dir)] == []
    assert listed["/run"] == ["hive"]


def test_an_agent_sees_the_hosts_homes_empty_but_for_what_its_interpreter_needs(probed: Probed) -> None:
    listed = probed.report["list"]
    for home in (HOST_HOME, Path("/root"), Path("/home")):
        if not home.is_dir():
            continue
        inside = set(listed[str(home)])
        assert inside <= _bound_back_entries(home), home
        assert not inside & {".ssh", ".claude", ".npmrc", ".gitconfig", ".config", ".aws", ".bash_history"}


def test_an_agent_cannot_read_the_hosts_password_hashes_or_ssh_host_keys(probed: Probed) -> None:
    reads = probed.report["read"]
    assert reads == dict.fromkeys(reads, False)
    # as root the test itself can, so the sandbox is what stops the agent
    if os.geteuid() == 0:
        assert Path("/etc/shadow").read_bytes()


def test_an_agent_gets_only_the_passthrough_environment(probed: Probed) -> None:
    env: dict[str, str] = probed.report["env"]
    ours = {"HOME", "HIVE_AGENT_NAME", "PYTHONUNBUFFERED", "HIVE_SOCKET", "HIVE_ROLE", "HIVE_DRIVER"}
    # PWD: bwrap's, for --chdir; LC_CTYPE: python's own C-locale coercion
    ours |= {"HIVE_TURN_TIMEOUT_S", "PWD", "LC_CTYPE", "IS_SANDBOX"}
    assert set(env) <= {*PASSTHROUGH_ENV, *ours}
    assert SECRET not in json.dumps(env)
    assert env["HOME"] == str(probed.alice_work)
    assert env["HIVE_SOCKET"] == "/run/hive/mcp.sock"
    assert env.get("PWD", str(probed.alice_work)) == str(probed.alice_work)


def test_an_agent_sees_only_its_own_processes(probed: Probed) -> None:
    procs: dict[str, str | None] = probed.report["procs"]
    # bwrap as the namespace's pid 1 and the probe itself: not the daemon, not bob
    assert sorted(Path(cmd or "?").name for cmd in procs.values()) == sorted(["bwrap", Path(sys.executable).name])
    assert str(probed.report["self"]) in procs
    assert probed.report["self"] != probed.daemon_pid


def test_an_agent_has_no_capabilities_to_undo_its_sandbox(probed: Probed) -> None:
    report = probed.report
    assert int(report["cap_eff"], 16) == 0
    assert report["umount_tmp"] != 0
    assert report["umount_home"] != 0
    assert report["unshare_user"] != 0


# network


def test_an_agent_reaches_a_loopback_server_when_the_network_is_shared(probed: Probed) -> None:
    assert probed.report["net"] == "connected"
    assert probed.reached_listener


async def test_an_agent_configured_without_network_reaches_nothing(short_tmpdir: Path) -> None:
    probed = await run_probe(hive_config(short_tmpdir, sandbox="bwrap", share_net=False))
    assert probed.report["net"] == "ConnectionRefusedError"
    assert not probed.reached_listener


# claude's settings, and the operator's dirs given to an agent

SETTINGS_PROBE = r"""
import json, os, sys
def write(path):
    try:
        with open(path, "a") as f:
            f.write("x")
        return True
    except OSError as exc:
        return exc.strerror
r = {
    "settings": open(os.environ["HIVE_CLAUDE_SETTINGS"]).read(),
    "write_settings": write(os.environ["HIVE_CLAUDE_SETTINGS"]),
    "write_claude_dir": write("/run/claude/.claude.json"),
    "listed_claude_dir": sorted(os.listdir("/run/claude")),
    "write_ro": write(sys.argv[1] + "/f"),
    "write_rw": write(sys.argv[2] + "/f"),
    "env": {k: v for k, v in os.environ.items() if k.startswith(("HIVE_CLAUDE_", "IS_SANDBOX", "CLAUDE_"))},
}
with open("report.json", "w") as f:
    json.dump(r, f)
"""


@pytest.mark.parametrize("has_settings", [True, False], ids=["settings", "no-settings"])
async def test_claude_reads_the_operators_settings_read_only_and_the_claude_dir_stays_writable(
    short_tmpdir: Path, has_settings: bool
) -> None:
    claude_dir, ro, rw = (short_tmpdir / name for name in ("claude", "ro", "rw"))
    for path in (claude_dir, ro, rw):
        path.mkdir()
    if has_settings:
        (claude_dir / "settings.json").write_text('{"env": {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}}')
    config = hive_config(
        short_tmpdir,
        sandbox="bwrap",
        claude_config_dir=claude_dir,
        agent_command=(sys.executable, "-c", SETTINGS_PROBE, str(ro), str(rw)),
    )
    with anyio.fail_after(BOUND_S):
        async with running_daemon(config) as daemon, open_hive_client(config.host_socket) as operator:
            await operator.spawn(
                "alice",
                tools=["Read"],
                permission_mode="plan",
                model="opus",
                extra_dirs=[{"path": str(ro), "mode": "ro"}, {"path": str(rw), "mode": "rw"}],
            )
            backend = daemon.hive.backend
            assert isinstance(backend, LocalBackend)
            code = await backend.wait_exit("alice")
    work = config.agent_state_dir("alice") / "work"
    assert code == 0, (config.agent_state_dir("alice") / "agent.log").read_text()
    report = json.loads((work / "report.json").read_text())
    assert report["settings"] == ((claude_dir / "settings.json").read_text() if has_settings else "")
    assert report["write_settings"] == "Read-only file system"
    assert report["write_claude_dir"] is True  # claude keeps its sessions there
    # nothing was made in the operator's claude dir for the bind
    assert (
        "settings.json" in report["listed_claude_dir"]
        if has_settings
        else "settings.json" not in os.listdir(claude_dir)
    )
    assert report["write_ro"] == "Read-only file system"
    assert report["write_rw"] is True
    assert (rw / "f").read_text() == "x"
    assert not (ro / "f").exists()
    assert report["env"] == {
        "CLAUDE_CONFIG_DIR": "/run/claude",
        "HIVE_CLAUDE_SETTINGS": "/run/claude-settings.json",
        "HIVE_CLAUDE_TOOLS": '["Read"]',
        "HIVE_CLAUDE_PERMISSION_MODE": "plan",
        "HIVE_CLAUDE_MODEL": "opus",
        "HIVE_CLAUDE_ADD_DIRS": json.dumps([str(ro), str(rw)]),
        "IS_SANDBOX": "1",
    }

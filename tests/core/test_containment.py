"""An agent cannot outlive kill, shutdown or its daemon's death, whatever it tries inside its sandbox.

The escape probe is what the issue's attacker did, run as the agent in real bubblewrap under a real
daemon: ptrace the sandbox's init (pid 1 of its pid namespace) and inject `prctl(PR_SET_PDEATHSIG,
0)` into it, so that init no longer dies with bwrap; write to init's memory; move itself out of its
cgroups; then leave the process group with setsid() and a double fork. Whether each step worked
goes to a report; the test then kills, shuts down or kill -9s the daemon and scans /proc for
anything still carrying the probe's token. Without the seccomp filter the injection works (on
main before this change, init and the agent survived kill, shutdown and kill -9).
"""

import json
import os
import platform
import secrets
import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from hyperhive_core.client import HiveClient, open_hive_client
from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import running_daemon
from hyperhive_core.lifecycle._procs import SandboxRecord
from hyperhive_core.lifecycle._seccomp import ARCHES, DENIED
from hyperhive_core.lifecycle.local import RECORD_NAME
from hyperhive_core.states import AgentState
from tests import helpers
from tests.helpers import echo_round_trip, hive_config, kill_hard, needs_bwrap

REPO = Path(__file__).resolve().parents[2]
BOUND_S = 30.0

# Runs as the agent alice; its argument is the token that marks every process of it. Its report
# goes to the operator as a message, sent once its survivor runs.
PROBE = r"""
import ctypes, errno, json, os, signal, sys

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long
PEEKTEXT, POKETEXT, GETREGS, SETREGS, SINGLESTEP, ATTACH, DETACH = 1, 4, 12, 13, 9, 16, 17
WALL, MASK = 0x40000000, 2**64 - 1
NAMES = "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base"
NAMES += " ds es fs gs"

class Regs(ctypes.Structure):
    _fields_ = [(n, ctypes.c_ulonglong) for n in NAMES.split()]

def ptrace(req, addr=None, data=None):
    ctypes.set_errno(0)
    r = libc.ptrace(req, 1, addr, data)
    if r == -1 and ctypes.get_errno():
        raise OSError(ctypes.get_errno(), errno.errorcode.get(ctypes.get_errno(), "?"))
    return r

def clear_init_pdeathsig():
    try:
        ptrace(ATTACH)
    except OSError as exc:
        return errno.errorcode[exc.errno]
    os.waitpid(1, WALL)
    regs = Regs()
    ptrace(GETREGS, None, ctypes.addressof(regs))
    saved = Regs.from_buffer_copy(regs)
    word = ptrace(PEEKTEXT, regs.rip) & MASK
    ptrace(POKETEXT, regs.rip, (word & ~0xFFFF) | 0x050F)  # "syscall" at init's next instruction
    regs.rax, regs.rdi, regs.rsi, regs.orig_rax = 157, 1, 0, MASK  # prctl(PR_SET_PDEATHSIG, 0)
    ptrace(SETREGS, None, ctypes.addressof(regs))
    ptrace(SINGLESTEP)
    os.waitpid(1, WALL)
    ptrace(GETREGS, None, ctypes.addressof(regs))
    result = regs.rax
    ptrace(POKETEXT, saved.rip, word)
    ptrace(SETREGS, None, ctypes.addressof(saved))
    ptrace(DETACH)
    return "cleared" if result == 0 else f"prctl returned {result}"

report = {"ptrace": clear_init_pdeathsig()}
try:
    with open("/proc/1/mem", "r+b"):
        report["init_mem"] = "opened"
except OSError as exc:
    report["init_mem"] = errno.errorcode.get(exc.errno, str(exc.errno))
report["process_vm_readv"] = 0 if libc.process_vm_readv(1, None, 0, None, 0, 0) >= 0 else ctypes.get_errno()
# Out of its cgroups: into the root of every hierarchy it can see.
moved = []
for root, dirs, files in os.walk("/sys/fs/cgroup"):
    if "cgroup.procs" in files:
        try:
            with open(os.path.join(root, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
            moved.append(root)
        except OSError:
            pass
    dirs.clear() if root != "/sys/fs/cgroup" else None
report["cgroups_left"] = moved
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        while True:
            signal.pause()
    os._exit(0)
os.wait()
from pathlib import Path
from hyperhive_agent.client import connect
with connect(Path(os.environ["HIVE_SOCKET"])) as hive:
    hive.call_tool("send", {"to": "operator", "body": json.dumps(report)})
while True:
    signal.pause()
"""

pytestmark = [
    pytest.mark.containers,
    needs_bwrap,
    pytest.mark.skipif(platform.machine() != "x86_64", reason="the probe injects x86_64 code"),
]


def processes_with(token: str) -> dict[int, str]:
    """Every process on the host whose command line holds `token` (but a test daemon's, which is told it)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if token in cmdline and "tests.daemon_main" not in cmdline:
            found[int(entry.name)] = cmdline
    return found


def pid_namespaces(pids: dict[int, str]) -> set[str]:
    spaces: set[str] = set()
    for pid in pids:
        try:
            spaces.add(os.readlink(f"/proc/{pid}/ns/pid"))
        except OSError:
            continue
    return spaces


async def wait_for_report(operator: HiveClient) -> dict[str, object]:
    """The probe's report, once it sent it (its survivor is running by then)."""
    [message] = (await operator.recv(timeout_s=BOUND_S, max=1)).messages
    assert message.sender == "alice"
    report: dict[str, object] = json.loads(message.body)
    return report


def assert_escape_refused(report: dict[str, object]) -> None:
    assert report == {"ptrace": "EPERM", "init_mem": "EACCES", "process_vm_readv": 1, "cgroups_left": []}, report


async def wait_gone(pids: list[int]) -> None:
    """Wait (bounded) until every one of `pids` has exited."""
    fds: list[int] = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
        except ProcessLookupError:
            continue
    try:
        with anyio.fail_after(BOUND_S):
            for fd in fds:
                await anyio.wait_readable(fd)
    finally:
        for fd in fds:
            os.close(fd)


def escape_config(root: Path, token: str) -> HiveConfig:
    probe = (sys.executable, "-c", PROBE, token)
    return hive_config(root, sandbox="bwrap", agent_command=probe)


async def test_an_escaping_agent_is_refused_and_does_not_outlive_kill(short_tmpdir: Path) -> None:
    token = f"hh-escape-{secrets.token_hex(4)}"
    config = escape_config(short_tmpdir, token)
    with anyio.fail_after(BOUND_S * 2):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn("alice")
            report = await wait_for_report(operator)
            # bwrap, its init, the probe and its detached survivor
            assert len(processes_with(token)) == 4, processes_with(token)
            await operator.kill("alice")
            # kill returned: nothing of alice is left, not even the process in its own session
            assert processes_with(token) == {}
            assert await operator.list_agents() == []
        assert_escape_refused(report)


async def test_an_escaping_agent_does_not_outlive_shutdown(short_tmpdir: Path) -> None:
    token = f"hh-escape-{secrets.token_hex(4)}"
    config = escape_config(short_tmpdir, token)
    with anyio.fail_after(BOUND_S * 2):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn("alice")
            report = await wait_for_report(operator)
            assert len(processes_with(token)) == 4
        # the daemon's shutdown returned
        assert processes_with(token) == {}
        assert_escape_refused(report)


def daemon_process(config: HiveConfig) -> AbstractAsyncContextManager[Process]:
    """A real daemon in its own process running `config.agent_command`, yielded once it listens."""
    return helpers.daemon_process(
        config, overrides={"agent_command": config.agent_command} if config.agent_command else None
    )


async def test_an_escaping_agent_dies_with_its_daemon_and_runs_once_after_a_restart(short_tmpdir: Path) -> None:
    token = f"hh-escape-{secrets.token_hex(4)}"
    config = escape_config(short_tmpdir, token)
    with anyio.fail_after(BOUND_S * 3):
        async with daemon_process(config) as daemon:
            async with open_hive_client(config.host_socket) as operator:
                await operator.spawn("alice")
                report = await wait_for_report(operator)
            sandbox = processes_with(token)
            assert len(sandbox) == 4
            await kill_hard(daemon.pid)
        await wait_gone(list(sandbox))
        assert processes_with(token) == {}
        assert_escape_refused(report)
        async with daemon_process(config) as restarted, open_hive_client(config.host_socket) as operator:
            # restored: alice runs again, once
            assert_escape_refused(await wait_for_report(operator))
            running = processes_with(token)
            assert len(running) == 4
            assert len(pid_namespaces(running)) == 2  # bwrap's own (the host's) and one sandbox
            [alice] = await operator.list_agents()
            assert alice.state == AgentState.RUNNING
            await operator.shutdown()
            await restarted.wait()  # its shutdown done: agents stopped, cgroups removed
        await wait_gone(list(running))


async def test_a_starting_daemon_kills_what_an_earlier_one_left_in_an_agents_cgroup_whatever_its_session(
    short_tmpdir: Path,
) -> None:
    """A process of alice's that left her sandbox's reach entirely (own session, outside her pid namespace)."""
    token = f"hh-left-{secrets.token_hex(4)}"
    config = hive_config(short_tmpdir, sandbox="bwrap")
    with anyio.fail_after(BOUND_S * 3):
        async with daemon_process(config) as daemon:
            async with open_hive_client(config.host_socket) as operator:
                await operator.spawn("alice")
            record = SandboxRecord.load(config.agent_state_dir("alice") / RECORD_NAME)
            assert record is not None
            assert record.cgroups, "this host has writable cgroups (CI does): the daemon must use them"
            left = await anyio.open_process(
                [sys.executable, "-c", "import signal; signal.pause()", token], start_new_session=True
            )
            for cgroup in record.cgroups:
                (cgroup / "cgroup.procs").write_text(str(left.pid))
            await kill_hard(daemon.pid)
        # The sandbox died with its daemon; this one was never in it, so it lives on...
        assert left.returncode is None
        assert list(processes_with(token)) == [left.pid]
        # ...until a daemon starts on this state dir.
        async with daemon_process(config) as restarted, open_hive_client(config.host_socket) as operator:
            assert await left.wait() == -9
            [alice] = await operator.list_agents()
            assert alice.state == AgentState.RUNNING
            await operator.shutdown()
            await restarted.wait()
        await left.aclose()


async def test_a_hyperhive_agent_package_in_the_work_dir_does_not_replace_the_turn_loop(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, sandbox="bwrap")
    work = config.agent_state_dir("alice") / "work"
    shadow = work / "hyperhive_agent"
    shadow.mkdir(parents=True)
    # What an agent could write with its Bash tool: a turn loop of its own, for its next start.
    (shadow / "__init__.py").write_text("")
    (shadow / "__main__.py").write_text("open('shadowed', 'w').close()\nraise SystemExit(9)\n")
    with anyio.fail_after(BOUND_S):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn("alice")
            await echo_round_trip(operator, "alice", "who runs here?")
            [alice] = await operator.list_agents()
            assert alice.state == AgentState.RUNNING
    assert not (work / "shadowed").exists()


def test_the_filters_syscall_numbers_are_libseccomps() -> None:
    """The hand-built filter's tables, checked against libseccomp's resolver (installed here and in CI)."""
    import ctypes

    lib = ctypes.CDLL("libseccomp.so.2")
    resolve = lib.seccomp_syscall_resolve_name_arch
    resolve.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    resolve.restype = ctypes.c_int
    for arch in ARCHES.values():
        assert set(arch.numbers) == set(DENIED), arch.name
        theirs = {name: resolve(arch.audit_arch, name.encode()) for name in DENIED}
        assert arch.numbers == theirs, arch.name

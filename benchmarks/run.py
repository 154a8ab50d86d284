"""Benchmarks hyperhive against its targets: `.venv/bin/python -m benchmarks.run [--quick] [--json FILE]`.

Starts real daemons in a temp dir under /tmp, drives them over their real unix sockets (and the
real `hive-agent mcp` bridge for `send`), and prints one markdown table: median and p99 of each
row, and its ratio to a floor measured in the same run (a raw JSON line over a unix socket, an SDK
tool call that does no work, one SQLite WAL commit with the broker's sync setting). Numbers are
reported, never asserted: a target missed is a `no` in the table, not a failure.
"""

import argparse
import json
import os
import platform
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from benchmarks._claude import WORK_COMMAND, ModeResult, claude_installed, fake_api, measure_mode
from benchmarks._dashboard import (
    Dashboard,
    dashboard_of,
    get_ms,
    grow_main,
    logged_in,
    open_browser,
    page_loads,
    painted_after_send,
    seed_messages,
    sse_clients,
)
from benchmarks._postgres import DAEMONS, durable_server, store_rate, wake_samples
from benchmarks._rpc import LineClient, connect_socket, start_bridge
from tests.postgres import PgServer

READY_TIMEOUT_S = 60.0
# The messages the page-load row's hive holds.
PAGE_MESSAGES = 10_000
# SSE clients connected in the dashboard rows.
SSE_CLIENTS = 10
# The broker's setting; NORMAL is measured beside it for the README's durability argument.
BROKER_SYNC = "FULL"


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much work each row does."""

    calls: int
    commits: int
    deliveries: int
    throughput_s: float
    agents: int
    cli_runs: int
    history: int
    history_calls: int
    proposals: int
    approvals: int
    claude_turns: int


FULL = Sizes(
    calls=2000,
    commits=1000,
    deliveries=500,
    throughput_s=10.0,
    agents=100,
    cli_runs=10,
    history=100_000,
    history_calls=300,
    proposals=100,
    approvals=20,
    claude_turns=20,
)
QUICK = Sizes(
    calls=300,
    commits=200,
    deliveries=100,
    throughput_s=2.0,
    agents=20,
    cli_runs=3,
    history=100_000,
    history_calls=100,
    proposals=20,
    approvals=5,
    claude_turns=8,
)
SMOKE = Sizes(
    calls=5,
    commits=5,
    deliveries=3,
    throughput_s=0.3,
    agents=2,
    cli_runs=1,
    history=300,
    history_calls=3,
    proposals=2,
    approvals=1,
    claude_turns=2,
)


@dataclass(slots=True)
class Row:
    """One line of the table; times in milliseconds."""

    what: str
    how: str
    result: str
    target: str
    met: bool | None
    median_ms: float | None = None
    p99_ms: float | None = None
    floor: str | None = None
    floor_ratio: float | None = None
    extra: dict[str, Any] = field(default_factory=dict[str, Any])


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile of `samples` (q in 0..100)."""
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def ms(seconds: list[float]) -> tuple[float, float]:
    """Median and p99 of `seconds`, in milliseconds."""
    return percentile(seconds, 50) * 1e3, percentile(seconds, 99) * 1e3


def timed(n: int, call: Callable[[], object]) -> list[float]:
    """Run `call` n times; each duration in seconds."""
    samples: list[float] = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def pause(seconds: float) -> None:
    """Pace a loop (never used to wait for a condition: those wait on events)."""
    threading.Event().wait(seconds)


# child processes


def wait_ready(process: subprocess.Popen[bytes]) -> None:
    """Wait for the child's `ready` line."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT_S)
    line = process.stdout.readline() if ready else b""
    if line.strip() != b"ready":
        process.kill()
        raise RuntimeError(f"{process.args!r} did not start")


@contextmanager
def child(*args: str) -> Generator[subprocess.Popen[bytes]]:
    """A `benchmarks._serve` child, running once it listens; SIGTERMed on exit."""
    process = subprocess.Popen([sys.executable, "-m", "benchmarks._serve", *args], stdout=subprocess.PIPE)
    try:
        wait_ready(process)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        assert process.stdout is not None
        process.stdout.close()


@dataclass(frozen=True, slots=True)
class Hive:
    """A running daemon's dirs and pid."""

    run_dir: Path
    state_dir: Path
    pid: int

    @property
    def host_socket(self) -> Path:
        """The operator's socket."""
        return self.run_dir / "host.sock"

    def agent_socket(self, name: str) -> Path:
        """An agent's socket."""
        return self.run_dir / "agents" / name / "mcp.sock"

    def operator(self) -> LineClient:
        """A new operator session."""
        return connect_socket(self.host_socket)


@contextmanager
def idle_daemon(root: Path, database: str | None = None) -> Generator[Hive]:
    """A real daemon whose agents are `sleep infinity`: only the benchmark takes their messages.

    With `database`, on that PostgreSQL database instead of SQLite in its state dir.
    """
    with child("daemon", str(root / "run"), str(root / "state"), *([database] if database else [])) as process:
        yield Hive(root / "run", root / "state", process.pid)


def hivectl() -> str:
    """The installed `hivectl` beside this interpreter."""
    return str(Path(sys.executable).parent / "hivectl")


@contextmanager
def echo_daemon(root: Path) -> Generator[Hive]:
    """The daemon exactly as an operator starts it: `hivectl serve --detach`, echo agents in bubblewrap."""
    dirs = ["--run-dir", str(root / "run"), "--state-dir", str(root / "state")]
    serve = [hivectl(), *dirs, "serve", "--detach", "--log-level", "warning", "--dashboard", "127.0.0.1:0"]
    subprocess.run(serve, check=True, capture_output=True)
    hive = Hive(root / "run", root / "state", int((root / "run" / "daemon.pid").read_text()))
    try:
        yield hive
    finally:
        subprocess.run([hivectl(), *dirs, "shutdown"], check=False, capture_output=True)


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


# floors


@dataclass(slots=True)
class Floors:
    """The floors' medians (ms), and their rows."""

    raw: float = 0.0
    mcp: float = 0.0
    mcp_bridge: float = 0.0
    commit: float = 0.0
    commit_normal: float = 0.0
    python: float = 0.0
    rows: list[Row] = field(default_factory=list[Row])


def commit_samples(path: Path, sync: str, n: int) -> list[float]:
    """One insert + commit per sample into a message-shaped table, WAL, `synchronous=sync`."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={sync}")
        db.execute(
            "CREATE TABLE m (id INTEGER PRIMARY KEY, sender TEXT, recipient TEXT, body TEXT, created_at REAL, "
            "state TEXT)"
        )
        db.execute("CREATE INDEX ix ON m (recipient, state, id)")

        def commit() -> None:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT INTO m (sender, recipient, body, created_at, state) VALUES (?, ?, ?, ?, ?)",
                ("a", "b", "x" * 64, time.time(), "QUEUED"),
            )
            db.execute("COMMIT")

        return timed(n, commit)
    finally:
        db.close()


def measure_floors(root: Path, sizes: Sizes) -> Floors:
    """The three floors (plus the bridge's share and a bare interpreter start)."""
    floors = Floors()
    root.mkdir()
    with child("raw", str(root / "raw.sock")), connect_socket(root / "raw.sock", mcp=False) as raw:
        timed(50, lambda: raw.request("ping", {}))
        samples = timed(sizes.calls, lambda: raw.request("ping", {}))
    median, p99 = ms(samples)
    floors.raw = median
    floors.rows.append(
        Row(
            "floor: raw JSON line",
            "request/response over a unix socket, same server stack, no MCP",
            f"{median:.3f} ms",
            "-",
            None,
            median,
            p99,
        )
    )
    with child("mcp", str(root / "mcp.sock")):
        with connect_socket(root / "mcp.sock") as mcp:
            timed(50, lambda: mcp.call("noop", {}))
            samples = timed(sizes.calls, lambda: mcp.call("noop", {}))
        median, p99 = ms(samples)
        floors.mcp = median
        floors.rows.append(
            Row(
                "floor: MCP no-op",
                "SDK tool call doing nothing, our unix transport",
                f"{median:.3f} ms",
                "-",
                None,
                median,
                p99,
                "raw JSON line",
                median / floors.raw,
            )
        )
        with start_bridge(sys.executable, root / "mcp.sock") as bridged:
            timed(50, lambda: bridged.call("noop", {}))
            samples = timed(sizes.calls, lambda: bridged.call("noop", {}))
        median, p99 = ms(samples)
        floors.mcp_bridge = median
        floors.rows.append(
            Row(
                "floor: MCP no-op via bridge",
                "the same call through `hive-agent mcp` (stdio)",
                f"{median:.3f} ms",
                "-",
                None,
                median,
                p99,
                "MCP no-op",
                median / floors.mcp,
            )
        )
    for sync in (BROKER_SYNC, "NORMAL"):
        median, p99 = ms(commit_samples(root / f"commit-{sync}.sqlite", sync, sizes.commits))
        if sync == BROKER_SYNC:
            floors.commit = median
        else:
            floors.commit_normal = median
        floors.rows.append(
            Row(
                f"floor: SQLite commit ({sync})",
                "one insert + commit, WAL"
                + (", the broker's setting" if sync == BROKER_SYNC else ", for comparison only"),
                f"{median:.3f} ms",
                "-",
                None,
                median,
                p99,
            )
        )
    samples = timed(sizes.cli_runs, lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))
    median, p99 = ms(samples)
    floors.python = median
    floors.rows.append(
        Row("floor: python start", "`python -c pass`, whole process", f"{median:.1f} ms", "-", None, median, p99)
    )
    return floors


# the daemon's rows


def measure_send(hive: Hive, floors: Floors, sizes: Sizes) -> Row:
    """Sequential `send` calls by agent a through the bridge; each returns after the durable commit."""
    body = "x" * 64
    with start_bridge(sys.executable, hive.agent_socket("a")) as client:
        timed(50, lambda: client.call("send", {"to": "sink", "body": body}))
        samples = timed(sizes.calls, lambda: client.call("send", {"to": "sink", "body": body}))
    median, p99 = ms(samples)
    floor = floors.mcp_bridge + floors.commit
    return Row(
        "`send` tool call",
        f"MCP client → `hive-agent mcp` bridge → daemon, durable commit, {sizes.calls:,} sequential calls",
        f"{median:.3f} ms",
        "median ≤ 1.0 ms, p99 ≤ 3 ms",
        median <= 1.0 and p99 <= 3.0,
        median,
        p99,
        "MCP no-op via bridge + commit",
        median / floor,
    )


def measure_delivery(hive: Hive, floors: Floors, sizes: Sizes) -> Row:
    """A calls `send`; B, a separate session already waiting in `recv`, gets it: time from A's call to B's return."""
    n = sizes.deliveries
    waiting, got = threading.Event(), threading.Event()
    received_at: list[float] = []
    failure: list[BaseException] = []

    def receive(client: LineClient) -> None:
        try:
            for _ in range(n):
                waiting.set()
                result = client.call("recv", {"timeout_s": 10, "max": 1})
                received_at.append(time.perf_counter())
                assert len(result["messages"]) == 1, result
                got.set()
        except BaseException as exc:
            failure.append(exc)
            got.set()
            raise

    end_to_end: list[float] = []
    after_send: list[float] = []
    with connect_socket(hive.agent_socket("a")) as a, connect_socket(hive.agent_socket("b")) as b:
        receiver = threading.Thread(target=receive, args=(b,), daemon=True)
        receiver.start()
        for i in range(n):
            waiting.wait()
            waiting.clear()
            # Pacing, not synchronisation: gives B's recv time to park in the daemon, so the
            # message finds a waiter (if it does not, B still returns, only sooner).
            pause(0.002)
            start = time.perf_counter()
            a.call("send", {"to": "b", "body": f"ping {i}"})
            returned = time.perf_counter()
            got.wait()
            got.clear()
            if failure:
                raise RuntimeError("the receiver failed") from failure[0]
            end_to_end.append(received_at[-1] - start)
            after_send.append(received_at[-1] - returned)
        receiver.join()
    median, p99 = ms(end_to_end)
    lag_median, lag_p99 = ms(after_send)
    floor = floors.mcp + floors.commit
    return Row(
        "delivery",
        f"A calls `send` → B's waiting `recv` returns, separate sessions, {n:,} messages",
        f"{median:.3f} ms",
        "median ≤ 2 ms, p99 ≤ 5 ms",
        median <= 2.0 and p99 <= 5.0,
        median,
        p99,
        "MCP no-op + commit",
        median / floor,
        {"after_send_returned_median_ms": lag_median, "after_send_returned_p99_ms": lag_p99},
    )


def turn_events(usage: bool) -> list[dict[str, Any]]:
    """The events of one claude turn as the turn loop reports them; the usage event, or one of its size."""
    result = {"type": "result", "subtype": "success", "total_cost_usd": 0.0032, "duration_ms": 640, "num_turns": 2}
    counted = {"input_tokens": 200, "output_tokens": 40, "cache_read_input_tokens": 0, "cost_usd": 0.0016}
    return [
        {"type": "hive", "subtype": "turn_start", "message": "turn 1: 1 message(s) from operator"},
        {"type": "system", "subtype": "init", "session_id": "s", "tools": ["mcp__hive__send"] * 8},
        {"type": "assistant", "message": {"content": [{"type": "tool_use", "name": "mcp__hive__send"}]}},
        {"type": "user", "message": {"content": [{"type": "tool_result", "content": '{"id": 7}'}]}},
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "Replied to 1 message(s)."}]}},
        result,
        {"type": "hive", "subtype": "usage" if usage else "usage-like", "message": "240 tokens, $0.0016", **counted},
        {"type": "hive", "subtype": "turn_end", "message": "turn 1 done", "duration_ms": 700},
    ]


def measure_report_events(hive: Hive, floors: Floors, sizes: Sizes) -> Row:
    """A turn's `report_events` call with its usage event recorded, against the same call without one.

    The calls alternate, so the two sides see the same noise; the difference is the usage row's commit
    and the budget check.
    """
    with_usage, without = turn_events(True), turn_events(False)
    counted: list[float] = []
    plain: list[float] = []
    with connect_socket(hive.agent_socket("a")) as client:
        timed(20, lambda: client.call("report_events", {"events": without}))
        for _ in range(sizes.deliveries):
            counted += timed(1, lambda: client.call("report_events", {"events": with_usage}))
            plain += timed(1, lambda: client.call("report_events", {"events": without}))
    median, p99 = ms(counted)
    plain_median, plain_p99 = ms(plain)
    extra = median - plain_median
    return Row(
        "`report_events` of a turn, usage recorded",
        f"8 events of one claude turn on an agent's socket, {sizes.deliveries:,} calls alternating with the same "
        "batch whose usage event is not counted",
        f"{median:.3f} ms vs {plain_median:.3f} ms without (+{extra:.3f} ms)",
        "≤ one more commit than without (a claude turn takes ≥ 200 ms)",
        extra <= 1.5 * floors.commit,
        median,
        p99,
        "the same call, usage not counted",
        median / plain_median,
        {"without_usage_median_ms": plain_median, "without_usage_p99_ms": plain_p99, "extra_ms": extra},
    )


def measure_throughput(
    hive: Hive | list[Hive], floors: Floors, sizes: Sizes, pairs: int = 10, *, keyed: bool = False, what: str = ""
) -> Row:
    """`pairs` senders, each sending to its own receiver as fast as it can; receivers drain with `recv`.

    With several hives (daemons on one PostgreSQL database), pair i runs on hive i mod n.

    `keyed`: the turn loop's way, every send with an idempotency key and every recv a leased one
    under a reader name whose cursor acknowledges what came before.
    """
    stop = threading.Event()
    senders_done = threading.Event()
    sent = [0] * pairs
    received = [0] * pairs
    latencies: list[list[float]] = [[] for _ in range(pairs)]
    errors: list[BaseException] = []

    def send_loop(i: int, client: LineClient) -> None:
        try:
            while not stop.is_set():
                start = time.perf_counter()
                arguments: dict[str, object] = {"to": f"r{i}", "body": "x" * 64}
                if keyed:
                    arguments["key"] = f"k-{sent[i]}"
                client.call("send", arguments)
                latencies[i].append(time.perf_counter() - start)
                sent[i] += 1
        except BaseException as exc:
            errors.append(exc)

    def recv_loop(i: int, client: LineClient) -> None:
        cursor = 0
        try:
            while not (senders_done.is_set() and received[i] >= sent[i]):
                arguments: dict[str, object] = {"timeout_s": 0.5, "max": 100}
                if keyed:
                    arguments |= {"after": cursor, "reader": "turn-loop"}
                got = client.call("recv", arguments)["messages"]
                received[i] += len(got)
                cursor = max([cursor, *(m["id"] for m in got)])
        except BaseException as exc:
            errors.append(exc)

    hives = hive if isinstance(hive, list) else [hive]
    senders = [connect_socket(hives[i % len(hives)].agent_socket(f"s{i}")) for i in range(pairs)]
    receivers = [connect_socket(hives[i % len(hives)].agent_socket(f"r{i}")) for i in range(pairs)]
    send_threads = [threading.Thread(target=send_loop, args=(i, c)) for i, c in enumerate(senders)]
    recv_threads = [threading.Thread(target=recv_loop, args=(i, c)) for i, c in enumerate(receivers)]
    for thread in recv_threads:
        thread.start()
    start = time.perf_counter()
    for thread in send_threads:
        thread.start()
    stop.wait(sizes.throughput_s)
    stop.set()
    for thread in send_threads:
        thread.join()
    elapsed = time.perf_counter() - start
    senders_done.set()
    for thread in recv_threads:
        thread.join()
    drained = time.perf_counter() - start
    for client in senders + receivers:
        client.close()
    if errors:
        raise RuntimeError("a throughput client failed") from errors[0]
    total = sum(sent)
    rate = total / elapsed
    median, p99 = ms([s for per in latencies for s in per])
    # The ceiling if every message cost one fsync'd commit and nothing else.
    one_commit_per_message = 1e3 / floors.commit
    return Row(
        what or ("throughput, keyed sends and leased reads" if keyed else "throughput"),
        f"{pairs} senders → {pairs} receivers draining, {sizes.throughput_s:g} s; median/p99 = one send under load"
        + ("; sends with idempotency keys, recv by cursor under a reader name" if keyed else ""),
        f"{rate:,.0f} msg/s",
        "≥ 2,000 durable msg/s",
        rate >= 2000,
        median,
        p99,
        "1 / commit (msg/s)",
        rate / one_commit_per_message,
        {"sent": total, "received": sum(received), "elapsed_s": elapsed, "drained_s": drained, "rate": rate},
    )


# the dashboard


def measure_dashboard(hive: Hive, dash: Dashboard, floors: Floors, sizes: Sizes) -> list[Row]:
    """The daemon with 10 live message streams open against none, and a send until painted in a browser."""
    body = "x" * 64
    block = max(sizes.calls // 4, 1)
    none: list[float] = []
    loaded: list[float] = []
    events = 0
    with start_bridge(sys.executable, hive.agent_socket("a")) as client:
        timed(50, lambda: client.call("send", {"to": "dn", "body": body}))
        for _ in range(2):  # interleaved, so drift on a noisy machine touches both alike
            none += timed(block, lambda: client.call("send", {"to": "dn", "body": body}))
            with sse_clients(dash, SSE_CLIENTS) as clients:
                loaded += timed(block, lambda: client.call("send", {"to": "dt", "body": body}))
                if not clients.until(block):
                    raise RuntimeError(f"the SSE clients read {clients.events} of {block} events each")
            events += sum(clients.events)
    none_median, none_p99 = ms(none)
    median, p99 = ms(loaded)
    with sse_clients(dash, 0):
        alone = measure_throughput(hive, floors, sizes)
    with sse_clients(dash, SSE_CLIENTS) as clients:
        watched = measure_throughput(hive, floors, sizes)
    rate, alone_rate = watched.extra["rate"], alone.extra["rate"]
    with hive.operator() as operator, open_browser() as browser, logged_in(browser, dash) as page:
        painted = painted_after_send(
            page, dash, lambda: operator.call("send", {"to": "dp", "body": "painted?"})["id"], sizes.deliveries
        )
    painted_median, painted_p99 = ms(painted)
    return [
        Row(
            "dashboard: `send` with 10 SSE clients",
            f"the `send` row's call, {len(loaded):,} with {SSE_CLIENTS} live message streams open against "
            f"{len(none):,} with none, interleaved; the clients read {events:,} events",
            f"{median:.3f} ms vs {none_median:.3f} ms",
            "no measurable cost (≤ 10%)",
            median <= none_median * 1.1,
            median,
            p99,
            "same calls, no clients",
            median / none_median,
            {"none_median_ms": none_median, "none_p99_ms": none_p99, "events_read": events},
        ),
        Row(
            "dashboard: throughput with 10 SSE clients",
            f"the throughput row with {SSE_CLIENTS} live message streams open, against it with none, run back to back; "
            f"the clients read {sum(clients.events):,} events",
            f"{rate:,.0f} msg/s vs {alone_rate:,.0f} msg/s",
            "no measurable cost (≥ 90%)",
            rate >= alone_rate * 0.9,
            watched.median_ms,
            watched.p99_ms,
            "same, no clients",
            rate / alone_rate,
            {"rate": rate, "none_rate": alone_rate, "events_read": sum(clients.events)},
        ),
        Row(
            "dashboard: send → painted",
            f"the operator's `send` over host.sock until the message is painted in the live stream of headless "
            f"chromium (the frame after its insertion), {len(painted)} sends one at a time",
            f"{painted_median:.1f} ms",
            "-",
            None,
            painted_median,
            painted_p99,
        ),
    ]


# history


def seed_history(state_dir: Path, total: int, queued: int) -> None:
    """Write `total` messages between h1 and h2 straight into a new hive database, the last `queued` unread by h1."""
    # Imported here: the parent process stays light; the schema and enum encoding are the product's own.
    from hyperhive_core.broker.store import MESSAGE_TABLE, open_engine
    from hyperhive_core.states import MessageState

    engine = open_engine(state_dir / "broker.sqlite")
    now = time.time() - total
    rows: list[dict[str, Any]] = []
    for i in range(total):
        unread = i >= total - queued
        sender, recipient = ("h2", "h1") if unread or i % 2 else ("h1", "h2")
        rows.append(
            {
                "sender": sender,
                "recipient": recipient,
                "body": f"message {i}",
                "created_at": now + i,
                "reply_to": None,
                "state": MessageState.QUEUED if unread else MessageState.ACKED,
                "delivered_at": None if unread else now + i,
                "acked_at": None if unread else now + i,
            }
        )
    with engine.begin() as connection:
        connection.execute(MESSAGE_TABLE.insert(), rows)
    engine.dispose()


def history_samples(root: Path, total: int, sizes: Sizes) -> tuple[list[float], list[float]]:
    """`inbox` and `recv` of h1, whose history holds about `total` messages."""
    seed_history(root / "state", total, queued=10)
    with idle_daemon(root) as hive:
        with hive.operator() as operator:
            operator.call("spawn", {"name": "h1"})
            operator.call("spawn", {"name": "h2"})
            with connect_socket(hive.agent_socket("h1")) as h1:
                timed(20, lambda: h1.call("inbox", {"limit": 20}))
                inbox = timed(sizes.history_calls, lambda: h1.call("inbox", {"limit": 20}))
                recv: list[float] = []
                for i in range(sizes.history_calls + 20):
                    operator.call("send", {"to": "h1", "body": f"new {i}"})
                    start = time.perf_counter()
                    h1.call("recv", {"timeout_s": 0, "max": 10})
                    recv.append(time.perf_counter() - start)
    return inbox, recv[20:]


def measure_history(root: Path, sizes: Sizes) -> list[Row]:
    """The same `inbox` and `recv` calls with a small and a large history."""
    small_inbox, small_recv = history_samples(root / "small", 100, sizes)
    large_inbox, large_recv = history_samples(root / "large", sizes.history, sizes)
    rows: list[Row] = []
    for tool, small, large in (("recv", small_recv, large_recv), ("inbox", small_inbox, large_inbox)):
        median, p99 = ms(large)
        small_median, small_p99 = ms(small)
        ratio = median / small_median
        rows.append(
            Row(
                f"history: `{tool}`",
                f"{sizes.history:,} stored messages vs 100 (floor: the same call with 100)",
                f"{median:.3f} ms vs {small_median:.3f} ms",
                "as fast as with 100",
                ratio <= 1.25,
                median,
                p99,
                "same call, 100 stored",
                ratio,
                {"small_median_ms": small_median, "small_p99_ms": small_p99},
            )
        )
    return rows


# scale and the CLI


def round_trip_each(hive: Hive, names: list[str], tag: str) -> list[float]:
    """Send one message to each agent at once; the time until each echo reply arrives, in seconds."""
    sent_at: dict[int, float] = {}
    answered_at: dict[int, float] = {}
    all_sent = threading.Event()

    def collect(client: LineClient) -> None:
        while not (all_sent.is_set() and len(answered_at) >= len(names)):
            for message in client.call("recv", {"timeout_s": 1, "max": 100})["messages"]:
                if message["reply_to"] is not None:
                    answered_at[message["reply_to"]] = time.perf_counter()

    with hive.operator() as sender, hive.operator() as receiver:
        collector = threading.Thread(target=collect, args=(receiver,))
        collector.start()
        for name in names:
            start = time.perf_counter()
            receipt = sender.call("send", {"to": name, "body": f"{tag} {name}"})
            sent_at[receipt["id"]] = start
        all_sent.set()
        collector.join(120)
        if collector.is_alive():
            raise RuntimeError(f"only {len(answered_at)} of {len(names)} agents answered")
    return [answered_at[i] - sent_at[i] for i in sent_at]


def measure_scale(root: Path, floors: Floors, sizes: Sizes) -> list[Row]:
    """Spawn echo agents through the operator's `spawn`; check each answers; time `hivectl list`."""
    names = [f"e{i:03d}" for i in range(sizes.agents)]
    # The page-load row's history: written before the daemon starts, as if the hive had run a while.
    seed_messages(root / "state", names, PAGE_MESSAGES)
    with echo_daemon(root) as hive:
        with hive.operator() as operator:
            spawns = [0.0] * len(names)
            for i, name in enumerate(names):
                start = time.perf_counter()
                operator.call("spawn", {"name": name})
                spawns[i] = time.perf_counter() - start
        # The first round waits for every agent to start and connect; the second is the one measured.
        first = round_trip_each(hive, names, "hello")
        answers = round_trip_each(hive, names, "again")
        rss = rss_mb(hive.pid)
        dirs = ["--run-dir", str(hive.run_dir), "--state-dir", str(hive.state_dir)]
        cli = timed(sizes.cli_runs, lambda: subprocess.run([hivectl(), *dirs, "list"], check=True, capture_output=True))
        dash = dashboard_of(hive.run_dir)
        with open_browser() as browser, logged_in(browser, dash) as page:
            agents_load, stream_load = page_loads(page, dash, names[-1], PAGE_MESSAGES, sizes.cli_runs)
        approval_rows = measure_approvals(hive, floors, sizes, len(names))
        approval_rows.append(measure_review_views(hive, dash, sizes))
    spawn_median, spawn_p99 = ms(spawns)
    answer_median, answer_p99 = ms(answers)
    cli_median, cli_p99 = ms(cli)
    all_answered_s = max(answers)
    n = len(names)
    return [
        Row(
            "scale",
            f"spawn {n} agents on the local backend (echo driver, {_sandbox()}), all connected and waiting; "
            "median/p99 = one `spawn`",
            f"spawn {spawn_median:.0f} ms; RSS {rss:.0f} MB; all {n} answered in {all_answered_s:.2f} s",
            "spawn median ≤ 150 ms; daemon RSS ≤ 150 MB; each answered within 2 s",
            spawn_median <= 150 and rss <= 150 and all_answered_s <= 2.0,
            spawn_median,
            spawn_p99,
            "MCP no-op",
            spawn_median / floors.mcp,
            {
                "rss_mb": rss,
                "answer_median_ms": answer_median,
                "answer_p99_ms": answer_p99,
                "all_answered_s": all_answered_s,
                "first_round_all_answered_s": max(first),
            },
        ),
        Row(
            "CLI",
            f"`hivectl list` with {n} agents, whole process",
            f"{cli_median:.0f} ms",
            "≤ 250 ms",
            cli_median <= 250,
            cli_median,
            cli_p99,
            "python start",
            cli_median / floors.python,
        ),
        page_load_row(n, agents_load, stream_load),
        *approval_rows,
    ]


def page_load_row(agents: int, agents_load: list[float], stream_load: list[float]) -> Row:
    """The dashboard's two heaviest views, loaded in a real browser."""
    agents_median, agents_p99 = ms(agents_load)
    median, p99 = ms(stream_load)
    return Row(
        "dashboard: page load",
        f"{agents} agents and {PAGE_MESSAGES:,} messages, headless chromium, navigation start → load event: "
        "the agents view (all its agents); median/p99 = the messages view (its newest 200)",
        f"agents {agents_median:.0f} ms; messages {median:.0f} ms",
        "-",
        None,
        median,
        p99,
        extra={"agents_median_ms": agents_median, "agents_p99_ms": agents_p99, "messages": PAGE_MESSAGES},
    )


def _answered(hive: Hive, name: str, tag: str) -> float:
    """Send `tag` to agent `name` as the operator; seconds until its echo reply arrives."""
    with hive.operator() as operator:
        start = time.perf_counter()
        sent = operator.call("send", {"to": name, "body": tag})["id"]
        deadline = start + 60
        while time.perf_counter() < deadline:
            for message in operator.call("recv", {"timeout_s": 5, "max": 100})["messages"]:
                if message["reply_to"] == sent:
                    return time.perf_counter() - start
    raise RuntimeError(f"agent {name} did not answer within 60 s")


def measure_approvals(hive: Hive, floors: Floors, sizes: Sizes, agents: int) -> list[Row]:
    """With `agents` agents running: the manager proposes `sizes.proposals` spawns; `hivectl plan` and
    `hivectl approvals` as whole processes; then `approve` of some, timed until the new agent answers."""
    dirs = ["--run-dir", str(hive.run_dir), "--state-dir", str(hive.state_dir)]
    with hive.operator() as operator:
        operator.call("spawn_manager", {})
    names = [f"p{i:03d}" for i in range(sizes.proposals)]
    with connect_socket(hive.agent_socket("hm1nd")) as manager:
        ids: list[int] = [manager.call("spawn", {"name": name, "reason": "benchmark"})["id"] for name in names]

    def cli(*verb: str) -> None:
        # plan exits 1 when main and the hive differ; the run counts either way.
        done = subprocess.run([hivectl(), *dirs, *verb], capture_output=True, check=False)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"hivectl {' '.join(verb)} failed: {done.stderr.decode()}")

    plans = timed(sizes.cli_runs, lambda: cli("plan"))
    listings = timed(sizes.cli_runs, lambda: cli("approvals"))
    approving: list[float] = []
    answering: list[float] = []
    with hive.operator() as operator:
        for proposal, name in list(zip(ids, names, strict=True))[: sizes.approvals]:
            start = time.perf_counter()
            verdict = operator.call("approve", {"proposal": proposal})
            approved = time.perf_counter() - start
            if verdict["proposal"]["state"] != "applied":
                raise RuntimeError(f"proposal {proposal} was not applied: {verdict['proposal']['reason']}")
            approving.append(approved)
            answering.append(approved + _answered(hive, name, f"hello {name}"))
    rows: list[Row] = []
    for verb, samples in (("plan", plans), ("approvals", listings)):
        median, p99 = ms(samples)
        rows.append(
            Row(
                f"CLI: `hivectl {verb}`",
                f"whole process, {agents} agents running and {len(names)} proposals pending",
                f"{median:.0f} ms",
                "≤ 250 ms",
                median <= 250,
                median,
                p99,
                "python start",
                median / floors.python,
            )
        )
    median, p99 = ms(answering)
    approve_median, approve_p99 = ms(approving)
    rows.append(
        Row(
            "approve → answer",
            f"`approve` (merge on main, reconcile: the agent starts in bubblewrap) until the new echo agent "
            f"answers a message, local backend, {len(answering)} proposals, {agents} agents running",
            f"{median:.0f} ms (approve returns in {approve_median:.0f} ms)",
            "≤ 1 s",
            median <= 1000,
            median,
            p99,
            "python start",
            median / floors.python,
            {"approve_median_ms": approve_median, "approve_p99_ms": approve_p99},
        )
    )
    return rows


def measure_review_views(hive: Hive, dash: Dashboard, sizes: Sizes) -> Row:
    """The approvals and history views over HTTP, on the hive `measure_approvals` left: its pending
    proposals, and main grown by `2 * sizes.commits` commits (a hive that ran long)."""
    grow_main(hive.state_dir / "hive.git", 2 * sizes.commits)
    headers = {"Authorization": f"Bearer {dash.token}"}
    with httpx2.Client(base_url=dash.url, headers=headers, timeout=60) as client:
        waiting = client.get("/api/approvals").json()["pending"]
        pending = len(waiting)
        total = client.get("/api/history").json()["total"]
        last = (total + 49) // 50
        newest = client.get("/api/history").json()["commits"][0]["rev"]
        approvals = get_ms(client, "/approvals", sizes.cli_runs)
        card = get_ms(client, f"/partials/approvals/{waiting[0]['id']}", sizes.cli_runs) if waiting else [0.0]
        first = get_ms(client, "/history", sizes.cli_runs)
        oldest = get_ms(client, f"/history?page={last}", sizes.cli_runs)
        diff = get_ms(client, f"/partials/commit/{newest}", sizes.cli_runs)
    median, p99 = ms(approvals)
    first_ms, oldest_ms, diff_ms, card_ms = ms(first)[0], ms(oldest)[0], ms(diff)[0], ms(card)[0]
    return Row(
        "dashboard: approvals, history",
        f"GET, whole answer: median/p99 = the approvals view ({pending} pending); one card's diff and plan; "
        f"the history's first and last page of {total:,} commits on main (50 a page); a commit's diff",
        f"approvals {median:.0f} ms, a card {card_ms:.0f} ms; history {first_ms:.0f} ms, page {last} "
        f"{oldest_ms:.0f} ms; diff {diff_ms:.0f} ms",
        "-",
        None,
        median,
        p99,
        extra={
            "pending": pending,
            "card_ms": card_ms,
            "commits": total,
            "history_first_ms": first_ms,
            "history_last_ms": oldest_ms,
            "commit_diff_ms": diff_ms,
        },
    )


# claude turns


CLAUDE_MODES: tuple[tuple[str, str, list[str]], ...] = (
    ("kept", "one claude per agent, kept across turns (now)", []),
    ("per turn", "a fresh claude per turn (before)", ["HIVE_CLAUDE_KEEP_ALIVE=0"]),
)


def measure_claude(root: Path, sizes: Sizes) -> list[Row]:
    """The real claude-code against the fake Messages API: turn overhead, requests per turn, memory."""
    if not claude_installed():
        raise RuntimeError("claude-code is not installed in .tools: run ./scripts/test once (ensure_claude)")
    results: list[ModeResult] = []
    with fake_api() as (api, portal):
        for i, (mode, _, agent_env) in enumerate(CLAUDE_MODES):
            # working turns once, with claude kept (the default): what a tool call adds to a turn
            work = sizes.claude_turns if i == 0 else 0
            results.append(measure_mode(root / f"c{i}", api, portal, sizes.claude_turns, mode, agent_env, work))
    rows: list[Row] = []
    for result, (_, how, _) in zip(results, CLAUDE_MODES, strict=True):
        start_median, start_p99 = ms([t.to_first_request for t in result.turns])
        rows.append(
            Row(
                f"claude turn start ({result.mode})",
                f"message stored → claude's first API request; {how}; {len(result.turns)} turns, "
                f"real claude-code in {_sandbox()}, fake API on 127.0.0.1",
                f"{start_median:.0f} ms",
                "-",
                None,
                start_median,
                start_p99,
            )
        )
    for result, (_, how, _) in zip(results, CLAUDE_MODES, strict=True):
        end_median, end_p99 = ms([t.answer_to_stored for t in result.turns])
        requests = sorted({t.model_requests for t in result.turns})
        rows.append(
            Row(
                f"claude turn end ({result.mode})",
                f"API answer with the send done → reply stored; {how}",
                f"{end_median:.0f} ms; model requests: {result.first.model_requests} in a session's first turn, "
                f"{', '.join(map(str, requests))} later",
                "-",
                None,
                end_median,
                end_p99,
                extra={
                    "model_requests_per_turn": [t.model_requests for t in result.turns],
                    "first_turn_model_requests": result.first.model_requests,
                    "first_turn_start_ms": result.first.to_first_request * 1e3,
                },
            )
        )
    kept = results[0]
    bash_median, bash_p99 = ms([t for t, _ in kept.work])
    rows.append(
        Row(
            "claude Bash call",
            f"a working turn ({WORK_COMMAND!r} in the work dir, in {_sandbox()}): the API answer calling Bash → "
            f"claude's next request with its output; {len(kept.work)} turns, claude kept",
            f"{bash_median:.0f} ms; model requests per working turn: "
            f"{', '.join(map(str, sorted({n for _, n in kept.work})))}",
            "-",
            None,
            bash_median,
            bash_p99,
            extra={"model_requests_per_working_turn": [n for _, n in kept.work]},
        )
    )
    per_gib = 1024 / kept.tree_rss_mb
    rows.append(
        Row(
            "claude RSS per agent",
            "resident memory between turns of one agent's process tree (turn loop, claude, its MCP bridge), "
            "claude kept across turns",
            f"{kept.tree_rss_mb:.0f} MB (claude {kept.claude_rss_mb:.0f} MB): {per_gib:.1f} agents per GiB",
            "-",
            None,
            extra={
                "tree_rss_mb": kept.tree_rss_mb,
                "claude_rss_mb": kept.claude_rss_mb,
                "agents_per_gib": per_gib,
            },
        )
    )
    return rows


def _sandbox() -> str:
    return "bubblewrap" if shutil.which("bwrap") else "no sandbox: bwrap missing"


# the report


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "tmp_filesystem": _filesystem(Path(tempfile.gettempdir())),
    }


def _filesystem(path: Path) -> str:
    best = ("", "unknown")
    for line in Path("/proc/mounts").read_text().splitlines():
        device, mount, kind = line.split()[:3]
        if str(path).startswith(mount) and len(mount) > len(best[0]):
            best = (mount, f"{kind} on {device}")
    return best[1]


def table(rows: list[Row]) -> str:
    """The markdown table."""

    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = [
        "| what | how | result | median ms | p99 ms | x floor (floor) | target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = "-" if r.floor_ratio is None else f"{r.floor_ratio:.2f}x ({r.floor})"
        met = "-" if r.met is None else "yes" if r.met else "**no**"
        lines.append(
            f"| {r.what} | {r.how} | {r.result} | {num(r.median_ms, '.3f')} | {num(r.p99_ms, '.3f')} | {ratio} "
            f"| {r.target} | {met} |"
        )
    return "\n".join(lines)


FLOOD_LINE = b'{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}\n'


def measure_fairness(hive: Hive, sizes: Sizes, flood: int = 200_000) -> Row:
    """Agent b's `whoami` round trips while agent a floods `flood` notifications as fast as its socket takes them."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(hive.agent_socket("a")))
    sock.sendall(
        b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},'
        b'"clientInfo":{"name":"flood","version":"0"}}}\n{"jsonrpc":"2.0","method":"notifications/initialized"}\n'
    )
    data = memoryview(FLOOD_LINE * flood)
    sent = [0]

    def pour() -> None:
        try:
            while sent[0] < len(data):
                sent[0] += sock.send(data[sent[0] : sent[0] + 65536])
        except OSError:
            pass

    with connect_socket(hive.agent_socket("b")) as b:
        timed(20, lambda: b.call("whoami", {}))
        quiet = timed(sizes.deliveries, lambda: b.call("whoami", {}))
        pourer = threading.Thread(target=pour, daemon=True)
        started = time.perf_counter()
        pourer.start()
        samples = timed(sizes.deliveries, lambda: b.call("whoami", {}))
        elapsed = time.perf_counter() - started
        taken = sent[0] // len(FLOOD_LINE)
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    pourer.join()
    median, p99 = ms(samples)
    return Row(
        "fairness",
        f"b's `whoami` round trips ({sizes.deliveries:,}) while a floods {flood:,} notifications",
        f"p99 {p99:.1f} ms (quiet: {ms(quiet)[1]:.1f} ms); a's lines taken {taken / elapsed:,.0f}/s",
        "p99 ≤ 50 ms",
        p99 <= 50.0,
        median,
        p99,
        "b's quiet p99",
        p99 / ms(quiet)[1],
        {"flood_lines_taken_per_s": round(taken / elapsed), "quiet_median_ms": ms(quiet)[0]},
    )


def mcp_ceiling(root: Path, sizes: Sizes, servers: int, clients: int = 20) -> float:
    """Calls/s of `clients` threads (the throughput rows' shape) calling no-op tools on `servers` SDK servers."""
    root.mkdir(parents=True)
    stop = threading.Event()
    counts = [0] * clients
    with ExitStack() as stack:
        for k in range(servers):
            stack.enter_context(child("mcp", str(root / f"m{k}.sock")))
        conns = [stack.enter_context(connect_socket(root / f"m{i % servers}.sock")) for i in range(clients)]

        def loop(i: int) -> None:
            while not stop.is_set():
                conns[i].call("noop", {})
                counts[i] += 1

        threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        stop.wait(sizes.throughput_s)
        stop.set()
        for thread in threads:
            thread.join()
        return sum(counts) / (time.perf_counter() - start)


def measure_ceilings(root: Path, server: PgServer, sizes: Sizes) -> list[Row]:
    """What bounds the daemons' throughput here: the SDK's calls/s, and the PostgreSQL store's own rate."""
    rows: list[Row] = []
    for servers in (1, 4):
        rate = mcp_ceiling(root / f"ceiling{servers}", sizes, servers)
        rows.append(
            Row(
                f"ceiling: MCP no-op calls/s, {servers} server{'s' if servers > 1 else ''}",
                "20 client threads (the throughput rows' clients) calling a tool that does nothing, "
                f"as fast as they can, on {servers} SDK server process{'es' if servers > 1 else ''}",
                f"{rate:,.0f} calls/s",
                "-",
                None,
                extra={"rate": rate},
            )
        )
    for stores in (1, 4):
        sent, elapsed = store_rate(server, stores=stores, writers=4, batch=50, seconds=sizes.throughput_s)
        rate = sent / elapsed
        rows.append(
            Row(
                f"PostgreSQL store alone, {stores} store{'s' if stores > 1 else ''}",
                f"{stores} x 4 tasks appending batches of 50 messages straight to `PgStore` (a group commit's "
                "shape), no MCP, no daemon; durable commits",
                f"{rate:,.0f} msg/s",
                "≥ 2,000 durable msg/s",
                rate >= 2000,
                extra={"sent": sent, "elapsed_s": elapsed, "rate": rate},
            )
        )
    return rows


def measure_postgres(root: Path, floors: Floors, sizes: Sizes, pairs: int = 10) -> list[Row]:
    """Throughput of 1, 2 and 4 daemons on one PostgreSQL database (fsync on), a wake-up across two, the ceilings."""
    rows: list[Row] = []
    with durable_server() as server:
        if server is None:
            return [Row("PostgreSQL rows", "PostgreSQL is not installed here", "skipped", "", None)]
        rows += measure_ceilings(root, server, sizes)
        for n in DAEMONS:
            url = server.new_database()
            with ExitStack() as stack:
                hives = [stack.enter_context(idle_daemon(root / f"pg{n}-{k}", url)) for k in range(n)]
                for i in range(pairs):
                    with hives[i % n].operator() as operator:
                        operator.call("spawn", {"name": f"s{i}"})
                        operator.call("spawn", {"name": f"r{i}"})
                row = measure_throughput(
                    hives, floors, sizes, pairs, what=f"throughput, {n} daemon{'s' if n > 1 else ''} on PostgreSQL"
                )
                row.how += f"; pair i on daemon i mod {n}, one database (fsync on)"
                rows.append(row)
        same, across = wake_samples(server, sizes.deliveries)
    for label, samples in (("on one daemon", same), ("across two daemons", across)):
        median, p99 = ms(samples)
        rows.append(
            Row(
                f"PostgreSQL wake-up {label}",
                f"broker level: `send` → a waiting `recv` returns {label} (across: by NOTIFY), "
                f"{len(samples):,} messages",
                f"{median:.3f} ms",
                "across ≤ a few ms over one",
                None,
                median,
                p99,
            )
        )
    return rows


def run(sizes: Sizes, root: Path) -> list[Row]:
    """Every row, in the table's order."""
    floors = measure_floors(root / "f", sizes)
    rows: list[Row] = []
    with idle_daemon(root / "d") as hive:
        with hive.operator() as operator:
            for name in [
                "a",
                "b",
                "sink",
                "dn",
                "dt",
                "dp",
                *(f"s{i}" for i in range(10)),
                *(f"r{i}" for i in range(10)),
            ]:
                operator.call("spawn", {"name": name})
        rows.append(measure_send(hive, floors, sizes))
        rows.append(measure_delivery(hive, floors, sizes))
        rows.append(measure_report_events(hive, floors, sizes))
        rows.append(measure_throughput(hive, floors, sizes))
        rows.append(measure_throughput(hive, floors, sizes, keyed=True))
        rows.append(measure_fairness(hive, sizes))
        rows += measure_dashboard(hive, dashboard_of(hive.run_dir), floors, sizes)
    rows += measure_postgres(root / "p", floors, sizes)
    rows += measure_scale(root / "s", floors, sizes)
    rows += measure_history(root / "h", sizes)
    rows += measure_claude(root / "c", sizes)
    return rows + floors.rows


def run_postgres(sizes: Sizes, root: Path) -> list[Row]:
    """The PostgreSQL rows, with one daemon on SQLite measured the same way in the same run."""
    floors = measure_floors(root / "f", sizes)
    with idle_daemon(root / "d") as hive:
        with hive.operator() as operator:
            for i in range(10):
                operator.call("spawn", {"name": f"s{i}"})
                operator.call("spawn", {"name": f"r{i}"})
        rows = [measure_throughput(hive, floors, sizes, what="throughput, 1 daemon on SQLite")]
    return rows + measure_postgres(root / "p", floors, sizes)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks and print the table (and the JSON)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=(__doc__ or "").splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer iterations, 20 agents, 2 s of throughput")
    size.add_argument("--smoke", action="store_true", help="a few iterations of each row: checks that it runs")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON ('-' for stdout)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (daemon logs, databases)")
    parser.add_argument(
        "--postgres-only", action="store_true", help="only the PostgreSQL rows and the SQLite throughput beside them"
    )
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    root = Path(tempfile.mkdtemp(prefix="hb-", dir="/tmp"))
    try:
        started = time.perf_counter()
        rows = run_postgres(sizes, root) if args.postgres_only else run(sizes, root)
        elapsed = time.perf_counter() - started
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    info = machine()
    report: dict[str, Any] = {
        "machine": info,
        "sizes": asdict(sizes),
        "elapsed_s": round(elapsed, 1),
        "rows": [asdict(r) for r in rows],
    }
    if args.json == Path("-"):
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    sys.stdout.write(
        f"{table(rows)}\n\n{info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB, Linux {info['kernel']}, "
        f"Python {info['python']}, /tmp on {info['tmp_filesystem']}; {elapsed:.0f} s\n"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

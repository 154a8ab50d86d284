"""The event log: batches within the daemon's per-call limit, size caps, and secrets scrubbed."""

from pathlib import Path

import anyio
import anyio.to_thread

from hyperhive_agent.client import connect
from hyperhive_agent.events import MAX_EVENT_BYTES, EventLog, Redactor, cap_event, hive_event
from hyperhive_agent.tools import HiveTools
from tests.agent._server import FakeHive, serve_unix


async def test_events_are_reported_in_order_in_batches_of_at_most_100(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "mcp.sock"
    async with FakeHive() as hive, serve_unix(hive.server, sock):
        with anyio.fail_after(5), await anyio.to_thread.run_sync(connect, sock) as client:
            log = EventLog()
            log.bind(HiveTools(client))

            def emit_all() -> None:
                for n in range(250):
                    log.emit(hive_event("output", f"line {n}"))
                log.flush()

            await anyio.to_thread.run_sync(emit_all)
            got = [await hive.events.receive() for _ in range(250)]
    assert [e["message"] for e in got] == [f"line {n}" for n in range(250)]
    assert hive.report_sizes == [100, 100, 50]


async def test_events_emitted_before_a_connection_wait_for_it(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "mcp.sock"
    log = EventLog()
    log.emit(hive_event("driver", "driver echo (asked for)"))
    log.flush()
    assert log.pending == 1
    async with FakeHive() as hive, serve_unix(hive.server, sock):
        with anyio.fail_after(5), await anyio.to_thread.run_sync(connect, sock) as client:
            log.bind(HiveTools(client))
            await anyio.to_thread.run_sync(log.flush)
            assert (await hive.events.receive())["message"] == "driver echo (asked for)"
    assert log.pending == 0


async def test_a_refused_report_drops_the_events_and_never_raises(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "mcp.sock"
    async with FakeHive() as hive, serve_unix(hive.server, sock) as server:
        with anyio.fail_after(5), await anyio.to_thread.run_sync(connect, sock) as client:
            log = EventLog()
            log.bind(HiveTools(client))
            server.drop_connections()
            log.emit(hive_event("turn_end", "done"))
            await anyio.to_thread.run_sync(log.flush)
    assert log.pending == 0
    assert hive.report_sizes == []


def test_an_oversized_event_is_cut_to_its_type_and_head() -> None:
    log_line = {"type": "user", "subtype": None, "message": "x" * (2 * MAX_EVENT_BYTES)}
    redacted = Redactor(["x" * 10]).event(log_line)
    assert "x" * 10 not in str(redacted)
    capped = cap_event(log_line)
    assert capped["type"] == "user"
    assert capped["truncated"] is True
    assert len(str(capped)) < MAX_EVENT_BYTES


async def test_a_batch_of_large_events_is_split_to_fit_the_daemons_line_limit(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "mcp.sock"
    # 10 KB of UTF-8 each (under the event cap), 30 KB once escaped on the wire: 60 make 1.8 MB.
    text = "é" * 5000
    async with FakeHive() as hive, serve_unix(hive.server, sock):
        with anyio.fail_after(10), await anyio.to_thread.run_sync(connect, sock) as client:
            log = EventLog()
            log.bind(HiveTools(client))

            def emit_all() -> None:
                for n in range(60):
                    log.emit(hive_event("output", f"{n} {text}"))
                log.flush()

            await anyio.to_thread.run_sync(emit_all)
            got = [await hive.events.receive() for _ in range(60)]
    assert [e["message"] for e in got] == [f"{n} {text}" for n in range(60)]
    assert sum(hive.report_sizes) == 60
    assert max(hive.report_sizes) < 10

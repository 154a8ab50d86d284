"""The stats sampler: every few seconds, messages per minute, queue depths, and each agent's CPU,
memory, tokens and cost, into `<state dir>/stats.sqlite` with bounded retention.

Stats live in their own file, apart from the hive database: they are disposable (a damaged file
is moved aside and started afresh, never a reason to stop the daemon), they never contend with
the broker's writer, and the broker's size limit and backups are about messages only.
"""

import functools
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from hyperhive_core.dashboard import procs
from hyperhive_core.dashboard.activity import Activity
from hyperhive_core.errors import HiveError
from hyperhive_core.hive import Hive
from hyperhive_core.states import AgentState, MessageState

logger = logging.getLogger(__name__)

STATS_FILE = "stats.sqlite"
# Backends whose agents are host processes with a pid (and whose status costs no subprocess): the
# nixos backend's containers report none, and asking it runs `nixos-container status` per agent.
PID_BACKENDS = frozenset({"local"})
SAMPLE_EVERY_S = 10.0
# Kept this long: the page plots the last hour; six hours at 10 s is 2,160 rows per agent.
KEEP_S = 6 * 3600.0
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS hive_sample (t REAL PRIMARY KEY, messages_per_min REAL, queued INTEGER, "
    "delivered INTEGER)",
    "CREATE TABLE IF NOT EXISTS agent_sample (t REAL NOT NULL, agent TEXT NOT NULL, cpu_pct REAL, rss_bytes INTEGER, "
    "queued INTEGER, tokens INTEGER, cost_usd REAL)",
    "CREATE INDEX IF NOT EXISTS ix_agent_sample_t ON agent_sample (t)",
)


@dataclass(frozen=True, slots=True)
class AgentSample:
    """One agent at one moment (CPU is None for a first sample: a rate needs two)."""

    agent: str
    cpu_pct: float | None
    rss_bytes: int | None
    queued: int
    tokens: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class Sample:
    """The hive at one moment."""

    t: float
    messages_per_min: float | None
    queued: int
    delivered: int
    agents: list[AgentSample] = field(default_factory=list[AgentSample])


class StatsStore:
    """The samples in their own SQLite file; sync, one connection, one call at a time."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.DatabaseError:
            aside = self._path.with_name(f"{self._path.name}.damaged-{int(time.time())}")
            logger.warning("the stats file %s is unreadable; moved to %s, starting afresh", self._path, aside)
            self._path.rename(aside)
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # Losing the last samples to a power cut is fine; fsyncs on every sample are not.
            db.execute("PRAGMA synchronous=NORMAL")
            for statement in SCHEMA:
                db.execute(statement)
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    def record(self, sample: Sample, *, keep_s: float = KEEP_S) -> None:
        """Store `sample` and forget samples older than `keep_s`."""
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                db.execute(
                    "INSERT OR REPLACE INTO hive_sample VALUES (?, ?, ?, ?)",
                    (sample.t, sample.messages_per_min, sample.queued, sample.delivered),
                )
                db.executemany(
                    "INSERT INTO agent_sample VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (sample.t, a.agent, a.cpu_pct, a.rss_bytes, a.queued, a.tokens, a.cost_usd)
                        for a in sample.agents
                    ],
                )
                horizon = sample.t - keep_s
                db.execute("DELETE FROM hive_sample WHERE t < ?", (horizon,))
                db.execute("DELETE FROM agent_sample WHERE t < ?", (horizon,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def window(self, since: float) -> dict[str, Any]:
        """Samples since `since`, as columns aligned on the sample times (uPlot's data layout)."""
        with self._lock:
            hive = self._db.execute(
                "SELECT t, messages_per_min, queued, delivered FROM hive_sample WHERE t >= ? ORDER BY t", (since,)
            ).fetchall()
            rows = self._db.execute(
                "SELECT t, agent, cpu_pct, rss_bytes, tokens, cost_usd FROM agent_sample WHERE t >= ? ORDER BY t",
                (since,),
            ).fetchall()
        times = [r[0] for r in hive]
        index = {t: i for i, t in enumerate(times)}
        agents: dict[str, dict[str, list[float | None]]] = {}
        for t, agent, cpu, rss, tokens, cost in rows:
            if (i := index.get(t)) is None:
                continue
            series = agents.setdefault(
                agent, {k: [None] * len(times) for k in ("cpu_pct", "rss_mb", "tokens", "cost_usd")}
            )
            series["cpu_pct"][i] = cpu
            series["rss_mb"][i] = None if rss is None else round(rss / 2**20, 1)
            series["tokens"][i] = tokens
            series["cost_usd"][i] = cost
        return {
            "t": times,
            "messages_per_min": [r[1] for r in hive],
            "queued": [r[2] for r in hive],
            "delivered": [r[3] for r in hive],
            "agents": agents,
        }


class Sampler:
    """Takes a `Sample` of the hive every `every_s` seconds and stores it."""

    def __init__(self, hive: Hive, activity: Activity, store: StatsStore, *, every_s: float = SAMPLE_EVERY_S) -> None:
        self._hive = hive
        self._activity = activity
        self._store = store
        self._every_s = every_s
        self._last: tuple[float, int, dict[str, float]] | None = None  # (monotonic, sent, cpu_s per agent)

    async def run(self) -> None:
        """Sample every `every_s` seconds, forever (the first one after a wait: see `try_sample`)."""
        while True:
            await anyio.sleep(self._every_s)
            await self.try_sample()

    async def try_sample(self) -> None:
        """Take a sample; a failed one is logged (the next one is tried as usual)."""
        try:
            await self.sample_once()
        except (HiveError, OSError, sqlite3.Error):
            logger.warning("could not take a stats sample", exc_info=True)

    async def sample_once(self) -> Sample:
        """Take one sample now and store it."""
        hive = self._hive
        await self._activity.refresh()
        roots: dict[str, int] = {}
        if hive.backend.info.name in PID_BACKENDS:
            for name in hive.agent_names:
                status = await hive.backend.status(name)
                if status.state == AgentState.RUNNING and status.pid is not None:
                    roots[name] = status.pid
        table = await anyio.to_thread.run_sync(procs.snapshot)
        usage = procs.tree_usage(table, roots)
        now, wall = time.monotonic(), time.time()
        sent = self._activity.total_sent
        previous = self._last
        cpu_now = {name: cpu for name, (cpu, _) in usage.items()}
        elapsed = now - previous[0] if previous is not None else 0.0
        unread = hive.broker.store.unread_counts()
        totals = hive.broker.store.totals()
        agents: list[AgentSample] = []
        for name in hive.agent_names:
            used = hive.budgets.spend(name).total  # the daemon's own record of its turns
            cpu_pct: float | None = None
            if previous is not None and elapsed > 0 and name in cpu_now and name in previous[2]:
                cpu_pct = round(max(cpu_now[name] - previous[2][name], 0.0) / elapsed * 100, 1)
            agents.append(
                AgentSample(
                    agent=name,
                    cpu_pct=cpu_pct,
                    rss_bytes=usage[name][1] if name in usage else None,
                    queued=unread.get(name, 0),
                    tokens=used.tokens,
                    cost_usd=round(used.cost_usd, 6),
                )
            )
        rate = round((sent - previous[1]) / elapsed * 60, 2) if previous is not None and elapsed > 0 else None
        sample = Sample(
            t=round(wall, 3),
            messages_per_min=rate,
            queued=totals.get(MessageState.QUEUED, 0),
            delivered=totals.get(MessageState.DELIVERED, 0),
            agents=agents,
        )
        self._last = (now, sent, cpu_now)
        await anyio.to_thread.run_sync(functools.partial(self._store.record, sample))
        return sample

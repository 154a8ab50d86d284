"""A hive of the release before approvals (its agents in SQLite) moves into the state repo on its first
start, once, and runs on."""

import time
from pathlib import Path

import anyio

from hyperhive_core.broker.models import AgentRow
from hyperhive_core.broker.store import HiveStore, open_engine
from hyperhive_core.client import open_hive_client
from hyperhive_core.daemon import running_daemon
from hyperhive_core.states import AgentState, SyncState
from tests.core.approvals._git import bare
from tests.helpers import IDLE_AGENT, hive_config


async def test_agents_kept_in_sqlite_are_migrated_into_the_state_repo_once(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    engine = open_engine(config.broker_path)
    store = HiveStore(engine)
    for name, role, driver in (("alice", "write", "echo"), ("bob", "", "auto")):
        store.put_agent(AgentRow(name=name, backend="local", created_at=time.time(), role=role, driver=driver))
    engine.dispose()
    assert not config.state_repo.exists()
    with anyio.fail_after(60):
        for _ in range(2):
            async with running_daemon(config) as daemon, open_hive_client(config.host_socket) as operator:
                agents = await operator.list_agents()
                assert [(a.name, a.role, a.driver, a.state, a.sync) for a in agents] == [
                    ("alice", "write", "echo", AgentState.RUNNING, SyncState.READY),
                    ("bob", "", "auto", AgentState.RUNNING, SyncState.READY),
                ]
                assert await anyio.to_thread.run_sync(daemon.hive.broker.store.agents) == []
    log = (await bare(config, "log", "--format=%an: %s", "main")).splitlines()
    assert log == ["hyperhive: migrate 2 agents from the hive database"]
    assert await bare(config, "show", "main:agents/alice.toml") == (
        '# agent alice; the fields and their defaults: README.md, \'Approvals\'\nrole = "write"\ndriver = "echo"\n'
    )

"""The approvals' rows on each engine (`hive_db`): the reconcile journal, each agent's reconcile state,
and proposals, through `ApprovalRecords` on the store's own engine (SQLite's file, or PostgreSQL)."""

from pathlib import Path

import pytest

from hyperhive_core.approvals.records import KEEP_JOURNAL, ApprovalRecords
from hyperhive_core.broker.models import AgentStateRow, ProposalRow
from hyperhive_core.broker.postgres import open_pg_engine
from hyperhive_core.budget.store import BudgetStore
from hyperhive_core.errors import StorageError
from tests.conftest import HiveDb

BASE = "b" * 40


async def records_on(hive_db: HiveDb) -> ApprovalRecords:
    return ApprovalRecords((await hive_db.open()).engine)


def proposal(agent: str, *, proposer: str = "hm1nd", created_at: float = 1.0) -> ProposalRow:
    return ProposalRow(
        proposer=proposer, kind="spawn", agent=agent, summary=f"spawn {agent}", base=BASE, created_at=created_at,
        expires_at=created_at + 3600,
    )  # fmt: skip


async def test_a_journal_step_and_the_agents_state_commit_together_and_the_journal_keeps_its_newest(
    hive_db: HiveDb,
) -> None:
    records = await records_on(hive_db)
    first = records.journal_start("alice", "r0", "create", "spawn", AgentStateRow(name="alice", reason="creating"))
    assert records.states()["alice"].reason == "creating"
    ready = AgentStateRow(
        name="alice", applied_hash="h1", applied_rev="r0", state="Ready", suspended=True, retry_at=2.5
    )
    records.journal_finish(first, "done", "", agent=ready)
    state = records.states()["alice"]
    assert (state.applied_hash, state.state, state.suspended, state.retry_at) == ("h1", "Ready", True, 2.5)
    assert [(r.id, r.step, r.state) for r in records.history("alice", 10)] == [(first, "create", "done")]
    # Past KEEP_JOURNAL steps, the oldest go; ids only grow.
    steps = [records.journal_start("alice", f"r{i}", "restart", "exited") for i in range(KEEP_JOURNAL + 4)]
    records.journal_note("bob", "r0", "exited", "its process ended", "exit 1")
    assert steps == sorted(steps)
    assert steps[0] > first
    records.journal_finish(steps[-1], "failed", "no memory", agent=AgentStateRow(name="alice", state="Failed"))
    history = records.history("alice", 1000)
    assert [r.id for r in history] == steps[-KEEP_JOURNAL:]
    assert (history[-1].state, history[-1].detail, history[-1].finished_at is not None) == ("failed", "no memory", True)
    assert [(r.step, r.state, r.detail) for r in records.history("bob", 10)] == [("exited", "done", "exit 1")]
    # A daemon that died mid-step: the steps it left started are marked interrupted, once.
    interrupted = records.interrupt_open()
    assert sorted(r.id or 0 for r in interrupted) == steps[-KEEP_JOURNAL:-1]
    assert records.interrupt_open() == []
    assert {r.state for r in records.history("alice", 1000)} == {"interrupted", "failed"}
    # A removed agent's state is forgotten with its last step.
    last = records.journal_start("alice", "r9", "remove", "killed")
    records.journal_finish(last, "done", "", forget="alice")
    assert "alice" not in records.states()


async def test_an_agents_state_is_replaced_whole(hive_db: HiveDb) -> None:
    records = await records_on(hive_db)
    records.put_state(AgentStateRow(name="alice", state="Failed", failures=3, retry_at=10.0, reason="crashed"))
    records.put_state(AgentStateRow(name="alice", state="Ready", applied_config='{"role": "x"}'))
    records.put_state(AgentStateRow(name="bob"))
    states = records.states()
    assert sorted(states) == ["alice", "bob"]
    alice = states["alice"]
    assert (alice.state, alice.failures, alice.retry_at, alice.reason) == ("Ready", 0, None, "")
    assert alice.applied_config == '{"role": "x"}'


async def test_proposals_are_listed_newest_first_and_the_first_verdict_wins(hive_db: HiveDb) -> None:
    records = await records_on(hive_db)
    carol = records.add_proposal(proposal("carol"))
    dave = records.add_proposal(proposal("dave", proposer="operator", created_at=2.0))
    assert carol.id is not None
    assert dave.id is not None
    assert carol.id < dave.id
    assert [p.id for p in records.proposals()] == [dave.id, carol.id]
    assert [p.id for p in records.proposals(proposer="hm1nd")] == [carol.id]
    assert [p.id for p in records.proposals(limit=1)] == [dave.id]
    approved = records.transition(carol.id, {"proposed"}, state="approved", decided_by="operator", decided_at=3.0)
    assert approved is not None
    assert (approved.state, approved.decided_by, approved.decided_at) == ("approved", "operator", 3.0)
    assert records.transition(carol.id, {"proposed"}, state="denied") is None
    assert [p.id for p in records.proposals(states=["approved", "applied"])] == [carol.id]
    records.drop_proposal(dave.id)
    assert records.proposal(dave.id) is None
    stored = records.proposal(carol.id)
    assert stored is not None
    assert (stored.state, stored.summary, stored.base) == ("approved", "spawn carol", BASE)


def test_a_postgresql_server_that_cannot_be_reached_is_named_as_such(short_tmpdir: Path) -> None:
    engine = open_pg_engine(f"postgresql://postgres@/hive?host={short_tmpdir}&port=1")
    try:
        with pytest.raises(StorageError) as journal:
            ApprovalRecords(engine).states()
        with pytest.raises(StorageError) as budgets:
            BudgetStore(engine).budgets()
    finally:
        engine.dispose()
    for caught in (journal, budgets):
        assert str(caught.value).startswith("cannot reach the hive's PostgreSQL database")
        assert "check that the server runs and that --database names it" in str(caught.value)

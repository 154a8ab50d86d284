"""Plain synchronous SQL for the approvals' tables: per-agent reconcile state, the journal, proposals.

One Session per call, one transaction each (run it in a thread). A journal step's end and the
agent's new state commit together, so what the journal says happened is what the state says.
SQLAlchemy's errors become `StorageError` here, in the words of the engine (SQLite or PostgreSQL).
"""

import time
from collections.abc import Collection, Generator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, delete, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from hyperhive_core.broker.engine_errors import engine_error
from hyperhive_core.broker.models import AgentStateRow, JournalRow, ProposalRow

# Journal rows kept per agent: its short history; older ones are dropped as new ones come.
KEEP_JOURNAL = 50


class ApprovalRecords:
    """The reconciler's and the proposals' rows in the hive database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def _session(self) -> Generator[Session]:
        try:
            with Session(self._engine, expire_on_commit=False) as session:
                yield session
        except SQLAlchemyError as exc:
            raise engine_error(self._engine, exc) from exc

    # per-agent state

    def states(self) -> dict[str, AgentStateRow]:
        """Every agent the reconciler tracks, by name."""
        with self._session() as session:
            return {row.name: row for row in session.exec(select(AgentStateRow))}

    def put_state(self, row: AgentStateRow) -> None:
        """Insert or replace an agent's state."""
        with self._session() as session:
            session.merge(row)
            session.commit()

    # the journal

    def journal_start(self, agent: str, rev: str, step: str, cause: str, state: AgentStateRow | None = None) -> int:
        """Record a step about to act, with the agent's state saying so; the step's id."""
        with self._session() as session:
            row = JournalRow(agent=agent, rev=rev, step=step, cause=cause, started_at=time.time())
            session.add(row)
            if state is not None:
                session.merge(state)
            session.commit()
            assert row.id is not None
            return row.id

    def journal_note(self, agent: str, rev: str, step: str, cause: str, detail: str, state: str = "done") -> None:
        """Record something that happened to an agent without a step of ours (it exited, it was suspended)."""
        now = time.time()
        with self._session() as session:
            session.add(
                JournalRow(
                    agent=agent, rev=rev, step=step, cause=cause, state=state, detail=detail, started_at=now,
                    finished_at=now,
                )
            )  # fmt: skip
            session.commit()

    def journal_finish(
        self, journal_id: int, state: str, detail: str, *, agent: AgentStateRow | None = None, forget: str | None = None
    ) -> None:
        """End a step and, in the same transaction, store the agent's new state (or forget a removed agent)."""
        with self._session() as session:
            session.exec(  # pyright: ignore[reportCallIssue, reportUnknownMemberType]
                update(JournalRow)
                .where(col(JournalRow.id) == journal_id)
                .values(state=state, detail=detail, finished_at=time.time())
            )
            if agent is not None:
                session.merge(agent)
            if forget is not None:
                session.exec(delete(AgentStateRow).where(col(AgentStateRow.name) == forget))  # pyright: ignore[reportCallIssue, reportUnknownMemberType]
            session.commit()
            if agent is not None or forget is not None:
                name = agent.name if agent is not None else forget
                self._prune(session, name or "")

    def _prune(self, session: Session, agent: str) -> None:
        keep = session.exec(
            select(JournalRow.id)
            .where(col(JournalRow.agent) == agent)
            .order_by(col(JournalRow.id).desc())
            .offset(KEEP_JOURNAL)
            .limit(1)
        ).first()
        if keep is not None:
            session.exec(delete(JournalRow).where(col(JournalRow.agent) == agent, col(JournalRow.id) <= keep))  # pyright: ignore[reportCallIssue, reportUnknownMemberType]
            session.commit()

    def interrupt_open(self, agents: Collection[str] | None = None) -> list[JournalRow]:
        """Mark the steps a dead daemon left started as interrupted (of `agents` only, if given: on a
        database several hosts share, another host's step may be under way); those steps."""
        with self._session() as session:
            query = select(JournalRow).where(col(JournalRow.state) == "started")
            if agents is not None:
                query = query.where(col(JournalRow.agent).in_(list(agents)))
            rows = list(session.exec(query))
            now = time.time()
            for row in rows:
                row.state = "interrupted"
                row.detail = "the daemon stopped during this step; the reconcile at its next start did what was left"
                row.finished_at = now
                session.add(row)
            session.commit()
            return rows

    def history(self, agent: str, limit: int) -> list[JournalRow]:
        """An agent's latest journal rows, oldest first."""
        with self._session() as session:
            rows = session.exec(
                select(JournalRow)
                .where(col(JournalRow.agent) == agent)
                .order_by(col(JournalRow.id).desc())
                .limit(limit)
            ).all()
            return list(reversed(rows))

    # proposals

    def add_proposal(self, row: ProposalRow) -> ProposalRow:
        """Store a new proposal; it comes back with its id."""
        with self._session() as session:
            session.add(row)
            session.commit()
            session.refresh(row)
            return row

    def proposal(self, proposal_id: int) -> ProposalRow | None:
        """One proposal."""
        with self._session() as session:
            return session.get(ProposalRow, proposal_id)

    def proposals(
        self, *, states: Collection[str] | None = None, proposer: str | None = None, limit: int = 1000
    ) -> list[ProposalRow]:
        """Proposals, newest first."""
        with self._session() as session:
            query = select(ProposalRow)
            if states is not None:
                query = query.where(col(ProposalRow.state).in_(list(states)))
            if proposer is not None:
                query = query.where(col(ProposalRow.proposer) == proposer)
            return list(session.exec(query.order_by(col(ProposalRow.id).desc()).limit(limit)))

    def transition(self, proposal_id: int, from_states: Collection[str], **changes: Any) -> ProposalRow | None:
        """Change a proposal only if it is still in one of `from_states` (the first verdict wins); the row,
        or None when it was not in them."""
        with self._session() as session:
            result = session.exec(  # pyright: ignore[reportCallIssue, reportUnknownMemberType, reportUnknownVariableType]
                update(ProposalRow)
                .where(col(ProposalRow.id) == proposal_id, col(ProposalRow.state).in_(list(from_states)))
                .values(**changes)
            )
            session.commit()
            if result.rowcount != 1:  # pyright: ignore[reportUnknownMemberType, reportAttributeAccessIssue]
                return None
            return session.get(ProposalRow, proposal_id)

    def drop_proposal(self, proposal_id: int) -> None:
        """Forget a proposal whose commit was never written (the daemon died while proposing)."""
        with self._session() as session:
            session.exec(delete(ProposalRow).where(col(ProposalRow.id) == proposal_id))  # pyright: ignore[reportCallIssue, reportUnknownMemberType]
            session.commit()

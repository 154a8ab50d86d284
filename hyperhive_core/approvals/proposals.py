"""Proposals: the manager's changes wait on a branch until the operator decides.

A proposal is a commit on `proposals/<id>` whose parent is main as it was (`Base:`); nothing runs
until the operator approves. Approval merges with a compare-and-swap on main: main may have moved,
but if it changed one of the proposal's files the proposal is `stale` and never applied against a
base it was not planned on. The first verdict wins (a conditional UPDATE in SQLite). The outcome
goes to the proposer as a message from `operator`, once per state (an idempotency key), so a
crash between deciding and telling neither loses nor repeats it. A proposal merged with plain git
is noticed and applied like an approved one; one whose files main changed is marked stale at once.
"""

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import anyio

from hyperhive_core.approvals.changes import OPERATOR_AUTHOR, Change, author_of
from hyperhive_core.approvals.desired import DesiredReader
from hyperhive_core.approvals.reconciler import Reconciler
from hyperhive_core.approvals.records import ApprovalRecords
from hyperhive_core.approvals.repo import MAIN, Author, Snapshot, StateRepo, proposal_ref
from hyperhive_core.approvals.views import (
    ProposalDetail,
    ProposalKind,
    ProposalView,
    ReconcileReport,
    Verdict,
)
from hyperhive_core.broker.models import ProposalRow
from hyperhive_core.errors import (
    HiveError,
    ProposalDecidedError,
    StaleProposalError,
    StateRepoError,
    UnknownProposalError,
)
from hyperhive_core.hive import Hive
from hyperhive_core.states import ProposalState, SyncState

logger = logging.getLogger(__name__)

# Tries of the merge's compare-and-swap when main keeps moving under it.
MERGE_TRIES = 5
MAX_MESSAGE_CHARS = 4000
# On a database several hosts share, a proposal row this young without its commit may be another
# host's, being written: a starting daemon leaves it.
IN_FLIGHT_S = 60.0


def _when(t: float | None) -> datetime | None:
    return datetime.fromtimestamp(t, UTC) if t is not None else None


def proposal_view(row: ProposalRow) -> ProposalView:
    """The wire view of a stored proposal."""
    assert row.id is not None
    return ProposalView(
        id=row.id,
        proposer=row.proposer,
        kind=row.kind,  # pyright: ignore[reportArgumentType]  # stored from a ProposalKind
        agent=row.agent,
        summary=row.summary,
        message=row.message,
        state=ProposalState(row.state),
        reason=row.reason,
        base=row.base,
        commit=row.commit,
        branch=proposal_ref(row.id).removeprefix("refs/heads/"),
        created_at=datetime.fromtimestamp(row.created_at, UTC),
        expires_at=datetime.fromtimestamp(row.expires_at, UTC),
        decided_at=_when(row.decided_at),
        decided_by=row.decided_by,
        merged_rev=row.merged_rev,
    )


def _paths(row: ProposalRow) -> set[str]:
    return {p for p in row.paths.split(",") if p}


def _duration(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:g} days"
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds:g} s"


class Proposals:
    """Proposing, deciding, merging, and telling the proposer."""

    def __init__(
        self, hive: Hive, repo: StateRepo, reader: DesiredReader, records: ApprovalRecords, reconciler: Reconciler
    ) -> None:
        self._hive = hive
        self._repo = repo
        self._reader = reader
        self._records = records
        self._reconciler = reconciler
        self._checked_main: str | None = None
        # Approvals being applied by their own call: the loop's bookkeeping leaves them to it.
        self._in_flight: set[int] = set()

    async def _row(self, proposal_id: int) -> ProposalRow:
        row = await anyio.to_thread.run_sync(self._records.proposal, proposal_id)
        if row is None or row.commit is None:
            raise UnknownProposalError(proposal_id)
        return row

    # proposing

    async def propose(
        self, proposer: str, kind: ProposalKind, build: Callable[[Snapshot], Awaitable[Change]], message: str
    ) -> ProposalView:
        """Write a change on a proposal branch; nothing runs until the operator approves it.

        Raises:
            UnknownAgentError, AgentExistsError, InvalidChangeError, NothingToProposeError: from `build`.
            StateRepoError: git failed.
        """
        message = message.replace("\0", "")[:MAX_MESSAGE_CHARS].strip()
        async with self._repo.lock:
            base = await self._repo.rev()
            if base is None:
                raise StateRepoError("the state repo has no main yet")
            change = await build(await self._repo.snapshot(base))
            now = time.time()
            row = ProposalRow(
                proposer=proposer,
                kind=kind,
                agent=change.agent,
                summary=change.summary,
                message=message,
                base=base,
                paths=",".join(sorted(change.files)),
                created_at=now,
                expires_at=now + self._reconciler.settings.proposal_ttl_s,
            )
            row = await anyio.to_thread.run_sync(self._records.add_proposal, row)
            assert row.id is not None
            body = Change(
                change.agent, change.summary, change.files, "\n\n".join(p for p in (message, change.details) if p)
            )
            trailers = {"Proposal-Id": str(row.id), "Base": base, "Proposed-By": proposer}
            try:
                commit = await self._repo.commit(
                    parent=base,
                    changes=change.files,
                    author=author_of(proposer),
                    message=body.message(trailers),
                    ref=proposal_ref(row.id),
                )
            except BaseException:
                # No commit, no proposal (a daemon killed here has `recover` forget it at start).
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._records.drop_proposal, row.id)
                raise
            stored = await anyio.to_thread.run_sync(
                lambda: self._records.transition(row.id or 0, [ProposalState.PROPOSED], commit=commit)
            )
        assert stored is not None
        self._reconciler.wake_at(stored.expires_at)
        logger.info("%s proposed %s: proposal %d on %s", proposer, change.summary, row.id, commit[:12])
        return proposal_view(stored)

    # looking

    async def find(
        self, *, states: list[ProposalState] | None = None, proposer: str | None = None
    ) -> list[ProposalView]:
        """Proposals, newest first (those whose commit was never written are left out)."""
        rows = await anyio.to_thread.run_sync(lambda: self._records.proposals(states=states, proposer=proposer))
        return [proposal_view(r) for r in rows if r.commit is not None]

    async def show(self, proposal_id: int) -> ProposalDetail:
        """A proposal, its diff, and what approving it now would do.

        Raises:
            UnknownProposalError: no proposal has that id.
        """
        row = await self._row(proposal_id)
        assert row.commit is not None
        diff = await self._repo.diff(row.base, row.commit)
        main = await self._repo.rev()
        assert main is not None
        conflicts = sorted(_paths(row) & await self._repo.changed_paths(row.base, main))
        state = ProposalState(row.state)
        if state.pending and not conflicts:
            files = await self._files_at(row)
            try:
                preview = await self._reader.from_snapshot(await self._repo.snapshot(main), files)
                plan = await self._reconciler.plan(preview)
            except HiveError as exc:
                plan = await self._reconciler.plan()
                plan.error = f"main with this proposal would be refused: {exc}"
        else:
            plan = await self._reconciler.plan()
        return ProposalDetail(proposal=proposal_view(row), diff=diff, plan=plan, conflicts=conflicts)

    async def _files_at(self, row: ProposalRow) -> dict[str, bytes | None]:
        assert row.commit is not None
        snapshot = await self._repo.snapshot(row.commit)
        paths = _paths(row)
        contents = await self._repo.blobs([snapshot.files[p] for p in paths if p in snapshot.files])
        return {p: contents[snapshot.files[p]] if p in snapshot.files else None for p in paths}

    # deciding

    async def _expire_if_due(self, row: ProposalRow) -> None:
        if row.state == ProposalState.PROPOSED and row.expires_at <= time.time():
            await self._finish(
                row, ProposalState.EXPIRED, f"no verdict within {_duration(row.expires_at - row.created_at)}"
            )
            raise ProposalDecidedError(row.id or 0, ProposalState.EXPIRED, None, "it waited too long for a verdict")

    def _decided(self, row: ProposalRow) -> ProposalDecidedError:
        return ProposalDecidedError(row.id or 0, row.state, row.decided_by, row.reason)

    async def deny(self, proposal_id: int, *, by: str, reason: str) -> Verdict:
        """Refuse a proposal; the proposer is told why.

        Raises:
            UnknownProposalError: no proposal has that id.
            ProposalDecidedError: it has a verdict already (or expired).
        """
        row = await self._row(proposal_id)
        await self._expire_if_due(row)
        reason = reason.strip() or "no reason given"
        denied = await anyio.to_thread.run_sync(
            lambda: self._records.transition(
                proposal_id,
                [ProposalState.PROPOSED],
                state=ProposalState.DENIED,
                reason=reason,
                decided_by=by,
                decided_at=time.time(),
            )
        )
        if denied is None:
            raise self._decided(await self._row(proposal_id))
        await self._tell(denied)
        logger.info("proposal %d denied by %s: %s", proposal_id, by, reason)
        return Verdict(proposal=proposal_view(denied))

    async def approve(self, proposal_id: int, *, by: str) -> Verdict:
        """Merge a proposal into main (compare-and-swap) and reconcile; the proposer is told the outcome.

        Raises:
            UnknownProposalError: no proposal has that id.
            ProposalDecidedError: it has a verdict already (or expired).
            StaleProposalError: main changed its files since it was proposed (it is now stale).
        """
        row = await self._row(proposal_id)
        await self._expire_if_due(row)
        self._in_flight.add(proposal_id)
        try:
            claimed = await anyio.to_thread.run_sync(
                lambda: self._records.transition(
                    proposal_id,
                    [ProposalState.PROPOSED],
                    state=ProposalState.APPROVED,
                    decided_by=by,
                    decided_at=time.time(),
                )
            )
            if claimed is None:
                raise self._decided(await self._row(proposal_id))
            merged = await self._merge(claimed)
            self._hive.failpoint("approve-merged")
            cause = f"proposal {proposal_id} approved by {by}"
            assert merged.merged_rev is not None
            report = await self._reconciler.reconcile_commit(merged.merged_rev, cause, agent=claimed.agent)
            finished = await self._settle(merged)
        finally:
            self._in_flight.discard(proposal_id)
        return Verdict(proposal=proposal_view(finished), report=report)

    async def _merge(self, row: ProposalRow) -> ProposalRow:
        """Merge an approved proposal into main; the row, now applying.

        Raises:
            StaleProposalError: main changed one of its files (the row is now stale, the proposer told).
        """
        assert row.id is not None
        assert row.commit is not None
        files = await self._files_at(row)
        async with self._repo.lock:
            for _ in range(MERGE_TRIES):
                main = await self._repo.rev()
                assert main is not None
                if await self._repo.is_ancestor(row.commit, main):
                    merged = main  # merged already: by a daemon that died before it said so, or by hand
                    break
                conflicts = sorted(_paths(row) & await self._repo.changed_paths(row.base, main))
                if conflicts:
                    error = StaleProposalError(row.id, conflicts, row.base, main)
                    await self._finish(row, ProposalState.STALE, str(error), from_states=[ProposalState.APPROVED])
                    raise error
                approver = row.decided_by or "operator"
                message = (
                    f"approve proposal {row.id}: {row.summary}\n\n"
                    f"Proposed by {row.proposer}, approved by {approver}.\n\n"
                    f"Proposal-Id: {row.id}\nApproved-By: {approver}\n"
                )
                commit = await self._repo.commit(
                    parent=main,
                    merge=row.commit,
                    changes=files,
                    author=OPERATOR_AUTHOR if approver == "operator" else Author(approver, "git@hyperhive.invalid"),
                    message=message,
                )
                if await self._repo.move(MAIN, commit, main, reason=f"approve proposal {row.id}"):
                    merged = commit
                    break
                logger.info("main moved during the merge of proposal %d; trying again", row.id)
            else:
                raise StateRepoError(f"main kept moving while proposal {row.id} was merged; approve it again")
        applying = await anyio.to_thread.run_sync(
            lambda: self._records.transition(
                row.id or 0, [ProposalState.APPROVED], state=ProposalState.APPLYING, merged_rev=merged
            )
        )
        return applying or await self._row(row.id)

    async def _settle(self, row: ProposalRow) -> ProposalRow:
        """An applying proposal becomes applied or degraded, from how its agent stands now."""
        assert row.id is not None
        reconciler = self._reconciler
        if reconciler.refusal is not None:
            return await self._finish(row, ProposalState.DEGRADED, reconciler.refusal)
        if row.kind == "kill":
            if row.agent not in reconciler.tracked:
                return await self._finish(row, ProposalState.APPLIED, f"{row.agent} is stopped and removed")
            state = reconciler.state(row.agent)
            detail = state.reason if state is not None else "it still runs"
            return await self._finish(row, ProposalState.DEGRADED, f"{row.agent} was not removed: {detail}")
        status = await self._hive.backend.status(row.agent)
        sync = reconciler.sync_of(row.agent, status)
        if sync.sync == SyncState.READY:
            notes = f" (not applied by this daemon yet: {', '.join(sync.not_applied)})" if sync.not_applied else ""
            return await self._finish(row, ProposalState.APPLIED, f"{row.agent} is Ready{notes}")
        return await self._finish(row, ProposalState.DEGRADED, f"{row.agent} is {sync.sync}: {sync.reason}")

    async def _finish(
        self,
        row: ProposalRow,
        state: ProposalState,
        reason: str,
        *,
        from_states: list[ProposalState] | None = None,
    ) -> ProposalRow:
        assert row.id is not None
        sources = from_states
        if sources is None:
            settled = state in (ProposalState.APPLIED, ProposalState.DEGRADED)
            sources = [ProposalState.APPLYING] if settled else [ProposalState.PROPOSED]
        changes: dict[str, object] = {"state": state, "reason": reason}
        if row.decided_at is None:
            changes |= {"decided_at": time.time(), "decided_by": row.decided_by}
        done = await anyio.to_thread.run_sync(lambda: self._records.transition(row.id or 0, sources, **changes))
        if done is None:
            return await self._row(row.id)
        await self._tell(done)
        logger.info("proposal %d (%s): %s: %s", row.id, row.summary, state, reason)
        return done

    async def _tell(self, row: ProposalRow) -> None:
        """The proposer hears the outcome from `operator`, once per state."""
        assert row.id is not None
        state = ProposalState(row.state)
        head = f"proposal {row.id} ({row.summary})"
        by = row.decided_by or "the operator"
        texts = {
            ProposalState.APPLIED: f"{head}: approved by {by} and applied; {row.reason}.",
            ProposalState.DEGRADED: f"{head}: approved by {by}, but applying it failed: {row.reason}.",
            ProposalState.DENIED: f"{head}: denied by {by}: {row.reason}",
            ProposalState.STALE: f"{head}: not applied: {row.reason}",
            ProposalState.EXPIRED: f"{head}: expired ({row.reason}); propose it again if it is still needed.",
        }
        text = texts.get(state)
        if text is None or row.notified == state:
            return
        try:
            await self._hive.notify(row.proposer, text, key=f"proposal-{row.id}-{state}")
        except HiveError:
            logger.exception("could not tell %s the outcome of proposal %d", row.proposer, row.id)
            return
        await anyio.to_thread.run_sync(lambda: self._records.transition(row.id or 0, [state], notified=state))

    # bookkeeping: after each pass of the reconciler's loop, and at start

    async def tick(self, now: float) -> float | None:
        """Expire what is due, take in proposals main merged or made stale, finish what was applied;
        when the next proposal expires."""
        open_states = [ProposalState.PROPOSED, ProposalState.APPROVED, ProposalState.APPLYING]
        pending = await anyio.to_thread.run_sync(lambda: self._records.proposals(states=open_states))
        main = await self._repo.rev()
        if main is not None and main != self._checked_main:
            await self._follow_main(main, [r for r in pending if r.state == ProposalState.PROPOSED])
            self._checked_main = main
            pending = await anyio.to_thread.run_sync(lambda: self._records.proposals(states=open_states))
        next_due: float | None = None
        applied_main = self._reconciler.applied_main
        for row in pending:
            if row.id in self._in_flight:
                continue
            if row.state == ProposalState.APPROVED:
                # An approval whose merge failed (git, or main moving all along): merged again now.
                try:
                    await self._merge(row)
                    self._reconciler.kick(f"proposal {row.id} merged")
                except StaleProposalError:
                    pass  # marked stale, and the proposer told, by the merge itself
                except HiveError:
                    logger.exception("proposal %d is approved but could not be merged yet", row.id)
            elif row.state == ProposalState.APPLYING:
                # Settled only once a pass applied a main that holds it (not one read before the merge).
                if applied_main is not None and row.commit is not None:
                    if await self._repo.is_ancestor(row.commit, applied_main):
                        await self._settle(row)
            elif row.commit is None:
                continue
            elif row.expires_at <= now:
                await self._finish(
                    row, ProposalState.EXPIRED, f"no verdict within {_duration(row.expires_at - row.created_at)}"
                )
            else:
                next_due = row.expires_at if next_due is None else min(next_due, row.expires_at)
        return next_due

    async def _follow_main(self, main: str, pending: list[ProposalRow]) -> None:
        merged = await self._repo.merged_proposals()
        changed: dict[str, set[str]] = {}
        for row in pending:
            proposal_id = row.id
            assert proposal_id is not None
            if row.commit is None:
                continue
            if proposal_id in merged:
                # Merged with plain git: approved by whoever pushed it; the pass before this applied it.
                taken = await anyio.to_thread.run_sync(
                    functools.partial(
                        self._records.transition,
                        proposal_id,
                        [ProposalState.PROPOSED],
                        state=ProposalState.APPLYING,
                        decided_by="git",
                        decided_at=time.time(),
                        merged_rev=main,
                    )
                )
                if taken is not None:
                    logger.info("proposal %d was merged into main with git", row.id)
                continue
            if row.base not in changed:
                changed[row.base] = await self._repo.changed_paths(row.base, main)
            if conflicts := sorted(_paths(row) & changed[row.base]):
                error = StaleProposalError(proposal_id, conflicts, row.base, main)
                await self._finish(row, ProposalState.STALE, str(error))

    async def recover(self) -> ReconcileReport | None:
        """At start: forget proposals never written, finish merges a dead daemon began, settle the rest."""
        rows = await anyio.to_thread.run_sync(
            lambda: self._records.proposals(states=[ProposalState.PROPOSED, ProposalState.APPROVED])
        )
        report: ReconcileReport | None = None
        shared = self._hive.config.database is not None
        for row in rows:
            assert row.id is not None
            if row.commit is None:
                if shared and row.created_at > time.time() - IN_FLIGHT_S:
                    continue  # maybe another host's, being written now: a later start forgets it if it stays
                await anyio.to_thread.run_sync(self._records.drop_proposal, row.id)
                logger.warning("forgot proposal %d: the daemon stopped before its commit was written", row.id)
            elif row.state == ProposalState.APPROVED:
                try:
                    await self._merge(row)
                except StaleProposalError:
                    continue
                report = await self._reconciler.reconcile(f"proposal {row.id} approved before a restart")
        await self.tick(time.time())
        # Outcomes decided but never told (the daemon died in between).
        for row in await anyio.to_thread.run_sync(lambda: self._records.proposals(states=list(TOLD))):
            if row.notified != row.state:
                await self._tell(row)
        return report


TOLD = (
    ProposalState.APPLIED,
    ProposalState.DEGRADED,
    ProposalState.DENIED,
    ProposalState.STALE,
    ProposalState.EXPIRED,
)

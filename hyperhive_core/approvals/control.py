"""Every lifecycle verb of the hive, for the toolsets: the operator's commit to main, the manager's propose.

The operator's `spawn`, `kill`, `rebuild` (with new settings) and `rollback` commit to main as
`operator` and then reconcile the agent they touch (a full pass follows in the background); a
`rebuild` without new settings is the reconcile verb itself and commits nothing. The manager's
`spawn`, `kill`, `rebuild` and `propose` become proposals. At start, `bootstrap` creates the
state repo, migrates the agents an older release kept in SQLite (once), and reconciles.
"""

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from hyperhive_core.approvals import changes
from hyperhive_core.approvals.agentfile import (
    HIVE_FILE,
    AgentFile,
    Driver,
    HiveSettings,
    agent_path,
    render_agent,
    render_settings,
)
from hyperhive_core.approvals.changes import DAEMON_AUTHOR, AgentEdit, Change, author_of
from hyperhive_core.approvals.desired import DesiredReader
from hyperhive_core.approvals.proposals import Proposals
from hyperhive_core.approvals.reconciler import Reconciler
from hyperhive_core.approvals.records import ApprovalRecords
from hyperhive_core.approvals.repo import MAIN, Snapshot, StateRepo
from hyperhive_core.approvals.views import CommitReceipt, ProposalKind, ProposalView, ReconcileReport
from hyperhive_core.errors import (
    ApprovalError,
    BackendError,
    HiveError,
    NotPermittedError,
    PlacementError,
    StateRepoError,
)
from hyperhive_core.hive import Hive
from hyperhive_core.lifecycle.base import ExtraMount
from hyperhive_core.lifecycle.workspace import check_extra_dirs, check_repo
from hyperhive_core.mcp.models import AgentInfo, HistoryEntry, HiveStatus
from hyperhive_core.names import MANAGER, OPERATOR, validate_agent_name
from hyperhive_core.states import ProposalState, SyncState

logger = logging.getLogger(__name__)

# Tries of a commit's compare-and-swap on main when someone else keeps moving it.
COMMIT_TRIES = 5
HISTORY_ROWS = 10
README_FILE = "README.md"
README = """\
# The desired hive

This repository is what hyperhive runs: `main` is the hive the operator approved.

- `agents/<name>.toml`: one agent each (role, driver, sandbox, claude settings, ...).
- `hive.toml`: hive-wide settings (prune, proposal expiry, timeouts, restart backoff).
- `proposals/<id>` branches: changes the manager proposed; `hivectl approve ID` merges one.

Change `main` with `hivectl` or with plain git (commit, merge a proposal branch, revert, push):
the daemon notices and reconciles the running hive to it. `git log` is the audit trail.
See hyperhive's README, section "Approvals", for every field.
"""


class HiveControl:
    """The lifecycle verbs, over the state repo, the reconciler and the proposals."""

    def __init__(
        self,
        hive: Hive,
        repo: StateRepo,
        reader: DesiredReader,
        records: ApprovalRecords,
        reconciler: Reconciler,
        proposals: Proposals,
    ) -> None:
        self.hive = hive
        self.repo = repo
        self.reader = reader
        self.records = records
        self.reconciler = reconciler
        self.proposals = proposals

    # start

    async def bootstrap(self) -> ReconcileReport:
        """Create the state repo (migrating an older hive into it, once), then reconcile to main.

        Raises:
            StateRepoError: git is missing or failed.
            StorageError: the database refused.
        """
        await self.repo.ensure()
        if self.reconciler.mirror is not None:
            await self.reconciler.mirror.start()
        if await self.repo.rev() is None:
            await self._first_main()
        # The desired hive lives in the repo from now on; an older release's rows go, once migrated.
        store = self.hive.broker.store
        for row in await anyio.to_thread.run_sync(store.agents):
            await anyio.to_thread.run_sync(store.delete_agent, row.name)
        await self.reconciler.load()
        if self.hive.config.start_manager:
            main = await self.repo.rev()
            assert main is not None
            snapshot = await self.repo.snapshot(main)
            if agent_path(MANAGER) not in snapshot.files:
                await self._commit(
                    lambda s: _built(changes.spawn(s, MANAGER, AgentFile(host=self.placement_for(None)))),
                    by="hivectl serve --manager",
                )
        report = await self.reconciler.reconcile("daemon start")
        await self.proposals.recover()
        return report

    async def _first_main(self) -> None:
        rows = await anyio.to_thread.run_sync(self.hive.broker.store.agents)
        files: dict[str, bytes | None] = {
            HIVE_FILE: render_settings(HiveSettings()).encode(),
            README_FILE: README.encode(),
        }
        adopted: list[tuple[str, AgentFile]] = []
        for row in rows:
            file = AgentFile.model_validate(
                {
                    "role": row.role,
                    "driver": row.driver,
                    "limits": {"memory_mb": row.memory_mb, "pids": row.pids, "cpus": row.cpus},
                }
            )
            files[agent_path(row.name)] = render_agent(row.name, file).encode()
            adopted.append((row.name, file))
        if adopted:
            summary = f"migrate {len(adopted)} agents from the hive database"
            details = "Agents of an earlier hyperhive, kept in SQLite: " + ", ".join(n for n, _ in adopted)
        else:
            summary, details = "a new hive", ""
        message = Change("", summary, files, details).message({"Requested-By": "hyperhive"})
        commit = await self.repo.commit(parent=None, changes=files, author=DAEMON_AUTHOR, message=message)
        # They already run as these files say: adopted, not rebuilt (a nixos host updates nothing).
        for name, file in adopted:
            await anyio.to_thread.run_sync(self.records.put_state, self.reconciler.adopt(name, file, commit))
        if await self.repo.move(MAIN, commit, None, reason=summary):
            logger.info("state repo %s: %s", self.repo.path, summary)

    # the operator: commit to main, then reconcile

    async def _commit(self, build: Callable[[Snapshot], Awaitable[Change]], *, by: str) -> tuple[str, Change]:
        """Commit a change on main (compare-and-swap, tried again when main moved); the commit and the change."""
        for _ in range(COMMIT_TRIES):
            async with self.repo.lock:
                base = await self.repo.rev()
                if base is None:
                    raise StateRepoError("the state repo has no main yet")
                change = await build(await self.repo.snapshot(base))
                commit = await self.repo.commit(
                    parent=base,
                    changes=change.files,
                    author=author_of(by if by in (OPERATOR, MANAGER) else OPERATOR),
                    message=change.message({"Requested-By": by}),
                )
                if await self.repo.move(MAIN, commit, base, reason=change.summary):
                    logger.info("%s committed %s to main as %s", by, change.summary, commit[:12])
                    return commit, change
            logger.info("main moved while %s was committed; trying again", change.summary)
        raise StateRepoError("main kept moving while a change was committed to it; try again")

    async def _applied(self, rev: str, change: Change, *, by: str) -> ReconcileReport:
        """Reconcile the agent a commit changed; the rest of the hive follows in the background.

        Raises:
            HiveError: the reconcile could not run (the database refused its journal); the commit
                stays on main and the daemon's loop tries again.
        """
        cause = f"{by}: {change.summary} ({rev[:12]})"
        return await self._reconciled(rev, change, self.reconciler.reconcile_commit(rev, cause, agent=change.agent))

    async def _reconciled(self, rev: str, change: Change, reconcile: Awaitable[ReconcileReport]) -> ReconcileReport:
        """The report of `reconcile`, run for a change committed as `rev`; a failure leaves it to the loop.

        Raises:
            ApprovalError: the reconcile could not run; the commit stays on main and the loop tries again.
        """
        try:
            return await reconcile
        except HiveError as exc:
            self.reconciler.kick(f"main moved to {rev[:12]}")
            raise ApprovalError(
                f"{change.summary} is committed to main ({rev[:12]}), but reconciling it failed: {exc}; "
                "the daemon tries again by itself (`hivectl plan` shows what is left)"
            ) from exc

    def _check(self, report: ReconcileReport, rev: str, change: Change) -> None:
        """Raise when the reconcile after a commit left the agent failing: the commit stays on main."""
        if report.error is not None:
            raise ApprovalError(f"committed {change.summary} to main ({rev[:12]}), but main is refused: {report.error}")
        for step in report.steps:
            if step.agent == change.agent and not step.ok:
                raise BackendError(
                    f"{step.detail} ({change.summary} is committed to main as {rev[:12]} and stays there; the "
                    f"reconciler retries it with backoff: fix the cause, or `hivectl kill {change.agent}`)"
                )

    async def spawn(
        self,
        name: str,
        *,
        role: str = "",
        driver: Driver = "auto",
        limits: Mapping[str, int | float | None] | None = None,
        claude: Mapping[str, Any] | None = None,
        sandbox: Mapping[str, Any] | None = None,
        host: str | None = None,
        by: str = OPERATOR,
    ) -> AgentInfo:
        """Add an agent to main and start it (`spawn_manager` for hm1nd); settings left out are the defaults.

        `host` places it (on a shared hive, left out: this daemon's host; the daemon of that host runs it).

        `claude` and `sandbox` are sections of its agent file (`{"tools": [...]}`, `{"repo": "/src/app"}`);
        `limits` left out are the daemon's.

        Raises:
            InvalidAgentNameError: the name breaks the naming rules (or is reserved).
            AgentExistsError: main has an agent of that name.
            InvalidChangeError: a setting breaks the agent file's rules.
            WorkspaceError: its repository or an extra dir cannot be used (nothing is committed).
            BackendError: it is on main but did not start (it is retried with backoff).
        """
        validate_agent_name(name)
        return await self._spawn(
            name, role=role, driver=driver, limits=limits, claude=claude, sandbox=sandbox, host=host, by=by
        )

    async def spawn_manager(self, *, role: str = "", driver: Driver = "auto", by: str = OPERATOR) -> AgentInfo:
        """Add the manager, hm1nd, to main and start it.

        Raises:
            AgentExistsError: main has the manager already.
            BackendError: it is on main but did not start.
        """
        return await self._spawn(MANAGER, role=role, driver=driver, by=by)

    async def _spawn(
        self,
        name: str,
        *,
        role: str,
        driver: Driver,
        by: str,
        limits: Mapping[str, int | float | None] | None = None,
        claude: Mapping[str, Any] | None = None,
        sandbox: Mapping[str, Any] | None = None,
        host: str | None = None,
    ) -> AgentInfo:
        wanted = {k: v for k, v in (limits or {}).items() if v is not None}
        edit = AgentEdit(
            role=role,
            driver=driver,
            host=self.placement_for(host),
            limits=wanted or None,
            claude={k: v for k, v in (claude or {}).items() if v is not None} or None,
            sandbox={k: v for k, v in (sandbox or {}).items() if v is not None} or None,
        )
        file = changes.edited(name, AgentFile(), edit)
        if self.reconciler.host_of(file) == self.reconciler.here:
            await self.check_workspace(name, file)  # another host's paths are its daemon's to check
        rev, change = await self._commit(lambda s: _built(changes.spawn(s, name, file)), by=by)
        self._check(await self._applied(rev, change, by=by), rev, change)
        return await self.hive.status(name)

    def placement_for(self, host: str | None) -> str | None:
        """The host a new agent's file names: the one asked for, else (on a shared hive) this daemon's."""
        if host is not None:
            return host
        return self.hive.config.host_name if self.reconciler.shared else None

    async def check_host(self, host: str, *, force: bool) -> None:
        """Refuse to place agents on a host that is down or was never seen, unless `force`.

        Raises:
            PlacementError: the host is down or unknown (the error says how to go on).
        """
        if force or host == self.hive.config.host_name:
            return
        directory = self.hive.directory
        known = await directory.hosts() if directory is not None else {}
        if host not in known:
            seen = ", ".join(sorted(known)) or "none but this one"
            raise PlacementError(
                f"host {host!r} has never run a daemon of this hive (hosts seen: {seen}); check the name, start "
                f"`hivectl serve` there first, or add --force to place the agents anyway (they wait for it)"
            )
        if not known[host]:
            raise PlacementError(
                f"host {host!r} is down (its daemon stopped heart-beating); choose a live host, or add --force "
                "to place the agents there anyway (they run when it is back)"
            )

    async def place(self, name: str, host: str, *, force: bool = False, by: str = OPERATOR) -> CommitReceipt:
        """Commit agent `name` placed on `host`; the host it leaves stops it, `host`'s daemon runs it.

        Raises:
            PlacementError: `host` is down or unknown (without `force`).
            UnknownAgentError: main has no such agent.
            NothingToProposeError: it is placed there already.
        """
        await self.check_host(host, force=force)
        rev, change = await self._commit(lambda s: changes.place(self.repo, s, name, host), by=by)
        report = await self._applied(rev, change, by=by)
        return CommitReceipt(rev=rev, summary=change.summary, report=report)

    async def drain(
        self, host: str, *, to: str | None = None, force: bool = False, by: str = OPERATOR
    ) -> CommitReceipt:
        """Commit, in one change, every agent placed on `host` placed on `to` (default: this daemon's host).

        Raises:
            PlacementError: `to` is `host`, or down or unknown (without `force`); nothing is placed on `host`.
        """
        target = to or self.hive.config.host_name
        if target == host:
            raise PlacementError(f"cannot drain {host!r} onto itself; name another host with --to")
        await self.check_host(target, force=force)
        rev, change = await self._commit(lambda s: changes.drain(self.repo, s, host, target), by=by)
        report = await self._reconciled(rev, change, self.reconciler.reconcile(f"{by}: {change.summary} ({rev[:12]})"))
        return CommitReceipt(rev=rev, summary=change.summary, report=report)

    async def check_workspace(self, name: str, file: AgentFile) -> None:
        """Refuse, before anything is committed, a repository or extra dir this host cannot give the agent.

        Raises:
            WorkspaceError: which path, and why.
        """
        config = self.hive.config
        mounts = [ExtraMount(Path(d.path), d.mode == "rw") for d in file.sandbox.extra_dirs]
        await anyio.to_thread.run_sync(check_extra_dirs, name, mounts, (config.state_dir, config.run_dir))
        if file.sandbox.repo is not None:
            await anyio.to_thread.run_sync(check_repo, name, Path(file.sandbox.repo))

    async def kill(self, name: str, *, by: str = OPERATOR) -> None:
        """Remove an agent from main and stop it.

        Raises:
            UnknownAgentError: main has no such agent.
            BackendError: it is off main but did not stop.
        """
        rev, change = await self._commit(lambda s: _built(changes.kill(s, name)), by=by)
        self._check(await self._applied(rev, change, by=by), rev, change)

    async def rebuild(self, name: str, edit: AgentEdit | None = None, *, by: str = OPERATOR) -> AgentInfo:
        """Rebuild an agent: with `edit`, commit its new settings first; without, just rebuild it.

        Raises:
            UnknownAgentError: no such agent.
            NotPermittedError: it is suspended.
            InvalidChangeError, NothingToProposeError: a bad or empty edit.
            BackendError: it did not start again.
        """
        if name in self.hive.elsewhere and name not in self.hive.agent_names:
            if edit is None or not edit.fields():
                host = self.hive.elsewhere[name]
                where = f"host {host}" if host is not None else "no host"
                raise PlacementError(
                    f"{name} is placed on {where}, not on this one: rebuild it there (`hivectl rebuild {name}` on "
                    f"its host), or change its settings from here (a commit its host applies)"
                )
            rev, change = await self._commit(lambda s: changes.edit(self.repo, s, name, edit, verb="rebuild"), by=by)
            self._check(await self._applied(rev, change, by=by), rev, change)
            return await self.hive.status(name)
        self.hive.settings_of(name)
        state = self.reconciler.state(name)
        if state is not None and state.suspended:
            raise NotPermittedError(by, f"rebuild {name}", f"it is suspended; `hivectl resume {name}` first")
        if edit is not None and edit.fields():
            rev, change = await self._commit(lambda s: changes.edit(self.repo, s, name, edit, verb="rebuild"), by=by)
            self._check(await self._applied(rev, change, by=by), rev, change)
        else:
            report = await self.reconciler.reconcile(f"{by}: rebuild {name}", only={name}, rebuild={name})
            for step in report.steps:
                if not step.ok:
                    raise BackendError(step.detail)
            if report.error is not None:
                raise ApprovalError(report.error)
        return await self.hive.status(name)

    async def rollback(self, name: str, rev: str, *, by: str = OPERATOR) -> CommitReceipt:
        """Commit agent `name`'s file as it was at `rev`, and reconcile it.

        Raises:
            UnknownRevisionError: `rev` names no commit.
            UnknownAgentError, NothingToProposeError: nothing to roll back.
        """
        target = await self.repo.resolve(rev)
        commit, change = await self._commit(lambda s: changes.rollback(self.repo, s, name, target), by=by)
        report = await self._applied(commit, change, by=by)
        return CommitReceipt(rev=commit, summary=change.summary, report=report)

    async def reconcile(self, name: str | None, *, by: str = OPERATOR) -> ReconcileReport:
        """Bring the hive (or one agent) to main now, without waiting for a restart's backoff.

        Raises:
            UnknownAgentError: no such agent.
        """
        if name is None:
            return await self.reconciler.reconcile(f"{by}: reconcile", retry=self.reconciler.tracked)
        self.hive.settings_of(name)
        return await self.reconciler.reconcile(f"{by}: reconcile {name}", only={name}, retry={name})

    async def describe_hive(self, status: HiveStatus) -> None:
        """Add the desired hive to the hive's status: main, pending proposals, and what needs the eye."""
        reconciler = self.reconciler
        status.main = reconciler.main
        status.state_repo = str(self.repo.path)
        pending = await self.proposals.find(states=[ProposalState.PROPOSED])
        status.pending_proposals = len(pending)
        if reconciler.refusal is not None:
            status.warnings.append(reconciler.refusal)
        if reconciler.mirror is not None and (stale := reconciler.mirror.staleness) is not None:
            status.warnings.append(stale)
        unplaced = sorted(name for name, host in self.hive.elsewhere.items() if host is None)
        if unplaced:
            status.warnings.append(
                f"placed on no host, so run by nobody: {', '.join(unplaced)} "
                f'(add host = "…" to their files, or `hivectl place NAME HOST`)'
            )
        failing = [
            name
            for name in sorted(reconciler.tracked)
            if (state := reconciler.state(name)) is not None and state.state == SyncState.FAILED
        ]
        if failing:
            status.warnings.append(f"failing against main: {', '.join(failing)} (hivectl status NAME says why)")
        if pending:
            status.warnings.append(f"{len(pending)} proposals wait for a verdict (hivectl approvals)")

    async def history(self, name: str) -> list[HistoryEntry]:
        """Agent `name`'s latest reconcile steps, oldest first."""
        rows = await anyio.to_thread.run_sync(self.records.history, name, HISTORY_ROWS)
        return [
            HistoryEntry(
                at=datetime.fromtimestamp(r.started_at, UTC),
                step=r.step,
                cause=r.cause,
                state=r.state,
                detail=r.detail,
                rev=r.rev,
            )
            for r in rows
        ]

    # the manager: propose

    async def propose(
        self, kind: ProposalKind, name: str, *, message: str, edit: AgentEdit | None = None, by: str = MANAGER
    ) -> ProposalView:
        """A proposal to spawn, kill, rebuild or edit agent `name`; nothing runs until it is approved.

        Raises:
            InvalidAgentNameError, AgentExistsError, UnknownAgentError: the agent cannot take it.
            InvalidChangeError, NothingToProposeError: a bad or empty edit.
        """
        if kind == "spawn":
            validate_agent_name(name)
            wanted = edit or AgentEdit()
            if wanted.host is None and (placed := self.placement_for(None)) is not None:
                wanted = wanted.model_copy(update={"host": placed})
            file = changes.edited(name, AgentFile(), wanted)
            if self.reconciler.host_of(file) == self.reconciler.here:
                await self.check_workspace(name, file)

            async def build(snapshot: Snapshot) -> Change:
                return changes.spawn(snapshot, name, file)

        elif kind == "kill":

            async def build(snapshot: Snapshot) -> Change:
                return changes.kill(snapshot, name)

        elif kind == "rebuild":

            async def build(snapshot: Snapshot) -> Change:
                return await changes.rebuild(self.repo, snapshot, name)

        else:
            wanted = edit or AgentEdit()

            async def build(snapshot: Snapshot) -> Change:
                return await changes.edit(self.repo, snapshot, name, wanted)

        return await self.proposals.propose(by, kind, build, message)


async def _built(change: Change) -> Change:
    return change

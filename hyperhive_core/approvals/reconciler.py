"""The reconciler: the one place the hive's lifecycle happens. It brings the running hive to main.

It runs at start, after every change of main (the daemon's own commits, and any other: a push, a
merge or a revert with plain git, seen by a one-second poll of main's ref files), when an agent
exits, when a restart's backoff is over, and on demand. Each step is journaled in SQLite before
it acts and every step is idempotent (create makes what is missing, start leaves a running agent
running, stop a stopped one stopped), so a daemon killed half-way finishes the job at its next
start. Every step has a timeout. An agent whose settings did not change is never rebuilt: its
state keeps the hash of the settings it runs with.
"""

import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Protocol, runtime_checkable

import anyio
from anyio.abc import TaskGroup, TaskStatus

from hyperhive_core.approvals.agentfile import AgentFile, HiveSettings, config_hash, not_applied
from hyperhive_core.approvals.desired import DesiredHive, DesiredReader
from hyperhive_core.approvals.managed_settings import managed_settings
from hyperhive_core.approvals.mirror import DesiredMirror
from hyperhive_core.approvals.placing import host_of, unplaced_reason
from hyperhive_core.approvals.plan import Step, plan_agent
from hyperhive_core.approvals.records import ApprovalRecords
from hyperhive_core.approvals.repo import StateRepo
from hyperhive_core.approvals.views import PlanStep, PlanView, ReconcileReport, StepOutcome
from hyperhive_core.broker.models import AgentStateRow
from hyperhive_core.errors import BackendError, HiveError, UnknownAgentError
from hyperhive_core.hive import AgentSync, Hive
from hyperhive_core.lifecycle.base import AgentSpec, AgentStatus, ExtraMount, Limits
from hyperhive_core.lifecycle.nixos import NixosBackend, container_name
from hyperhive_core.names import MANAGER
from hyperhive_core.states import AgentState, SyncState

logger = logging.getLogger(__name__)

# An agent that ran this long before it died starts its restart backoff afresh.
STABLE_S = 60.0
# Steps of the daemon's own bring-up and removal.
BRING_UP = frozenset({"create", "start", "restart", "rebuild"})
TEAR_DOWN = frozenset({"remove", "prune"})
# How long a removed agent's branch may take to reach its repository.
PUBLISH_WAIT_S = 30.0


@runtime_checkable
class ExitWatching(Protocol):
    """A backend that can tell when an agent's process ends (the local one)."""

    async def wait_exit(self, name: str) -> int | None:
        """Wait until the agent's process exits."""
        ...


class Ticker(Protocol):
    """Work the reconciler's loop does after each pass (the proposals' expiry and bookkeeping)."""

    async def tick(self, now: float) -> float | None:
        """Do what is due; when the next thing will be due (None: nothing scheduled)."""
        ...


def restart_delay(failures: int, settings: HiveSettings, *, died: bool) -> float:
    """How long to wait before the next attempt: a first death restarts at once, then the wait doubles."""
    exponent = failures - 2 if died else failures - 1
    if exponent < 0:
        return 0.0
    return min(settings.restart_backoff_s * 2**exponent, settings.restart_backoff_max_s)


class Reconciler:
    """Applies main to the running hive, agent by agent, and keeps each agent's state."""

    def __init__(
        self,
        hive: Hive,
        repo: StateRepo,
        reader: DesiredReader,
        records: ApprovalRecords,
        *,
        task_group: TaskGroup,
        open_socket: Callable[[str], Awaitable[None]],
        close_socket: Callable[[str], Awaitable[None]],
        socket_open: Callable[[str], bool],
    ) -> None:
        self.hive = hive
        self.repo = repo
        self.reader = reader
        self.records = records
        self.ticker: Ticker | None = None
        # The desired remote's mirror, on a hive whose desired state is shared (it says how fresh main is).
        self.mirror: DesiredMirror | None = None
        self.desired: DesiredHive | None = None
        # Why main cannot be applied now (a bad file), with its revision; None when it can.
        self.refusal: str | None = None
        self.main: str | None = None
        # The main the last full pass brought every agent to.
        self.applied_main: str | None = None
        self._tg = task_group
        self._open_socket = open_socket
        self._close_socket = close_socket
        self._socket_open = socket_open
        self._states: dict[str, AgentStateRow] = {}
        self._lock = anyio.Lock()
        self._kick = anyio.Event()
        self._causes: list[str] = []
        self._started_at: dict[str, float] = {}
        self._busy: dict[str, str] = {}
        self._ticker_due: float | None = None
        self._closed = False

    @property
    def settings(self) -> HiveSettings:
        """The hive-wide settings of the last main that could be applied."""
        return self.desired.settings if self.desired is not None else HiveSettings()

    @property
    def here(self) -> str:
        """This daemon's host."""
        return self.hive.config.host_name

    @property
    def shared(self) -> bool:
        """Whether every host reads this main (a desired remote): a file without `host` runs nowhere."""
        return self.hive.config.desired_remote is not None

    def host_of(self, file: AgentFile) -> str | None:
        """The host an agent file places its agent on (None: no host)."""
        return host_of(file, here=self.here, shared=self.shared)

    def _local(self, desired: DesiredHive) -> dict[str, AgentFile]:
        """Main's agents placed on this host: the only ones this daemon runs."""
        return {name: file for name, file in desired.agents.items() if self.host_of(file) == self.here}

    def _owns(self, name: str, row: AgentStateRow, desired: DesiredHive | None) -> bool:
        """Whether a reconcile state row is this daemon's. On a database several hosts share, the row of
        an agent placed elsewhere is its host's (this daemon never acts on it, nor deletes it)."""
        if self.hive.config.database is None:
            return True  # one host, one database: every row is this daemon's
        file = desired.agents.get(name) if desired is not None else None
        if file is not None:
            return self.host_of(file) == self.here
        # Off main: the host that applied it last removes it.
        return _applied_file(row).host == self.here

    @property
    def tracked(self) -> Collection[str]:
        """Every agent the reconciler has brought up (or tried to) and not removed."""
        return self._states.keys()

    def state(self, name: str) -> AgentStateRow | None:
        """What the reconciler last did to agent `name`."""
        return self._states.get(name)

    async def load(self) -> None:
        """Read the agents' states; mark the steps a dead daemon left half-done as interrupted."""
        rows = await anyio.to_thread.run_sync(self.records.states)
        desired = await self.read_main()
        self._states = {name: row for name, row in rows.items() if self._owns(name, row, desired)}
        mine = set(self._states) | set(self._local(desired) if desired is not None else ())
        for row in await anyio.to_thread.run_sync(self.records.interrupt_open, mine):
            logger.warning(
                "the last daemon stopped during %s of %s (main %s); this start finishes it",
                row.step,
                row.agent,
                row.rev[:12],
            )

    async def _event(self, name: str, subtype: str, message: str) -> None:
        """Tell the agent's event log (`hivectl logs NAME`) what went wrong with it, and its restarts."""
        try:
            await self.hive.events.append(name, [{"type": "hive", "subtype": subtype, "message": message}])
        except HiveError:
            logger.warning("could not log %s of %s", subtype, name, exc_info=True)

    def close(self) -> None:
        """Start nothing from now on: the daemon is stopping its agents."""
        self._closed = True
        self._kick.set()

    def kick(self, cause: str) -> None:
        """Ask the loop for a pass soon."""
        self._causes.append(cause)
        self._kick.set()

    def wake_at(self, when: float) -> None:
        """Have the loop's bookkeeping (the ticker) run by `when` (a new proposal's expiry)."""
        if self._ticker_due is None or when < self._ticker_due:
            self._ticker_due = when
            self._kick.set()

    # the loop

    async def serve(self, *, health_interval_s: float, watch_interval_s: float, task_status: TaskStatus[None]) -> None:
        """Reconcile whenever something changed, and every `health_interval_s` anyway, until cancelled."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_main, watch_interval_s)
            task_status.started()
            failed_at: float | None = None
            while not self._closed:
                now = time.time()
                due = [now + health_interval_s, *(s.retry_at for s in self._states.values() if s.retry_at)]
                if self._ticker_due is not None:
                    due.append(self._ticker_due)
                if failed_at is not None:
                    # A pass that could not run (a locked database, a git failure) is tried again soon.
                    due.append(failed_at + self.settings.restart_backoff_s)
                with anyio.move_on_after(max(0.0, min(due) - now)):
                    await self._kick.wait()
                self._kick = anyio.Event()
                causes, self._causes = self._causes, []
                try:
                    await self.reconcile("; ".join(dict.fromkeys(causes)) or "periodic check")
                    failed_at = None
                except HiveError:
                    logger.exception("reconcile failed; trying again shortly")
                    failed_at = time.time()
                if self.ticker is not None:
                    try:
                        self._ticker_due = await self.ticker.tick(time.time())
                    except HiveError:
                        logger.exception("the proposals' bookkeeping failed")
            tg.cancel_scope.cancel()

    async def _watch_main(self, interval_s: float) -> None:
        """Notice main moving under the daemon (a push, a merge, a revert): a stat of its ref files a tick."""
        signature = await self.repo.ref_signature()
        while True:
            await anyio.sleep(interval_s)
            now = await self.repo.ref_signature()
            if now == signature:
                continue
            signature = now
            try:
                rev = await self.repo.rev()
            except HiveError:
                logger.exception("cannot read main")
                continue
            if rev != self.main:
                self.kick(f"main moved to {(rev or 'nothing')[:12]}")

    def _watch_exit(self, name: str) -> None:
        backend = self.hive.backend
        if not isinstance(backend, ExitWatching):
            return  # the periodic pass notices it

        async def watch() -> None:
            await backend.wait_exit(name)
            self.kick(f"{name} exited")

        self._tg.start_soon(watch)

    # passes

    async def reconcile(
        self,
        cause: str,
        *,
        only: Collection[str] | None = None,
        rebuild: Collection[str] = (),
        retry: Collection[str] = (),
    ) -> ReconcileReport:
        """Bring the agents (`only` these, if given) to main; `rebuild` those even when in sync, and
        `retry` those without waiting for their restart backoff.

        Raises:
            StateRepoError: git failed (nothing was changed).
            StorageError: the database refused the journal.
        """
        async with self._lock:
            return await self._pass(cause, only, rebuild, retry)

    async def reconcile_commit(self, rev: str, cause: str, *, agent: str) -> ReconcileReport:
        """Reconcile the one agent a commit of ours changed (an operator's change, an approval's merge).
        When the commit's first parent was applied to every agent, so is the commit once this agent
        is: no full pass is needed. Otherwise (main had moved by other hands) the loop runs one.

        Raises:
            StateRepoError: git failed.
            StorageError: the database refused the journal.
        """
        parents = await self.repo.parents(rev)
        async with self._lock:
            # The first parent is main as it was; a merge's second parent brings only `agent`'s file.
            settled_before = bool(parents) and self.applied_main == parents[0]
            report = await self._pass(cause, {agent}, retry=(agent,))
            if settled_before and report.ok and report.rev == rev:
                self.applied_main = rev
                return report
        self.kick(f"main moved to {rev[:12]}")
        return report

    async def read_main(self) -> DesiredHive | None:
        """Main's desired hive, or None (and `refusal` says why) when a file of it is not valid."""
        rev = await self.repo.rev()
        self.main = rev
        if rev is None:
            self.refusal = "the state repo has no main branch"
            return None
        try:
            desired = await self.reader.read(rev)
        except HiveError as exc:
            refusal = f"main {rev[:12]} is refused, the hive runs as it was: {exc}"
            if refusal != self.refusal:
                logger.error("%s", refusal)
            self.refusal = refusal
            return None
        self.refusal = None
        self.desired = desired
        return desired

    async def _pass(
        self, cause: str, only: Collection[str] | None, rebuild: Collection[str] = (), retry: Collection[str] = ()
    ) -> ReconcileReport:
        if self._closed:
            return ReconcileReport(rev=self.main, cause=cause, steps=[], error="the daemon is shutting down")
        desired = await self.read_main()
        if desired is None:
            return ReconcileReport(rev=self.main, cause=cause, steps=[], error=self.refusal)
        local = self._register(desired)
        outcomes: list[StepOutcome] = []
        for name in sorted(await self._names(desired)):
            if (only is not None and name not in only) or self._closed:
                continue
            status = await self.hive.backend.status(name)
            if name in desired.agents and name not in local:
                away = self._away(name, desired.agents[name], status)
                if away is not None and away.acts:
                    outcomes.append(await self._depart(away, desired, cause))
                continue
            step = plan_agent(
                name,
                local.get(name),
                self._states.get(name),
                status,
                now=time.time(),
                prune=desired.settings.prune,
                rebuild=name in rebuild,
                retry=name in retry or name in rebuild,
                backend=self.hive.backend.info.name,
            )
            if step is None:
                await self._settle(name)
                continue
            if step.action == "restart" and await self._noticed_death(name, desired, status):
                continue
            if step.acts:
                outcomes.append(await self._apply(step, desired, status, cause))
            elif step.action == "suspended" and (state := self._states.get(name)) and state.applied_hash:
                await self._ensure_socket(name)
        if only is None:
            self.applied_main = desired.rev
        return ReconcileReport(rev=desired.rev, cause=cause, steps=outcomes)

    async def _names(self, desired: DesiredHive) -> set[str]:
        names = set(desired.agents) | set(self._states)
        backend = self.hive.backend
        if isinstance(backend, NixosBackend):
            # Containers of ours that nobody tracks: reported (or pruned), never silently kept.
            by_container = {container_name(n): n for n in (*names, MANAGER)}
            for container in await backend.containers():
                if container in by_container:
                    continue
                if container.startswith("h-"):
                    names.add(container.removeprefix("h-"))
        return names

    def _register(self, desired: DesiredHive) -> dict[str, AgentFile]:
        """The hive's registry is main's agents placed here plus those still tracked (removal or departure
        pending, or suspended); main's others are another host's (`hive.elsewhere`). Returns those placed here."""
        local = self._local(desired)
        for name, file in local.items():
            self.hive.register(name, file)
        for name, state in self._states.items():
            if name not in local:
                self.hive.register(name, _applied_file(state))
        self.hive.elsewhere = {name: self.host_of(file) for name, file in desired.agents.items() if name not in local}
        # An agent main dropped (or placed elsewhere) before it was ever brought up here just goes.
        for name in set(self.hive.agent_names) - set(local) - set(self._states):
            self.hive.unregister(name)
        return local

    def _away(self, name: str, file: AgentFile, status: AgentStatus) -> Step | None:
        """Agent `name` of main, placed on another host (or none): departs from here if it still runs
        here (it moved), else only reported."""
        host = self.host_of(file)
        # A stopped container is still a sandbox of it here (the local backend's "stopped" is no process).
        left = status.state == AgentState.STOPPED and isinstance(self.hive.backend, NixosBackend)
        runs_here = name in self._states or left or status.state in (AgentState.RUNNING, AgentState.FAILED)
        if runs_here:
            where = f"host {host}" if host is not None else "no host"
            return Step(name, "depart", f"placed on {where}: stopped and removed here (its workspace is kept)")
        if host is None:
            return Step(name, "unplaced", unplaced_reason(name, self.here))
        if not self.shared:
            return Step(name, "elsewhere", f"placed on host {host}, not on this one ({self.here}): not run here")
        return None  # another host's agent on a shared hive: `hivectl list` shows it

    async def _depart(self, step: Step, desired: DesiredHive, cause: str) -> StepOutcome:
        """Stop and remove, here, an agent main places on another host: like a removal, but its reconcile
        state row is left to its new host (on a shared database it is the same row) and nothing is pruned."""
        name = step.agent
        journal_id = await anyio.to_thread.run_sync(
            lambda: self.records.journal_start(name, desired.rev, step.action, f"{cause}: {step.reason}")
        )
        self._busy[name] = step.action
        try:
            with anyio.fail_after(desired.settings.operation_timeout_s):
                await self._tear_down(name)
        except (HiveError, TimeoutError) as exc:
            detail = str(exc) or f"took longer than {desired.settings.operation_timeout_s:g} s"
            logger.error("%s of %s failed: %s", step.action, name, detail)
            await anyio.to_thread.run_sync(lambda: self.records.journal_finish(journal_id, "failed", detail))
            return StepOutcome(agent=name, action=step.action, ok=False, detail=detail)
        finally:
            self._busy.pop(name, None)
        # On a database of its own, nobody else will take the row over: it goes, as for a removal.
        return await self._gone(step, journal_id, forget=name if self.hive.config.database is None else None)

    async def _gone(self, step: Step, journal_id: int, *, forget: str | None) -> StepOutcome:
        """Finish a step that took an agent away from this host: journal it done (dropping the reconcile
        row of `forget` in the same commit) and forget the agent here."""
        name = step.agent
        await anyio.to_thread.run_sync(
            lambda: self.records.journal_finish(journal_id, "done", step.reason, forget=forget)
        )
        self._states.pop(name, None)
        self._started_at.pop(name, None)
        self.hive.unregister(name)
        logger.info("%s %s: %s", step.action, name, step.reason)
        return StepOutcome(agent=name, action=step.action, ok=True, detail=step.reason)

    async def _settle(self, name: str) -> None:
        """An agent in sync: its socket listens and its state says Ready."""
        state = self._states.get(name)
        if state is None:
            return
        await self._ensure_socket(name)
        if state.state != SyncState.READY or state.retry_at is not None:
            state.state, state.reason, state.retry_at, state.updated_at = SyncState.READY, "", None, time.time()
            await anyio.to_thread.run_sync(self.records.put_state, state)

    async def _ensure_socket(self, name: str) -> None:
        if not self._socket_open(name):
            await self._open_socket(name)

    async def _noticed_death(self, name: str, desired: DesiredHive, status: AgentStatus) -> bool:
        """Record an agent that died on its own; True when its restart waits for the backoff."""
        state = self._states.get(name)
        if state is None or state.retry_at is not None:
            return False  # its death is known: the restart is due now
        now = time.time()
        if now - self._started_at.get(name, 0.0) >= STABLE_S:
            state.failures = 0
        state.failures += 1
        delay = restart_delay(state.failures, desired.settings, died=True)
        detail = status.detail or "it exited"
        state.state, state.reason, state.updated_at = (
            SyncState.FAILED,
            f"died: {detail} (restart {state.failures})",
            now,
        )
        state.retry_at = now + delay if delay else None
        state.attempted_hash = desired.hash_of(name) if name in desired.agents else state.attempted_hash
        await anyio.to_thread.run_sync(self.records.put_state, state)
        await anyio.to_thread.run_sync(
            self.records.journal_note,
            name,
            desired.rev,
            "exited",
            "the agent's process ended by itself",
            detail,
            "failed",
        )
        logger.warning("agent %s died (%s); restart %d in %.0f s", name, detail, state.failures, delay)
        await self._event(name, "died", f"{detail}; restart {state.failures} in {delay:.0f} s")
        return delay > 0

    async def _apply(self, step: Step, desired: DesiredHive, status: AgentStatus, cause: str) -> StepOutcome:
        name = step.agent
        file = desired.agents.get(name)
        state = self._states.get(name) or AgentStateRow(name=name)
        now = time.time()
        state.attempted_rev = desired.rev
        state.attempted_hash = desired.hash_of(name) if file is not None else None
        state.state, state.reason, state.updated_at = SyncState.PROGRESSING, f"{step.action}: {step.reason}", now
        if file is not None:
            self._states[name] = state
        # Journaled before it acts: a daemon killed during the step finds it at its next start.
        journal_id = await anyio.to_thread.run_sync(
            lambda: self.records.journal_start(
                name, desired.rev, step.action, f"{cause}: {step.reason}", state if file is not None else None
            )
        )
        self._busy[name] = step.action
        timeout_s = desired.settings.operation_timeout_s
        try:
            try:
                with anyio.fail_after(timeout_s):
                    if step.action in TEAR_DOWN:
                        await self._tear_down(name)
                    else:
                        assert file is not None
                        await self._bring_up(name, file, step.action, status)
            except TimeoutError:
                raise BackendError(
                    f"{step.action} of {name} took longer than {timeout_s:g} s (operation_timeout_s in hive.toml)"
                ) from None
            self.hive.failpoint("apply", name)
        except HiveError as exc:
            return await self._failed(step, state, journal_id, str(exc), desired)
        finally:
            self._busy.pop(name, None)
        if step.action in TEAR_DOWN:
            return await self._gone(step, journal_id, forget=name)
        assert file is not None
        state.applied_hash = config_hash(file)
        state.applied_rev = desired.rev
        state.applied_config = json.dumps(file.model_dump(mode="json"), sort_keys=True)
        state.state, state.reason, state.retry_at, state.updated_at = SyncState.READY, "", None, time.time()
        await anyio.to_thread.run_sync(
            lambda: self.records.journal_finish(journal_id, "done", step.reason, agent=state)
        )
        self._states[name] = state
        self._started_at[name] = time.time()
        self._watch_exit(name)
        logger.info("%s %s at main %s: %s", step.action, name, desired.rev[:12], step.reason)
        if step.action == "restart":
            # Deaths, restarts and failures go to the agent's log too; routine steps only to the journal.
            await self._event(name, step.action, step.reason)
        return StepOutcome(agent=name, action=step.action, ok=True, detail=step.reason)

    async def _failed(
        self, step: Step, state: AgentStateRow, journal_id: int, detail: str, desired: DesiredHive
    ) -> StepOutcome:
        name = step.agent
        logger.error("%s of %s failed: %s", step.action, name, detail)
        await self._event(name, "reconcile_error", f"{step.action} failed: {detail}")
        if step.action in TEAR_DOWN:
            await anyio.to_thread.run_sync(lambda: self.records.journal_finish(journal_id, "failed", detail))
            return StepOutcome(agent=name, action=step.action, ok=False, detail=detail)
        state.failures += 1
        delay = restart_delay(state.failures, desired.settings, died=False)
        state.state, state.reason = SyncState.FAILED, f"{step.action} failed: {detail}"
        state.retry_at, state.updated_at = time.time() + delay, time.time()
        await anyio.to_thread.run_sync(lambda: self.records.journal_finish(journal_id, "failed", detail, agent=state))
        self._states[name] = state
        return StepOutcome(agent=name, action=step.action, ok=False, detail=detail)

    # the backend, composed

    def _spec(self, name: str, file: AgentFile) -> AgentSpec:
        config = self.hive.config
        # -I: the work dir (the agent's cwd, which it writes) is not on the import path, so a
        # hyperhive_agent/ the agent leaves there cannot replace the turn loop at its next start.
        if name == MANAGER:
            command = config.manager_command or (sys.executable, "-I", "-u", "-m", "hyperhive_mind", "serve")
        else:
            command = config.agent_command or (sys.executable, "-I", "-u", "-m", "hyperhive_agent", "serve")
        env = {"HIVE_ROLE": file.role, "HIVE_DRIVER": file.driver, "HIVE_TURN_TIMEOUT_S": f"{config.turn_timeout_s:g}"}
        env |= claude_env(file)
        agent_dir = config.agent_state_dir(name)
        network = file.sandbox.network
        limits = file.limits
        memory_mb = limits.memory_mb if limits.memory_mb is not None else config.agent_memory_mb
        return AgentSpec(
            name=name,
            socket_dir=config.agent_socket_dir(name),
            work_dir=agent_dir / "work",
            log_path=agent_dir / "agent.log",
            command=tuple(command),
            env=tuple(env.items()),
            share_net=config.share_net if network is None else network,
            claude_config_dir=config.claude_config_dir,
            packages=tuple(file.nixos.packages),
            claude_settings=managed_settings(file.claude),
            extra_dirs=tuple(ExtraMount(Path(d.path), d.mode == "rw") for d in file.sandbox.extra_dirs),
            repo=Path(file.sandbox.repo) if file.sandbox.repo is not None else None,
            limits=Limits(
                memory_bytes=None if memory_mb is None else memory_mb * 1024 * 1024,
                pids=limits.pids if limits.pids is not None else config.agent_pids,
                cpus=limits.cpus if limits.cpus is not None else config.agent_cpus,
            ),
        )

    async def _bring_up(self, name: str, file: AgentFile, action: str, status: AgentStatus) -> None:
        backend = self.hive.backend
        if file.backend is not None and file.backend != backend.info.name:
            raise BackendError(
                f"agent {name!r} asks for the {file.backend} backend and this daemon runs {backend.info.name}; "
                f"change backend in agents/{name}.toml, or run it on a daemon with that backend"
            )
        spec = self._spec(name, file)
        self.hive.starting(name)
        if action == "rebuild":
            # shielded inside the backend: a cancelled rebuild never leaves a half-stopped agent.
            await backend.stop(name, grace_s=self.hive.config.stop_grace_s)
            await self._open_socket(name)  # re-created: a rebuild also repairs a lost socket
        else:
            await self._ensure_socket(name)
        # create is the expensive verb on nixos (an update): only for a new, changed or vanished agent.
        if action in ("create", "rebuild") or status.state == AgentState.MISSING:
            await backend.create(spec)
        await backend.start(spec)

    async def _tear_down(self, name: str) -> None:
        backend = self.hive.backend
        with anyio.CancelScope(shield=True):
            await backend.stop(name, grace_s=self.hive.config.stop_grace_s)
            state = self._states.get(name)
            if state is not None:
                # Its branch is the operator's work: published into the repository one last time, and
                # kept there (and its clone in its state dir); removing an agent deletes no branch.
                # Bounded: a git that hangs must not hold the removal (the clone keeps the commits).
                with anyio.move_on_after(PUBLISH_WAIT_S):
                    await self.hive.publish(name, _applied_file(state))
            await backend.destroy(name)
            await self._close_socket(name)

    # what the operator sees

    def sync_of(self, name: str, status: AgentStatus) -> AgentSync:
        """Agent `name` against main, from its state and what runs now (never from a stale record)."""
        state = self._states.get(name)
        file = self.desired.agents.get(name) if self.desired is not None else None
        away = None if file is None or self.host_of(file) == self.here else self.host_of(file)
        if away is not None:
            file = None  # placed on another host: departing from here
        notes = not_applied(file, self.hive.backend.info.name) if file is not None else []
        if state is None:
            reason = "on main, not brought up yet" if file is not None else "not tracked"
            return AgentSync(SyncState.PROGRESSING, reason, not_applied=notes)

        def sync(kind: SyncState, reason: str) -> AgentSync:
            return AgentSync(kind, reason, state.applied_rev, state.attempted_rev, notes)

        if state.suspended:
            return sync(SyncState.SUSPENDED, f"suspended by the operator: left as it is until `hivectl resume {name}`")
        if name in self._busy:
            return sync(SyncState.PROGRESSING, f"{self._busy[name]} in progress")
        now = time.time()
        if state.retry_at is not None and state.retry_at > now:
            return sync(SyncState.FAILED, f"{state.reason}; next attempt in {state.retry_at - now:.0f} s")
        if state.state == SyncState.FAILED:
            return sync(SyncState.FAILED, state.reason)
        if status.state != AgentState.RUNNING:
            return sync(SyncState.FAILED, f"{status.state}: {status.detail or 'not running'}")
        if away is not None:
            return sync(SyncState.PROGRESSING, f"placed on host {away}; the reconcile has not moved it from here yet")
        if file is None:
            return sync(SyncState.PROGRESSING, "removed from main; the reconcile has not removed it yet")
        if state.applied_hash != config_hash(file):
            return sync(SyncState.PROGRESSING, "changed on main; the reconcile has not applied it yet")
        return sync(SyncState.READY, "")

    async def plan(self, desired: DesiredHive | None = None) -> PlanView:
        """What a reconcile would do now: against main, or against `desired` (a proposal's preview)."""
        stale = self.mirror.staleness if self.mirror is not None else None
        if desired is None:
            desired = await self.read_main()
            if desired is None:
                return PlanView(rev=self.main, steps=[], in_sync=0, error=self.refusal, stale=stale)
        steps: list[PlanStep] = []
        in_sync = 0
        now = time.time()
        local = self._local(desired)
        for name in sorted(await self._names(desired)):
            status = await self.hive.backend.status(name)
            if name in desired.agents and name not in local:
                away = self._away(name, desired.agents[name], status)
                if away is not None:
                    steps.append(PlanStep(agent=name, action=away.action, reason=away.reason))
                continue
            step = plan_agent(
                name,
                local.get(name),
                self._states.get(name),
                status,
                now=now,
                prune=desired.settings.prune,
                backend=self.hive.backend.info.name,
            )
            if step is None:
                in_sync += 1
            else:
                steps.append(PlanStep(agent=step.agent, action=step.action, reason=step.reason, notes=list(step.notes)))
        return PlanView(rev=desired.rev, steps=steps, in_sync=in_sync, stale=stale)

    # suspend and resume

    async def suspend(self, name: str, *, by: str) -> None:
        """Stop reconciling agent `name`: it stays as it is (running or not) until resumed.

        Raises:
            UnknownAgentError: the reconciler does not track it.
        """
        async with self._lock:
            state = self._require(name)
            if state.suspended:
                return
            state.suspended, state.updated_at = True, time.time()
            await anyio.to_thread.run_sync(self.records.put_state, state)
            await anyio.to_thread.run_sync(
                self.records.journal_note, name, self.main or "", "suspend", f"by {by}", "left as it is until resumed"
            )

    async def resume(self, name: str, *, by: str) -> ReconcileReport:
        """Reconcile agent `name` again, now.

        Raises:
            UnknownAgentError: the reconciler does not track it.
        """
        async with self._lock:
            state = self._require(name)
            if state.suspended:
                state.suspended, state.retry_at, state.updated_at = False, None, time.time()
                await anyio.to_thread.run_sync(self.records.put_state, state)
                await anyio.to_thread.run_sync(
                    self.records.journal_note, name, self.main or "", "resume", f"by {by}", "reconciled again"
                )
            return await self._pass(f"resumed by {by}", {name}, retry={name})

    def _require(self, name: str) -> AgentStateRow:
        try:
            return self._states[name]
        except KeyError:
            raise UnknownAgentError(name, self._states) from None

    def adopt(self, name: str, file: AgentFile, rev: str) -> AgentStateRow:
        """A state for an agent that already runs `file` (migrated from the database): not rebuilt."""
        state = AgentStateRow(
            name=name,
            applied_hash=config_hash(file),
            applied_rev=rev,
            applied_config=json.dumps(file.model_dump(mode="json"), sort_keys=True),
            attempted_rev=rev,
            attempted_hash=config_hash(file),
            state=SyncState.PROGRESSING,
            reason="migrated from the database; checked at the first reconcile",
            updated_at=time.time(),
        )
        self._states[name] = state
        return state


def claude_env(file: AgentFile) -> dict[str, str]:
    """How the agent's turn loop runs claude (hyperhive_agent.config reads it): only what the file sets."""
    claude = file.claude
    env: dict[str, str] = {}
    if claude.tools is not None:
        env["HIVE_CLAUDE_TOOLS"] = json.dumps(claude.tools)
    if claude.permission_mode is not None:
        env["HIVE_CLAUDE_PERMISSION_MODE"] = claude.permission_mode
    if claude.model is not None:
        env["HIVE_CLAUDE_MODEL"] = claude.model
    if file.sandbox.extra_dirs:
        env["HIVE_CLAUDE_ADD_DIRS"] = json.dumps([d.path for d in file.sandbox.extra_dirs])
    return env


def _applied_file(state: AgentStateRow) -> AgentFile:
    try:
        return AgentFile.model_validate_json(state.applied_config) if state.applied_config else AgentFile()
    except ValueError:
        return AgentFile()

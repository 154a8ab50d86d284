"""The plan: what reconcile would do to one agent, from main, what was applied, and what runs (pure).

Level-based, like Flux and Argo CD: the plan compares states, never replays events, so running it
again after a crash, or twice, does what is left and nothing more.
"""

import json
from dataclasses import dataclass
from typing import Any, cast

from hyperhive_core.approvals.agentfile import AgentFile, config_hash, not_applied
from hyperhive_core.approvals.views import Action
from hyperhive_core.broker.models import AgentStateRow
from hyperhive_core.lifecycle.base import AgentStatus
from hyperhive_core.states import AgentState


@dataclass(frozen=True, slots=True)
class Step:
    """One thing reconcile does to an agent, and why."""

    agent: str
    action: Action
    reason: str
    notes: tuple[str, ...] = ()

    @property
    def acts(self) -> bool:
        """Whether carrying it out touches the agent (wait, suspended and unmanaged only report)."""
        return self.action not in ("wait", "suspended", "unmanaged", "unplaced", "elsewhere")


def _changed(state: AgentStateRow | None, file: AgentFile) -> str:
    if state is None or state.applied_hash is None:
        return "new on main"
    try:
        before = json.loads(state.applied_config) if state.applied_config else None
    except ValueError:
        before = None
    if not isinstance(before, dict):
        return "its settings changed on main"
    after = file.model_dump(mode="json")
    fields: list[str] = []
    for key, value in after.items():
        old = cast(dict[str, Any], before).get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            inner = cast(dict[str, Any], old)
            fields.extend(f"{key}.{k}" for k, v in cast(dict[str, Any], value).items() if inner.get(k) != v)
        elif old != value:
            fields.append(key)
    return f"changed on main: {', '.join(fields)}" if fields else "its settings changed on main"


def _notes(file: AgentFile | None, backend: str) -> tuple[str, ...]:
    if file is None:
        return ()
    fields = not_applied(file, backend)
    return (f"not applied by this daemon yet: {', '.join(fields)}",) if fields else ()


def plan_agent(
    name: str,
    desired: AgentFile | None,
    state: AgentStateRow | None,
    status: AgentStatus,
    *,
    now: float,
    prune: bool,
    rebuild: bool = False,
    retry: bool = False,
    backend: str = "local",
) -> Step | None:
    """What reconcile does to agent `name`, or None when it runs as main wants.

    `state` is what the reconciler last did to it (None: never tracked); `rebuild` rebuilds even
    an agent in sync (the operator's rebuild); `retry` does not wait for a restart's backoff.
    """
    running = status.state == AgentState.RUNNING
    notes = _notes(desired, backend)
    if state is not None and state.suspended:
        in_sync = desired is not None and state.applied_hash == config_hash(desired)
        if in_sync:
            return None
        wants = "removal from main" if desired is None else "main's change"
        return Step(name, "suspended", f"suspended by the operator: {wants} waits for `hivectl resume {name}`", notes)
    if desired is None:
        if state is not None:
            return Step(name, "remove", "removed from main")
        if running:
            if prune:
                return Step(name, "prune", "runs, but main does not know it (the hive's settings say prune)")
            return Step(name, "unmanaged", "runs, but main does not know it; left running (prune is off in hive.toml)")
        return None
    wanted = config_hash(desired)
    applied = state.applied_hash if state is not None else None
    backoff = state is not None and state.retry_at is not None and state.retry_at > now and not retry
    # A new config deserves a fresh attempt: the backoff is for retrying what already failed.
    if backoff and state is not None and state.attempted_hash == wanted:
        due = (state.retry_at or now) - now
        return Step(name, "wait", f"{state.reason or 'failed'}; next attempt in {due:.0f} s", notes)
    if applied is None:
        return Step(name, "create", _changed(state, desired), notes)
    if applied != wanted:
        return Step(name, "rebuild", _changed(state, desired), notes)
    if rebuild:
        return Step(name, "rebuild", "rebuild asked for by the operator", notes)
    if running:
        return None
    if status.state == AgentState.FAILED:
        return Step(name, "restart", status.detail or "it exited", notes)
    if status.state == AgentState.MISSING:
        return Step(name, "start", status.detail or "its container is missing", notes)
    return Step(name, "start", "not running", notes)

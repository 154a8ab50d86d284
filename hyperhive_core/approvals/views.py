"""What the approval and reconcile tools return: proposals, plans, reconcile reports (pydantic only).

hivectl and (later) the dashboard read these; they import nothing but pydantic and the states.
"""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from hyperhive_core.states import ProposalState

ProposalKind = Literal["spawn", "kill", "rebuild", "edit"]
# What the reconciler would do (plan) or did (report) to one agent.
Action = Literal[
    "create",
    "start",
    "restart",
    "rebuild",
    "remove",
    "prune",
    "depart",
    "wait",
    "suspended",
    "unmanaged",
    "unplaced",
    "elsewhere",
]


class ProposalView(BaseModel):
    """One proposal and where it stands."""

    id: int
    proposer: str
    kind: ProposalKind
    agent: str
    summary: str = Field(description="What it changes, in a few words: 'spawn carol', 'edit alice: role'.")
    message: str = Field(description="Why, in the proposer's words.")
    state: ProposalState
    reason: str = Field(default="", description="Why it was denied, went stale, expired or degraded.")
    base: str = Field(description="The main it was proposed on.")
    commit: str | None = None
    branch: str
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    merged_rev: str | None = Field(default=None, description="The commit on main that merged it.")


class ProposalList(BaseModel):
    """Proposals, newest first."""

    proposals: list[ProposalView]


class PlanStep(BaseModel):
    """One difference between main and what runs, and what reconcile does about it."""

    agent: str
    action: Action
    reason: str
    notes: list[str] = Field(default_factory=list[str], description="Settings on main this daemon does not apply.")


class PlanView(BaseModel):
    """The difference between main and the running hive; empty when they agree."""

    rev: str | None = Field(description="The main the plan was made against.")
    steps: list[PlanStep]
    in_sync: int = Field(description="Agents with nothing to do.")
    error: str | None = Field(default=None, description="Why main cannot be applied (a bad file), if it cannot.")
    stale: str | None = Field(
        default=None, description="Since when the desired remote does not answer (main may be behind it)."
    )


class StepOutcome(BaseModel):
    """What one reconcile step did."""

    agent: str
    action: Action
    ok: bool
    detail: str = ""


class ReconcileReport(BaseModel):
    """What a reconcile did: each step, and the agents it left failing."""

    rev: str | None
    cause: str
    steps: list[StepOutcome]
    error: str | None = Field(default=None, description="Why nothing was applied, when main was refused.")

    @property
    def ok(self) -> bool:
        """Main was applied and every step worked."""
        return self.error is None and all(step.ok for step in self.steps)


class ProposalDetail(BaseModel):
    """A proposal with its diff and what approving it now would do."""

    proposal: ProposalView
    diff: str = Field(description="The unified diff of the proposal's files against its base.")
    plan: PlanView = Field(description="What reconcile would do if it were approved now.")
    conflicts: list[str] = Field(
        default_factory=list[str], description="Its files that main changed since its base: approving is refused."
    )


class Verdict(BaseModel):
    """A decided proposal, and for an approval what applying it did."""

    proposal: ProposalView
    report: ReconcileReport | None = None


class CommitReceipt(BaseModel):
    """An operator's change committed to main, and the reconcile that followed."""

    rev: str
    summary: str
    report: ReconcileReport

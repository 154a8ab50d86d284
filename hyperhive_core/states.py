"""The closed sets of states an agent, a message and a proposal can be in; import-light, shared by every layer."""

from enum import StrEnum


class AgentState(StrEnum):
    """What a backend reports about an agent's process or container."""

    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"
    MISSING = "missing"


class MessageState(StrEnum):
    """Where a message is in its life: queued → delivered (handed out by recv) → acked (answered)."""

    QUEUED = "queued"
    DELIVERED = "delivered"
    ACKED = "acked"


class SyncState(StrEnum):
    """Where an agent is against main, as the reconciler sees it."""

    READY = "Ready"
    PROGRESSING = "Progressing"
    FAILED = "Failed"
    SUSPENDED = "Suspended"


class ProposalState(StrEnum):
    """A proposal's life: proposed → approved | denied | expired | stale → applying → applied | degraded."""

    PROPOSED = "proposed"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    STALE = "stale"
    APPLYING = "applying"
    APPLIED = "applied"
    DEGRADED = "degraded"

    @property
    def pending(self) -> bool:
        """Waiting for the operator's verdict."""
        return self is ProposalState.PROPOSED

    @property
    def final(self) -> bool:
        """Nothing more will happen to it."""
        return self in FINAL_PROPOSAL_STATES


FINAL_PROPOSAL_STATES = frozenset(
    {ProposalState.DENIED, ProposalState.EXPIRED, ProposalState.STALE, ProposalState.APPLIED, ProposalState.DEGRADED}
)

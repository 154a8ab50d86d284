"""The closed sets of states an agent and a message can be in; import-light, shared by every layer."""

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

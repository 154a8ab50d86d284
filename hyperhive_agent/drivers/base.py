"""The seam between the turn loop and whatever decides how an agent answers its messages."""

from collections.abc import Sequence
from typing import Protocol

from hyperhive_agent.events import EventLog
from hyperhive_agent.tools import AgentTools, Message


class Driver(Protocol):
    """Runs one turn: everything the agent does about a batch of messages."""

    @property
    def name(self) -> str:
        """The driver answering now (`claude`, `echo`), for logs and events."""
        ...

    def run_turn(self, messages: Sequence[Message], tools: AgentTools, events: EventLog) -> None:
        """Act on `messages`, calling the hive through `tools` (a claude driver lets claude do it).

        What happens during the turn goes to `events`. A driver handles a refused tool call itself
        and carries on with the rest of the batch.

        Raises:
            TurnFailedError: the turn did not finish (hung, crashed); the loop reports it and goes on.
            ConnectionLostError: the hive went away mid-turn; the loop reconnects.
        """
        ...

    def cancel(self) -> None:
        """End a running turn as soon as possible; safe to call from a signal handler."""
        ...

    def rest(self, idle_s: float) -> None:
        """The agent has had no turn for `idle_s` seconds: a driver may let go of what it holds."""
        ...

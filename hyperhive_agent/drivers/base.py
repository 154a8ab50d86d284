"""The seam between the turn loop and whatever decides how an agent answers its messages."""

from collections.abc import Sequence
from typing import Protocol

from hyperhive_agent.tools import AgentTools, Message


class Driver(Protocol):
    """Runs one turn: everything the agent does about a batch of messages."""

    name: str

    def run_turn(self, messages: Sequence[Message], tools: AgentTools) -> None:
        """Act on `messages`, calling the hive through `tools` (a claude driver lets claude do it).

        A driver handles a refused tool call itself and carries on with the rest of the batch.

        Raises:
            ConnectionLostError: the hive went away mid-turn; the loop reconnects.
        """
        ...

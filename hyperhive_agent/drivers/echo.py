"""The echo driver: answers every message with `echo: <body>` to its sender.

It never answers a body that already starts with `echo: `, so two echo agents cannot ping-pong.
`guard=False` (`HIVE_ECHO_GUARD=0`) lifts that rule. It exists ONLY so tests can build two agents
that answer each other forever and show the daemon's runaway guard stopping them.
"""

import logging
from collections.abc import Sequence

from hyperhive_agent.errors import ToolCallError
from hyperhive_agent.events import EventLog, hive_event
from hyperhive_agent.tools import AgentTools, Message

logger = logging.getLogger(__name__)

ECHO_PREFIX = "echo: "


class EchoDriver:
    """Replies `echo: <body>` to each message, except to echoes (unless the guard is off)."""

    def __init__(self, *, guard: bool = True) -> None:
        self.guard = guard

    @property
    def name(self) -> str:
        """Always `echo`."""
        return "echo"

    def run_turn(self, messages: Sequence[Message], tools: AgentTools, events: EventLog) -> None:
        """Echo each message back to its sender as a reply to it.

        Raises:
            ConnectionLostError: the hive went away mid-turn.
        """
        for message in messages:
            events.emit(
                hive_event("received", f"message {message.id} from {message.sender}: {message.body}", id=message.id)
            )
            if self.guard and message.body.startswith(ECHO_PREFIX):
                logger.info("not echoing message %d from %s: it is an echo", message.id, message.sender)
                continue
            if any(sent.reply_to == message.id for sent in message.sent_before):
                logger.info("message %d was echoed before this turn was cut short", message.id)
                continue
            try:
                # Keyed by the message: a turn run again after a crash stores its echo once.
                sent = tools.send(
                    message.sender, ECHO_PREFIX + message.body, reply_to=message.id, key=f"echo-{message.id}"
                )
            except ToolCallError as exc:
                logger.warning("echo to %s refused: %s", message.sender, exc.text)
                events.emit(hive_event("refused", f"echo to {message.sender}: {exc.text}"))
                continue
            events.emit(hive_event("sent", f"message {sent.id} to {message.sender}: {ECHO_PREFIX}{message.body}"))

    def cancel(self) -> None:
        """Nothing to cancel: an echo turn is a few quick sends."""

    def rest(self, idle_s: float) -> None:
        """Nothing to let go of."""

"""The agent's error tree (stdlib only, so it cannot share hyperhive_core's):

AgentError > SettingsError | SocketUnavailableError | ConnectionLostError | ProtocolError | ToolCallError
           | TurnFailedError (ClaudeUnavailableError)
"""

from pathlib import Path


class AgentError(Exception):
    """Root of every error hyperhive_agent raises on purpose."""


class SettingsError(AgentError, ValueError):
    """A flag or environment variable holds something unusable: a usage error, reported before anything runs."""


class SocketUnavailableError(AgentError):
    """Nothing usable listens on the hive socket: missing, refused, or not ours to open."""

    def __init__(self, socket: Path, reason: str) -> None:
        super().__init__(f"{reason} at {socket} (is the hyperhive daemon running and the agent spawned?)")
        self.socket = socket
        self.reason = reason


class ConnectionLostError(AgentError):
    """The connection to the hive broke, closed, or stopped answering mid-session."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"connection to the hive lost: {reason}")
        self.reason = reason


class ProtocolError(AgentError):
    """The server answered with something this client cannot use (a JSON-RPC error, a malformed result)."""


class ToolCallError(AgentError):
    """A tool call came back with `isError: true`, or the server refused the request."""

    def __init__(self, tool: str, text: str) -> None:
        super().__init__(f"{tool}: {text}")
        self.tool = tool
        self.text = text


class TurnFailedError(AgentError):
    """A turn did not finish: the driver's process hung, crashed, or was cancelled. The loop carries on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ClaudeUnavailableError(TurnFailedError):
    """claude cannot run turns at all here (not installed, not logged in): the agent falls back to echo."""

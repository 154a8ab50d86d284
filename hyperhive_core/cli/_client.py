"""hivectl's connection to the daemon: the standard-library MCP client of hyperhive_agent, typed.

Why not the SDK's `ClientSession`: importing `mcp` costs about 0.6 s, most of a hivectl run. The
agent's client speaks the same protocol (initialize, tools/call) to the same genuine MCP server,
whose behaviour the tests check with SDK sessions. Its errors are translated here into the
`HiveError` tree, with the same words the SDK-based `hyperhive_core.client` uses.
"""

import socket
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from pydantic import BaseModel

from hyperhive_agent.client import McpClient
from hyperhive_agent.errors import ConnectionLostError, ProtocolError, SocketUnavailableError
from hyperhive_agent.errors import ToolCallError as AgentToolCallError
from hyperhive_core.errors import DaemonUnavailableError, ToolCallError

M = TypeVar("M", bound=BaseModel)

CALL_TIMEOUT_S = 30.0
# On top of a blocking tool's own wait, so the daemon answers before the socket gives up.
BLOCKING_SLACK_S = 10.0


def _unavailable(socket_path: Path, exc: SocketUnavailableError) -> DaemonUnavailableError:
    cause = exc.__cause__
    if isinstance(cause, FileNotFoundError):
        reason = "socket does not exist"
    elif isinstance(cause, ConnectionRefusedError):
        reason = "connection refused; the daemon is not running"
    elif isinstance(cause, PermissionError):
        reason = "permission denied; run as the daemon's user"
    else:
        reason = exc.reason
    return DaemonUnavailableError(socket_path, reason)


class OperatorClient:
    """A connection to host.sock; `call` returns the tool's model or raises a `HiveError`."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self._client = McpClient(socket_path, timeout_s=CALL_TIMEOUT_S)

    def __enter__(self) -> Self:
        try:
            self._client.open()
        except SocketUnavailableError as exc:
            raise _unavailable(self.socket_path, exc) from exc
        except (ConnectionLostError, ProtocolError) as exc:
            self._client.close()
            raise DaemonUnavailableError(
                self.socket_path, f"the daemon closed the connection during the handshake: {exc}"
            ) from exc
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._client.close()

    def call(self, tool: str, arguments: dict[str, Any], model: type[M], *, wait_s: float = 0.0) -> M:
        """Call `tool` and validate its structured result as `model`; `wait_s` is how long the tool may block.

        Raises:
            ToolCallError: the daemon refused the call.
            DaemonUnavailableError: the connection broke or the daemon did not answer.
        """
        try:
            result = self._client.call_tool(tool, arguments, timeout_s=wait_s + BLOCKING_SLACK_S + CALL_TIMEOUT_S)
        except AgentToolCallError as exc:
            raise ToolCallError(tool, exc.text) from exc
        except ConnectionLostError as exc:
            raise DaemonUnavailableError(
                self.socket_path, f"the daemon dropped the connection during {tool}: {exc.reason}"
            ) from exc
        return model.model_validate(result)


def connect_raw(socket_path: Path) -> socket.socket:
    """A plain connection that says nothing: the daemon closes it only once it has shut down.

    Raises:
        DaemonUnavailableError: nothing listens on `socket_path`.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(socket_path))
    except OSError as exc:
        sock.close()
        raise DaemonUnavailableError(socket_path, f"cannot connect ({exc.strerror or exc})") from exc
    return sock


def wait_until_closed(sock: socket.socket, timeout_s: float) -> bool:
    """Wait until the peer closes `sock`; False when `timeout_s` passes first."""
    sock.settimeout(timeout_s)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except OSError:
        pass  # reset by a daemon that went away: as good as closed
    return True

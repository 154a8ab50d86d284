"""Opens the hive's unix socket and turns the OS's reasons for failing into one `SocketUnavailableError`."""

import socket
from pathlib import Path

from hyperhive_agent.errors import SocketUnavailableError

DEFAULT_SOCKET = Path("/run/hive/mcp.sock")


def connect_unix(path: Path, timeout_s: float | None = None) -> socket.socket:
    """Connect a stream socket to `path`, with `timeout_s` as its read/write timeout (None blocks).

    Raises:
        SocketUnavailableError: the socket is missing, refuses connections, or is not ours to open.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout_s)
        sock.connect(str(path))
    except FileNotFoundError as exc:
        sock.close()
        raise SocketUnavailableError(path, "no hive socket") from exc
    except ConnectionRefusedError as exc:
        sock.close()
        raise SocketUnavailableError(path, "nothing listens on the hive socket") from exc
    except PermissionError as exc:
        sock.close()
        raise SocketUnavailableError(path, "permission denied on the hive socket") from exc
    except OSError as exc:
        sock.close()
        raise SocketUnavailableError(path, f"cannot open the hive socket ({exc.strerror or exc})") from exc
    return sock

"""Where the dashboard listens: `HOST:PORT` parsed once, with what follows from it (loopback, Host names).

Standard library only: `config.py` validates the address with it, and hivectl imports config.
"""

import ipaddress
from dataclasses import dataclass

DEFAULT_ADDRESS = "127.0.0.1:8420"
# `HYPERHIVE_DASHBOARD=off` (or `hivectl serve --no-dashboard`): no dashboard.
OFF = "off"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True, slots=True)
class Address:
    """A host (a name or an IP literal, IPv6 without brackets) and a port (0: any free port)."""

    host: str
    port: int

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach it: `localhost`, 127.0.0.0/8 or ::1."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def unspecified(self) -> bool:
        """Whether it binds every interface (0.0.0.0 or ::)."""
        try:
            return ipaddress.ip_address(self.host).is_unspecified
        except ValueError:
            return False

    def netloc(self, port: int | None = None) -> str:
        """`host:port` as a URL and a Host header write it (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port if port is None else port}"

    def __str__(self) -> str:
        return self.netloc()


def parse_address(text: str) -> Address:
    """Parse `HOST:PORT` (`[::1]:8420` for IPv6).

    Raises:
        ValueError: not an address; the message says the expected shape.
    """
    shape = f"dashboard address {text!r} is not HOST:PORT (e.g. {DEFAULT_ADDRESS}, [::1]:8420, or port 0 for any)"
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host or not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise ValueError(shape)
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(shape)
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(shape) from None
    elif ":" in host or any(c.isspace() or c in "/?#@" for c in host):
        raise ValueError(shape)
    return Address(host=host, port=int(port_text))


def parse_setting(text: str | None) -> Address | None:
    """An address, or None for `off` (and for nothing at all)."""
    if text is None or text.strip().lower() in (OFF, ""):
        return None
    return parse_address(text)

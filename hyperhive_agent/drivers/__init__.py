"""Drivers decide how an agent answers a batch of messages; looked up by name."""

from collections.abc import Callable

from hyperhive_agent.drivers.base import Driver
from hyperhive_agent.drivers.echo import EchoDriver

# a later claude driver and an "auto" choice register here
DRIVERS: dict[str, Callable[[], Driver]] = {"echo": EchoDriver}
DEFAULT_DRIVER = "echo"


def create_driver(name: str) -> Driver:
    """Build the driver called `name`.

    Raises:
        ValueError: no driver has that name.
    """
    try:
        return DRIVERS[name]()
    except KeyError:
        raise ValueError(f"unknown driver {name!r}; choose one of {', '.join(sorted(DRIVERS))}") from None


__all__ = ["DEFAULT_DRIVER", "DRIVERS", "Driver", "EchoDriver", "create_driver"]

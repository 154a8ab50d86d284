"""Lifecycle backends, looked up by name; `create_backend` is the one place that picks one."""

from collections.abc import Callable

from hyperhive_core.config import HiveConfig
from hyperhive_core.errors import ConfigError
from hyperhive_core.lifecycle.base import AgentSpec, AgentStatus, BackendInfo, LifecycleBackend
from hyperhive_core.lifecycle.local import LocalBackend
from hyperhive_core.lifecycle.nixos import NixosBackend
from hyperhive_core.states import AgentState


def _local(config: HiveConfig) -> LifecycleBackend:
    return LocalBackend(sandbox=config.sandbox, hidden=(config.state_dir, config.run_dir), state_dir=config.state_dir)


def _nixos(config: HiveConfig) -> LifecycleBackend:
    return NixosBackend(
        template=config.nixos_template,
        conf_dir=config.nixos_conf_dir,
        executable=config.nixos_container,
        nix_path=config.nixos_nix_path,
    )


BACKENDS: dict[str, Callable[[HiveConfig], LifecycleBackend]] = {"local": _local, "nixos": _nixos}


def create_backend(config: HiveConfig) -> LifecycleBackend:
    """Build the backend the config names.

    Raises:
        ConfigError: no backend has that name.
        BackendUnavailableError: the backend's tool is missing on this host.
    """
    try:
        factory = BACKENDS[config.backend]
    except KeyError:
        raise ConfigError(f"unknown backend {config.backend!r}; choose one of {', '.join(sorted(BACKENDS))}") from None
    return factory(config)


__all__ = [
    "BACKENDS",
    "AgentSpec",
    "AgentState",
    "AgentStatus",
    "BackendInfo",
    "LifecycleBackend",
    "LocalBackend",
    "NixosBackend",
    "create_backend",
]

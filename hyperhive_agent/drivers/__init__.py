"""Drivers decide how an agent answers a batch of messages: `echo`, `claude`, or `auto` choosing between them."""

from hyperhive_agent.drivers.auto import ClaudeStatus, FallbackDriver, claude_status, create_driver
from hyperhive_agent.drivers.base import Driver
from hyperhive_agent.drivers.claude import ClaudeDriver, ClaudeSettings
from hyperhive_agent.drivers.echo import EchoDriver

__all__ = [
    "ClaudeDriver",
    "ClaudeSettings",
    "ClaudeStatus",
    "Driver",
    "EchoDriver",
    "FallbackDriver",
    "claude_status",
    "create_driver",
]

"""The manager agent: the turn loop with a privileged toolset (a later issue; a placeholder today)."""

__version__ = "0.1.0"

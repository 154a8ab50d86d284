"""The in-sandbox side of hyperhive: the stdio bridge and the turn loop. Standard library only."""

from hyperhive_agent._version import __version__

__all__ = ["__version__"]

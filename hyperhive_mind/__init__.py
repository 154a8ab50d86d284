"""The manager agent `hm1nd`: the agent turn loop with the manager's system prompt as its role."""

from hyperhive_mind.prompt import MANAGER_NAME, MANAGER_PROMPT

__version__ = "0.1.0"

__all__ = ["MANAGER_NAME", "MANAGER_PROMPT", "__version__"]

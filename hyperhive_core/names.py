"""Agent naming rules: what a name may be, which are reserved, and the principals that are not agents.

A name becomes a directory and a container name (`h-<name>`, at most 11 characters for
nixos-container), so the pattern is strict enough that no name can reach outside its directory.
"""

import re

from hyperhive_core.errors import InvalidAgentNameError

NAME_PATTERN = re.compile(r"[a-z][a-z0-9-]{0,8}")
MAX_NAME_CHARS = 9
OPERATOR = "operator"
MANAGER = "hm1nd"
# The daemon itself: the sender of its notices (a spent budget), and the whole hive's budget scope.
HIVE = "hive"
RESERVED_NAMES = frozenset({OPERATOR, MANAGER, HIVE})


def validate_agent_name(name: str) -> str:
    """Return `name` when it is a valid name for a new agent.

    Raises:
        InvalidAgentNameError: the name is too long, has characters outside `[a-z0-9-]`, does not
            start with a letter, or is reserved.
    """
    if not name:
        raise InvalidAgentNameError(name, "it is empty")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidAgentNameError(
            name, f"it has {len(name)} characters, at most {MAX_NAME_CHARS} fit a container name"
        )
    if name in RESERVED_NAMES:
        raise InvalidAgentNameError(name, f"{', '.join(sorted(RESERVED_NAMES))} are reserved")
    if NAME_PATTERN.fullmatch(name) is None:
        raise InvalidAgentNameError(name, "use lowercase letters, digits and '-', starting with a letter")
    return name

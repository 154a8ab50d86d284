"""An agent file's [claude] section as claude-code settings, for backends that give each agent a system.

On the nixos backend this document becomes the container's /etc/claude-code/managed-settings.json
(through the template's `hyperhive.agent.claudeSettings`): managed settings take precedence over
every other source, so the container's claude runs with this agent's model, permission mode and
tools whatever the turn loop passes on its command line. An agent with nothing set gets no file.
"""

from hyperhive_agent.drivers.claude import ALLOWED_TOOLS, DISALLOWED_TOOLS
from hyperhive_core.approvals.agentfile import ClaudeSettings


def managed_settings(claude: ClaudeSettings) -> dict[str, object]:
    """The claude-code settings that say what `claude` says; {} when it sets nothing."""
    settings: dict[str, object] = {}
    permissions: dict[str, object] = {}
    if claude.model is not None:
        settings["model"] = claude.model
    if claude.permission_mode is not None:
        permissions["defaultMode"] = claude.permission_mode
    if claude.tools is not None:
        # The agent's tools and the hive's own (without which it cannot answer), and only those:
        # with allowManagedPermissionRulesOnly, allow rules from --allowedTools or from a
        # settings file in the work dir are ignored. The turn loop's private tools stay denied.
        permissions["allow"] = [*claude.tools, *ALLOWED_TOOLS]
        permissions["deny"] = list(DISALLOWED_TOOLS)
        settings["allowManagedPermissionRulesOnly"] = True
    if permissions:
        settings["permissions"] = permissions
    return settings

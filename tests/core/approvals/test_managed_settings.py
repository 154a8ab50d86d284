"""An agent file's [claude] section as the claude-code managed settings of its container."""

from hyperhive_agent.drivers.claude import ALLOWED_TOOLS, DISALLOWED_TOOLS
from hyperhive_core.approvals.agentfile import ClaudeSettings
from hyperhive_core.approvals.managed_settings import managed_settings


def test_an_agent_with_no_claude_settings_gets_no_managed_settings() -> None:
    assert managed_settings(ClaudeSettings()) == {}


def test_a_model_or_a_mode_alone_leaves_the_tools_to_the_turn_loop() -> None:
    assert managed_settings(ClaudeSettings(model="opus")) == {"model": "opus"}
    assert managed_settings(ClaudeSettings(permission_mode="plan")) == {"permissions": {"defaultMode": "plan"}}


def test_tools_are_the_only_allow_rules_and_the_hives_private_tools_stay_denied() -> None:
    assert managed_settings(ClaudeSettings(tools=[])) == {
        "allowManagedPermissionRulesOnly": True,
        "permissions": {"allow": list(ALLOWED_TOOLS), "deny": list(DISALLOWED_TOOLS)},
    }

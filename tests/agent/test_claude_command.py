"""What the turn loop asks of claude for one agent: its settings from the daemon, onto claude's command line."""

import json
from pathlib import Path

import pytest

from hyperhive_agent.config import WORKING_SET, AgentConfig
from hyperhive_agent.drivers.claude import ClaudeDriver, ClaudeSettings
from hyperhive_agent.errors import SettingsError
from hyperhive_agent.prompt import Identity


def command(config: AgentConfig) -> list[str]:
    settings = ClaudeSettings(
        identity=Identity(config.name),
        socket_path=Path("/run/hive/mcp.sock"),
        work_dir=config.work_dir,
        turn_timeout_s=60,
        tools=config.claude_tools,
        permission_mode=config.permission_mode,
        model=config.claude_model,
        add_dirs=config.add_dirs,
        settings_file=config.settings_file,
    )
    return ClaudeDriver(settings).command(None)


def values(argv: list[str], flag: str) -> list[str]:
    """The arguments of a flag that takes every following one (the last flags of claude's command line)."""
    start = argv.index(flag) + 1
    end = next((i for i in range(start, len(argv)) if argv[i].startswith("--")), len(argv))
    return argv[start:end]


def test_by_default_claude_gets_the_working_set_and_reads_no_settings_of_the_work_dir(tmp_path: Path) -> None:
    config = AgentConfig.from_env({}, work_dir=tmp_path)
    argv = command(config)
    assert config.claude_tools == WORKING_SET
    assert "--tools=Bash,Read,Edit,Write,Glob,Grep" in argv
    assert values(argv, "--allowedTools") == ["mcp__hive", *WORKING_SET]
    assert values(argv, "--disallowedTools") == ["mcp__hive__report_events", "mcp__hive__recv", "mcp__hive__ack"]
    assert argv[argv.index("--setting-sources") + 1] == "user"
    assert argv[argv.index("--permission-mode") + 1] == "default"
    assert "--model" not in argv
    # the hive's server is on the command line, never in a file of the work dir
    assert not list(tmp_path.iterdir())


def test_an_agents_settings_from_the_daemon_reach_claudes_command_line(tmp_path: Path) -> None:
    env = {
        "HIVE_CLAUDE_TOOLS": '["Read", "Bash(git commit *)", "mcp__hive__send"]',
        "HIVE_CLAUDE_PERMISSION_MODE": "dontAsk",
        "HIVE_CLAUDE_MODEL": "sonnet",
        "HIVE_CLAUDE_ADD_DIRS": json.dumps([str(tmp_path / "data"), str(tmp_path / "out"), "/nonexistent/dir"]),
        "HIVE_CLAUDE_SETTINGS": "/run/claude-settings.json",
    }
    (tmp_path / "data").mkdir()
    (tmp_path / "out").mkdir()
    argv = command(AgentConfig.from_env(env, work_dir=tmp_path))
    # a rule offers its tool, and allows only what it says; MCP tools are not built-in tools
    assert "--tools=Read,Bash" in argv
    assert values(argv, "--allowedTools") == ["mcp__hive", "Read", "Bash(git commit *)", "mcp__hive__send"]
    assert argv[argv.index("--permission-mode") + 1] == "dontAsk"
    assert argv[argv.index("--model") + 1] == "sonnet"
    # a dir this sandbox does not have is left out (a backend that does not bind extra dirs)
    assert [f"--add-dir={tmp_path / 'data'}", f"--add-dir={tmp_path / 'out'}"] == [
        a for a in argv if a.startswith("--add-dir")
    ]
    # only the operator's settings, as the daemon bound them read-only
    assert ["--setting-sources=", "--settings=/run/claude-settings.json"] == [
        a for a in argv if a.startswith("--setting")
    ]


def test_no_tools_leaves_claude_only_the_hives(tmp_path: Path) -> None:
    argv = command(AgentConfig.from_env({"HIVE_CLAUDE_TOOLS": "[]"}, work_dir=tmp_path))
    assert "--tools=" in argv
    assert values(argv, "--allowedTools") == ["mcp__hive"]


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"HIVE_CLAUDE_TOOLS": "Read,Bash"}, "is not a JSON list of strings"),
        ({"HIVE_CLAUDE_TOOLS": '["Read", 1]'}, "is not a JSON list of strings"),
        ({"HIVE_CLAUDE_TOOLS": '["rm -rf /"]'}, "is no tool name or rule"),
        ({"HIVE_CLAUDE_PERMISSION_MODE": "yolo"}, "choose one of default, acceptEdits"),
        ({"HIVE_CLAUDE_ADD_DIRS": '["data"]'}, "is not an absolute path"),
    ],
    ids=["not-json", "not-strings", "bad-rule", "bad-mode", "relative-dir"],
)
def test_unusable_claude_settings_are_refused_with_what_to_fix(tmp_path: Path, env: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        AgentConfig.from_env(env, work_dir=tmp_path)
    assert says in str(caught.value)

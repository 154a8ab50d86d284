"""Turn events as terminal text: what claude did, readable, and nothing an agent wrote can drive xterm."""

import re
from typing import Any

from hyperhive_core.dashboard import terminal

# Our own escapes: SGR colour codes only.
SGR = re.compile(r"\x1b\[[0-9;]*m")
NASTY = "\x1b[2J\x1b]0;title\x07\x9b31m\r\x08\u202e"


def text_of(rendered: str) -> str:
    """What a reader sees: the text without our colours."""
    return SGR.sub("", rendered)


def assert_inert(rendered: str) -> None:
    """No control character but newlines and our colour codes."""
    rest = SGR.sub("", rendered)
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e]", rest), repr(rest)


def test_a_claude_turn_reads_as_text_tool_calls_results_and_cost() -> None:
    events: list[dict[str, Any]] = [
        {
            "type": "system",
            "subtype": "init",
            "session_id": "s-1",
            "model": "m",
            "mcp_servers": [{"name": "hive", "status": "connected"}],
        },
        {
            "type": "assistant",
            "message": {
                "content": [
                    {"type": "text", "text": "Let me answer.\nTwo lines."},
                    {"type": "tool_use", "name": "mcp__hive__send", "input": {"to": "bob", "body": "hi"}},
                ]
            },
        },
        {
            "type": "user",
            "message": {"content": [{"type": "tool_result", "content": [{"type": "text", "text": "sent #7"}]}]},
        },
        {"type": "user", "message": {"content": [{"type": "tool_result", "is_error": True, "content": "refused"}]}},
        {
            "type": "result",
            "is_error": False,
            "duration_ms": 2500,
            "total_cost_usd": 0.0123,
            "usage": {"input_tokens": 10, "output_tokens": 3},
        },
        {"type": "hive", "subtype": "turn_error", "message": "claude crashed"},
    ]
    shown = [text_of(terminal.describe(e)) for e in events]
    assert shown[0] == "session s-1 (model m; mcp: hive connected)"
    assert shown[1].startswith("Let me answer.\n    Two lines.\n→ mcp__hive__send {")
    assert '"body": "hi"' in shown[1]
    assert shown[2] == "← sent #7"
    assert shown[3] == "← error: refused"
    assert shown[4] == "turn done in 2.5 s, $0.0123, tokens in 10 out 3"
    assert shown[5] == "[turn_error] claude crashed"
    assert terminal.RED in terminal.describe(events[3])


def test_escape_sequences_in_anything_an_agent_reports_stay_inert() -> None:
    events: list[dict[str, Any]] = [
        {"type": "assistant", "message": {"content": [{"type": "text", "text": NASTY}]}},
        {"type": "assistant", "message": {"content": [{"type": "tool_use", "name": NASTY, "input": {NASTY: NASTY}}]}},
        {"type": "user", "message": {"content": [{"type": "tool_result", "content": NASTY}]}},
        {"type": "result", "is_error": True, "result": NASTY},
        {"type": "hive", "subtype": NASTY, "message": NASTY},
        {"type": NASTY},
    ]
    for event in events:
        rendered = terminal.line(0.0, event)
        assert_inert(rendered)
        assert "\\x1b[2J\\x1b]0;title\\x07" in rendered


def test_a_huge_tool_result_is_cut() -> None:
    event = {"type": "user", "message": {"content": [{"type": "tool_result", "content": "x" * 50_000}]}}
    shown = text_of(terminal.describe(event))
    assert len(shown) < terminal.MAX_PART_CHARS + 100
    assert shown.endswith(f"… ({50_000 - terminal.MAX_PART_CHARS} more characters)")

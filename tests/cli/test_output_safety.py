"""What agents write is shown, never obeyed: `hivectl` against a real daemon, bodies full of escapes.

A body, a role, a turn event or a name may carry rich markup, ANSI/OSC escapes, other control
characters or bidi overrides; hivectl shows each control character as a visible escape (`\\x1b`),
its JSON keeps them as `\\u001b`, and the raw bytes it writes never contain one from an agent.
"""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from hyperhive_core.cli._safe import ESCAPE_STYLE, escape_controls, html_escape_literal, printable, safe_json
from hyperhive_core.errors import ToolCallError
from tests.cli._hive import LiveHive, error_line, live_hive, report_as_agent
from tests.helpers import IDLE_AGENT, hive_config

# Every character an agent's text must never get to the terminal raw.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")

HOSTILE = {
    "sgr-colour": ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
    "osc-title": ("\x1b]0;pwned\x07after", "\\x1b]0;pwned\\x07after"),
    "clear-screen": ("\x1b[2J\x1b[Hclean slate", "\\x1b[2J\\x1b[Hclean slate"),
    "carriage-return": ("all good\rEVIL", "all good\\rEVIL"),
    "backspace-del": ("abc\x08\x08\x7f", "abc\\x08\\x08\\x7f"),
    "c1-csi": ("\x9b31mc1", "\\x9b31mc1"),
    "bidi-override": ("user \u202etxt.exe", "user \\u202etxt.exe"),
    "nul": ("nul\x00byte", "nul\\x00byte"),
}
# What a message body can hold: the broker refuses a NUL (no engine stores it as text).
STORABLE = {name: texts for name, texts in HOSTILE.items() if "\x00" not in texts[0]}


def assert_no_raw_controls(raw: bytes) -> None:
    """Nothing in `raw` a terminal would act on: no C0 but newline, no DEL, no C1, no bidi control."""
    text = raw.decode()
    assert "\x1b" not in text
    assert not UNSAFE.search(text), UNSAFE.findall(text)


@pytest.fixture
def hive(short_tmpdir: Path) -> Iterator[LiveHive]:
    with live_hive(hive_config(short_tmpdir, agent_command=IDLE_AGENT)) as live:
        live.ok("spawn", "alice")
        yield live


# the helper


@pytest.mark.parametrize(("text", "shown"), HOSTILE.values(), ids=list(HOSTILE))
def test_escape_controls_shows_each_control_character_as_a_visible_escape(text: str, shown: str) -> None:
    assert escape_controls(text) == shown


def test_newlines_tabs_markup_and_non_ascii_text_stay_as_they_are() -> None:
    text = "héllo 👋 [bold]x[/] <b>\n\tindented 日本語 \u200d"
    assert escape_controls(text) == text
    assert printable(text).plain == text


def test_printable_sets_the_escapes_apart_from_the_same_text_typed_literally() -> None:
    shown = printable("typed \\x1b, real \x1b")
    assert shown.plain == "typed \\x1b, real \\x1b"
    styled = [shown.plain[span.start : span.end] for span in shown.spans if span.style == ESCAPE_STYLE]
    assert styled == ["\\x1b"]


def test_safe_json_is_valid_json_that_round_trips_and_holds_no_raw_control() -> None:
    value: dict[str, Any] = {name: text for name, (text, _) in HOSTILE.items()}
    value["lone-surrogate"] = "\ud800x"
    value["kept"] = "héllo 👋\n"
    for compact in (False, True):
        text = safe_json(value, compact=compact)
        assert json.loads(text) == value
        assert not UNSAFE.search(text)
        assert "\\u001b" in text
        assert "\\u202e" in text
        assert "\\ud800" in text
        assert "héllo 👋" in text
        assert ("\n" in text) is not compact


def test_html_escape_literal_escapes_markup_and_control_characters_for_the_dashboard() -> None:
    body = '<script>alert("x")</script> & \x1b[2J \u202eok\n'
    assert html_escape_literal(body) == ("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; \\x1b[2J \\u202eok\n")


def test_a_rich_console_writes_no_escape_from_printable_text_even_to_a_terminal() -> None:
    console = Console(force_terminal=True, color_system="truecolor", width=200, record=True)
    with console.capture() as capture:
        console.print(printable("\x1b]0;pwned\x07 \x1b[2J"))
    out = capture.get()
    # the terminal gets styling escapes of ours, but not the agent's
    assert "\x1b]0;" not in out
    assert "\x07" not in out
    assert "\x1b[2J" not in out
    assert "pwned" in out


# hivectl against a real daemon


@pytest.mark.parametrize(("body", "shown"), STORABLE.values(), ids=list(STORABLE))
def test_recv_shows_control_characters_in_a_body_as_visible_escapes(hive: LiveHive, body: str, shown: str) -> None:
    hive.agent_sends("alice", "operator", body)
    result = hive.ok("recv", "--wait", "5")
    assert_no_raw_controls(result.stdout_bytes)
    assert shown in result.stdout


def test_inbox_shows_an_operators_hostile_body_literally(hive: LiveHive) -> None:
    body = "[bold red]x[/] <b> \x1b[2J\x1b]8;;http://evil/\x07link"
    hive.ok("send", "alice", body)
    result = hive.ok("inbox", "alice")
    assert_no_raw_controls(result.stdout_bytes)
    assert "[bold red]x[/] <b> \\x1b[2J\\x1b]8;;http://evil/\\x07link" in result.stdout


def test_json_output_is_valid_json_with_control_characters_as_unicode_escapes(hive: LiveHive) -> None:
    bodies = [body for body, _ in STORABLE.values()]
    for body in bodies:
        hive.agent_sends("alice", "operator", body)
    result = hive.ok("recv", "--wait", "5", "--max", "100", "--json")
    assert_no_raw_controls(result.stdout_bytes)
    assert "\\u001b[31m" in result.stdout
    assert "\\u202e" in result.stdout
    assert [m["body"] for m in json.loads(result.stdout)["messages"]] == bodies


def test_status_shows_a_hostile_role_literally(hive: LiveHive) -> None:
    role = "[blink]reviewer[/] \x1b]0;title\x07\u202e"
    hive.ok("spawn", "bob", "--role", role)
    result = hive.ok("status", "bob")
    assert_no_raw_controls(result.stdout_bytes)
    assert "[blink]reviewer[/] \\x1b]0;title\\x07\\u202e" in result.stdout
    assert hive.json("status", "bob")["role"] == role


def test_logs_show_control_characters_in_turn_events_as_visible_escapes(hive: LiveHive) -> None:
    events: list[dict[str, Any]] = [
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "done \x1b[2J\x1b[31mreally"}]}},
        {"type": "hive", "subtype": "turn_error", "message": "oops \x9b2J \u202eexe.txt"},
        {"type": "\x1b]0;kind\x07", "data": "\x1b[5m"},
    ]
    hive.portal.call(report_as_agent, hive.config.agent_socket("alice"), events)
    result = hive.ok("logs", "alice")
    assert_no_raw_controls(result.stdout_bytes)
    assert "done \\x1b[2J\\x1b[31mreally" in result.stdout
    assert "oops \\x9b2J \\u202eexe.txt" in result.stdout
    assert "\\x1b]0;kind\\x07" in result.stdout
    as_json = hive.ok("logs", "alice", "--json")
    assert_no_raw_controls(as_json.stdout_bytes)
    assert [json.loads(line)["data"] for line in as_json.stdout.splitlines()] == events


@pytest.mark.parametrize(
    "name", ["\x1b[2Jghost", "ghost\x1b]0;t\x07", "\u202eghost", "gh\rost"], ids=["csi", "osc", "bidi", "cr"]
)
def test_an_error_quoting_a_hostile_name_shows_it_with_visible_escapes(hive: LiveHive, name: str) -> None:
    result = hive.run("status", name)
    line = error_line(result)
    assert_no_raw_controls(result.stderr_bytes)
    assert "unknown agent" in line
    assert escape_controls(name) in line


def test_an_agents_body_with_a_nul_is_refused_with_what_to_do(hive: LiveHive) -> None:
    with pytest.raises(ToolCallError) as caught:
        hive.agent_sends("alice", "operator", HOSTILE["nul"][0])
    assert "NUL" in str(caught.value)
    assert "base64" in str(caught.value)
    # nothing was stored: the next message is the only one the operator gets
    hive.agent_sends("alice", "operator", "plain text after it")
    assert [m["body"] for m in hive.json("recv", "--wait", "5", "--max", "10")["messages"]] == ["plain text after it"]

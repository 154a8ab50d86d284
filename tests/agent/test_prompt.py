"""The turn prompt's format, which the fake claude parses and the module docstring documents."""

from pathlib import Path

from hyperhive_agent.prompt import Identity, build_prompt, load_role
from hyperhive_agent.tools import Message


def message(id: int, sender: str, body: str, reply_to: int | None = None) -> Message:
    return Message(id=id, sender=sender, recipient="alice", body=body, created_at="now", reply_to=reply_to)


def test_each_message_is_a_header_line_and_its_body_indented() -> None:
    prompt = build_prompt(
        Identity("alice"), [message(3, "bob", "hi\n\nthere"), message(5, "carol", "ok", reply_to=4)], new_session=True
    )
    assert prompt.startswith("You are alice, an agent in a hyperhive")
    assert prompt.endswith("New messages:\n\nmessage 3 from bob:\n    hi\n    \n    there\n\n"
                           "message 5 from carol (reply_to 4):\n    ok\n")  # fmt: skip
    assert "mcp__hive__send" in prompt
    assert "reply_to" in prompt


def test_the_role_appears_only_when_a_session_starts() -> None:
    identity = Identity("alice", "You review code.")
    assert "Your role:\nYou review code." in build_prompt(identity, [message(1, "bob", "x")], new_session=True)
    assert "You review code." not in build_prompt(identity, [message(1, "bob", "x")], new_session=False)


def test_the_role_is_the_configured_text_then_claude_md(tmp_path: Path) -> None:
    (tmp_path / "CLAUDE.md").write_text("Be brief.\n")
    (tmp_path / "ROLE.md").write_text("Never read.\n")
    assert load_role("You review code.", tmp_path) == "You review code.\n\nBe brief."
    (tmp_path / "CLAUDE.md").unlink()
    assert load_role("", tmp_path) == "Never read."

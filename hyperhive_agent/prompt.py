"""The prompt for one turn: who the agent is, its role (first turn of a session only), the new messages.

The format is a contract (the scripted model of the fake Messages API in tests/fakes parses it).
Plain text, in this order:

    You are <name>, an agent in a hyperhive: ...        (every turn)
    <blank line>
    Your role:                                          (first turn of a session only, when
    <HIVE_ROLE, then the contents of CLAUDE.md or ROLE.md   there is a role at all)
     from the work dir>
    <blank line>
    <short instructions: reply with mcp__hive__send, pass reply_to, use peers>   (every turn)
    <blank line>
    New messages:
    <blank line>
    message <id> from <sender>:                         (one block per message, in order;
        <body, every line indented by four spaces>       ` (reply_to <n>)` before the colon when
    <blank line>                                         the message answers message <n>)
    [You were handed this message before ...]           (only for a message handed out again after
        message <id> to <recipient>: ...                 a turn was cut short: what the agent sent
                                                         since, one line each)

A resumed claude session keeps the role and earlier messages in its context, so later turns carry
only the messages that arrived since the last turn.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hyperhive_agent.tools import Message

ROLE_FILES = ("CLAUDE.md", "ROLE.md")
# A role file is read up to this size: the prompt travels on claude's command line.
MAX_ROLE_FILE_BYTES = 32 * 1024
BODY_INDENT = "    "

INTRODUCTION = "You are {name}, an agent in a hyperhive: a group of Claude Code agents that talk by messages."
INSTRUCTIONS = """\
Answer by calling the mcp__hive__send tool: `to` is the sender's name, `reply_to` the id of the
message you answer. Text you write outside send reaches nobody. Call mcp__hive__peers to see who
else is in the hive; 'operator' is the human who runs it. Keep replies short, and do not answer a
message that needs no answer, or two agents can talk forever."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the agent is, as its turns' prompts say: its name and its role text (may be empty)."""

    name: str
    role: str = ""


def load_role(configured: str, work_dir: Path) -> str:
    """The agent's role: the configured text, then the first role file found in `work_dir`."""
    parts = [configured.strip()] if configured.strip() else []
    for filename in ROLE_FILES:
        path = work_dir / filename
        try:
            with path.open("rb") as file:
                text = file.read(MAX_ROLE_FILE_BYTES).decode(errors="replace").strip()
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            continue
        if text:
            parts.append(text)
        break
    return "\n\n".join(parts)


RESUMED = (
    "You were handed this message before, and that turn was cut short (the hive restarted or the agent "
    "crashed). Since then you sent what follows; do not send it again:"
)
RESUMED_NOTHING = "You were handed this message before, and that turn was cut short; you sent nothing since."
# A sent message is quoted up to this many characters in a resumed turn's prompt.
MAX_SENT_QUOTE_CHARS = 200


def format_message(message: Message) -> str:
    """One message block: its header line, its body indented by four spaces, and what was sent before."""
    answers = f" (reply_to {message.reply_to})" if message.reply_to is not None else ""
    header = f"message {message.id} from {message.sender}{answers}:"
    body = "\n".join(BODY_INDENT + line for line in (message.body.splitlines() or [""]))
    block = f"{header}\n{body}"
    if message.deliveries > 1:
        block += "\n" + (RESUMED if message.sent_before else RESUMED_NOTHING)
        for sent in message.sent_before:
            quoted = " ".join(sent.body.split())
            if len(quoted) > MAX_SENT_QUOTE_CHARS:
                quoted = quoted[: MAX_SENT_QUOTE_CHARS - 3] + "..."
            answered = f" (reply_to {sent.reply_to})" if sent.reply_to is not None else ""
            block += f"\n{BODY_INDENT}message {sent.id} to {sent.recipient}{answered}: {quoted}"
    return block


def build_prompt(identity: Identity, messages: Sequence[Message], *, new_session: bool) -> str:
    """The prompt for one turn over `messages`; the role is included only when `new_session`."""
    sections = [INTRODUCTION.format(name=identity.name)]
    if new_session and identity.role:
        sections.append(f"Your role:\n{identity.role}")
    sections.append(INSTRUCTIONS)
    sections.append("New messages:")
    sections.extend(format_message(message) for message in messages)
    return "\n\n".join(sections) + "\n"

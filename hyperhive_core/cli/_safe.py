"""Agent-controlled text made safe to show: one rule for the terminal, JSON and HTML.

Newlines and tabs stay. Every other C0 and C1 control character (ESC, CR, BEL, backspace, CSI as
U+009B, ...), DEL, a lone surrogate, the line and paragraph separators and the bidi controls
(U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C) become visible Python-style escapes
(`\\x1b`, `\\u202e`): a body can neither drive the terminal nor reorder what is shown around it.
Rich markup needs no escaping here: text goes into `rich.text.Text`, which never parses markup.
"""

import html
import json
import re
from typing import Any

from rich.text import Text

# The style that sets an escape apart from the same characters typed literally.
ESCAPE_STYLE = "reverse"
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(char: str) -> str:
    # as Python's repr writes them, so an error quoting a name with repr reads the same
    if char == "\r":
        return "\\r"
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    r"""The text with every unsafe character as a visible escape: `"a\x1b[2Jb"` -> `"a\\x1b[2Jb"`."""
    return _UNSAFE.sub(lambda m: _escape(m.group()), text)


def printable(text: str, style: str = "") -> Text:
    """Rich text that shows `text` literally: no markup, control characters as highlighted escapes."""
    out = Text(style=style)
    end = 0
    for match in _UNSAFE.finditer(text):
        out.append(text[end : match.start()])
        out.append(_escape(match.group()), style=ESCAPE_STYLE)
        end = match.end()
    out.append(text[end:])
    return out


def safe_json(value: Any, *, compact: bool = False) -> str:
    """JSON for `value`, valid and readable, with every unsafe character as a `\\uXXXX` escape.

    Non-ASCII text stays as it is; JSON already escapes C0 controls inside strings, and outside
    strings it writes only ASCII, so the substitution can only touch string contents.
    """
    text = (
        json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        if compact
        else json.dumps(value, ensure_ascii=False, indent=2)
    )
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def html_escape_literal(text: str) -> str:
    """HTML that shows `text` literally (for the dashboard): markup escaped, controls as visible escapes.

    Newlines and tabs are kept; show the result with `white-space: pre-wrap`.
    """
    return html.escape(escape_controls(text), quote=True)

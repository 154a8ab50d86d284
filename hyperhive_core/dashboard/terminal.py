"""An agent's turn events as terminal text for xterm.js: claude's words, tool calls and results, errors, cost.

Everything an agent reported goes through `escape_controls` before our own colours are added, so
an escape sequence in a model's text (ESC, CSI, OSC, BEL, a carriage return) reaches xterm.js as
visible text like `\\x1b[2J`, never as a command: the agent cannot clear, retitle or redraw the
operator's terminal. Only the SGR colour codes written here are real escapes.
"""

import json
import time
from typing import Any, cast

from hyperhive_core.cli._safe import escape_controls

RESET = "\x1b[0m"
DIM = "\x1b[2m"
BOLD = "\x1b[1m"
RED = "\x1b[31m"
GREEN = "\x1b[32m"
YELLOW = "\x1b[33m"
MAGENTA = "\x1b[35m"
CYAN = "\x1b[36m"
# A tool's arguments or result longer than this is cut (the event log keeps 16 KiB of each event).
MAX_PART_CHARS = 4_000
INDENT = "    "


def _text(value: object, limit: int = MAX_PART_CHARS) -> str:
    """Agent-controlled text made inert and bounded; JSON for anything that is not a string."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1)
    if len(text) > limit:
        text = text[:limit] + f"… ({len(text) - limit} more characters)"
    return escape_controls(text)


def _paint(colour: str, text: str) -> str:
    """`text` in `colour`, each line on its own (xterm keeps SGR across lines, a reader's eye does not)."""
    return "\n".join(f"{colour}{line}{RESET}" if line else "" for line in text.split("\n"))


def _indented(text: str) -> str:
    return text.replace("\n", "\n" + INDENT)


def _dicts(value: Any) -> list[dict[str, Any]]:
    items = cast(list[object], value) if isinstance(value, list) else []
    return [cast(dict[str, Any], item) for item in items if isinstance(item, dict)]


def _content(event: dict[str, Any]) -> list[dict[str, Any]]:
    message = event.get("message")
    return _dicts(cast(dict[str, Any], message).get("content")) if isinstance(message, dict) else []


def _result_text(block: dict[str, Any]) -> str:
    content: Any = block.get("content")
    if isinstance(content, list):
        blocks = _dicts(content)
        parts = [str(b.get("text", "")) if b.get("type") == "text" else json.dumps(b) for b in blocks]
        return "\n".join(parts)
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def describe(data: dict[str, Any]) -> str:
    """The lines (without the timestamp) that show one event."""
    kind, subtype = data.get("type"), data.get("subtype")
    if kind == "system" and subtype == "init":
        servers = ", ".join(f"{s.get('name')} {s.get('status')}" for s in _dicts(data.get("mcp_servers")))
        return _paint(
            DIM,
            _text(f"session {data.get('session_id', '?')} (model {data.get('model', '?')}; mcp: {servers or 'none'})"),
        )
    if kind == "system" and subtype == "api_retry":
        status = data.get("error_status") or "no answer"
        return _paint(YELLOW, _text(f"API error {status} ({data.get('error', '?')}); retry {data.get('attempt', '?')}"))
    if kind == "assistant":
        lines: list[str] = []
        for block in _content(data):
            if block.get("type") == "text":
                lines.append(_indented(_text(block.get("text", ""))))
            elif block.get("type") == "thinking":
                lines.append(_paint(DIM, _indented(_text(block.get("thinking", "")))))
            elif block.get("type") == "tool_use":
                name = _text(str(block.get("name", "?")), 200)
                args = _text(block.get("input", {}))
                lines.append(_paint(CYAN, f"→ {name} " + _indented(args)))
        return "\n".join(lines) or _paint(DIM, "(assistant)")
    if kind == "user":
        lines = []
        for block in _content(data):
            if block.get("type") != "tool_result":
                continue
            text = _indented(_text(_result_text(block)))
            lines.append(_paint(RED, f"← error: {text}") if block.get("is_error") else _paint(GREEN, f"← {text}"))
        return "\n".join(lines) or _paint(DIM, "(user)")
    if kind == "result":
        seconds = (data.get("duration_ms") or 0) / 1000
        summary = f"turn {'failed' if data.get('is_error') else 'done'} in {seconds:.1f} s"
        if isinstance(cost := data.get("total_cost_usd"), int | float):
            summary += f", ${cost:.4f}"
        usage = data.get("usage")
        if isinstance(usage, dict):
            usage = cast(dict[str, Any], usage)
            summary += f", tokens in {usage.get('input_tokens', 0)} out {usage.get('output_tokens', 0)}"
        if data.get("is_error") and data.get("result"):
            summary += f": {data.get('result')}"
        return _paint(BOLD + (RED if data.get("is_error") else ""), _text(summary))
    if kind == "hive" and subtype == "usage":
        tokens = [data.get(k, 0) for k in ("input_tokens", "output_tokens", "cache_read_input_tokens")]
        cost = data.get("cost_usd")
        money = f", ${cost:.4f}" if isinstance(cost, int | float) else ""
        return _paint(DIM, _text(f"[usage] tokens in {tokens[0]} out {tokens[1]} cache read {tokens[2]}{money}"))
    if kind == "hive":
        colour = BOLD + RED if subtype in ("turn_error", "refused") else MAGENTA
        return _paint(colour, _text(f"[{subtype}] {data.get('message', '')}"))
    return _paint(DIM, _text(f"{kind}: {json.dumps(data, ensure_ascii=False)}", 1_000))


def line(created_at: float, data: dict[str, Any]) -> str:
    """One event as terminal text: a dim local time, then what happened."""
    stamp = time.strftime("%H:%M:%S", time.localtime(created_at))
    return f"{DIM}{stamp}{RESET} {describe(data)}"

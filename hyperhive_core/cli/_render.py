"""Rich tables for people. Every value from an agent is wrapped in `Text`, so markup in a body is shown,
never interpreted.
"""

from datetime import datetime

from rich.table import Table
from rich.text import Text

from hyperhive_core.lifecycle.base import AgentState
from hyperhive_core.mcp.models import AgentInfo, InboxView, MessageView

STATE_STYLE = {
    AgentState.RUNNING: "green",
    AgentState.STOPPED: "yellow",
    AgentState.FAILED: "bold red",
    AgentState.MISSING: "red",
}


def age(seconds: float | None) -> str:
    """A short human duration: 42s, 5m03s, 2h10m, 3d04h."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def agents_table(agents: list[AgentInfo]) -> Table:
    """The hive, one agent a row."""
    table = Table("NAME", "STATE", "PID", "UPTIME", "UNREAD", "BACKEND", "SANDBOX", title="hive", title_justify="left")
    for a in agents:
        state = Text(a.state.value, style=STATE_STYLE.get(a.state, ""))
        if a.detail:
            state.append(f" ({a.detail})", style="dim")
        table.add_row(
            Text(a.name, style="bold"),
            state,
            str(a.pid) if a.pid else "-",
            age(a.uptime_s),
            str(a.unread),
            a.backend,
            a.sandbox or "-",
        )
    if not agents:
        table.caption = "no agents yet: hivectl spawn NAME"
    return table


def agent_panel(a: AgentInfo) -> Table:
    """One agent, one field a row."""
    table = Table(show_header=False, title=f"agent {a.name}", title_justify="left", box=None, padding=(0, 2))
    table.add_column(style="dim")
    table.add_column()
    rows: list[tuple[str, Text]] = [
        ("state", Text(a.state.value, style=STATE_STYLE.get(a.state, ""))),
        ("pid", Text(str(a.pid) if a.pid else "-")),
        ("started", Text(a.started_at.isoformat(timespec="seconds") if a.started_at else "-")),
        ("uptime", Text(age(a.uptime_s))),
        ("unread", Text(str(a.unread))),
        ("backend", Text(a.backend)),
        ("sandbox", Text(a.sandbox or "-")),
        ("socket", Text(a.socket)),
    ]
    if a.detail:
        rows.append(("detail", Text(a.detail)))
    for key, value in rows:
        table.add_row(key, value)
    return table


def _when(t: datetime) -> str:
    return t.astimezone().strftime("%H:%M:%S")


def messages_table(messages: list[MessageView], *, title: str) -> Table:
    """Messages, oldest first; bodies shown literally."""
    table = Table("ID", "TIME", "FROM", "TO", "REPLY TO", "BODY", title=title, title_justify="left")
    for m in messages:
        table.add_row(
            str(m.id),
            _when(m.created_at),
            Text(m.sender),
            Text(m.recipient),
            str(m.reply_to) if m.reply_to is not None else "",
            Text(m.body),
        )
    if not messages:
        table.caption = "no messages"
    return table


def inbox_table(view: InboxView) -> Table:
    """An inbox peek: counts in the title, queued messages below."""
    return messages_table(
        view.messages, title=f"inbox of {view.agent}: {view.queued} queued, {view.delivered} delivered unacked"
    )

"""Rich tables for people. Every value an agent may have chosen goes through `printable`: markup in a
body is shown, never interpreted, and control characters are shown as escapes, never sent to the terminal.
"""

import json
from datetime import datetime
from typing import Any, cast

from rich.table import Table
from rich.text import Text

from hyperhive_core.cli._columns import Listing
from hyperhive_core.cli._safe import printable
from hyperhive_core.durations import age
from hyperhive_core.mcp.models import (
    AgentInfo,
    BranchView,
    BudgetLimits,
    BudgetList,
    BudgetView,
    EventView,
    HiveStatus,
    InboxView,
    MessageView,
    UsageView,
)
from hyperhive_core.states import AgentState, SyncState

# The budget keeper's events in an agent's log: they say why its turns stopped.
PAUSE_EVENTS = ("paused", "held")
STATE_STYLE = {
    AgentState.RUNNING: "green",
    AgentState.STOPPED: "yellow",
    AgentState.FAILED: "bold red",
    AgentState.MISSING: "red",
}

SYNC_STYLE = {
    SyncState.READY: "green",
    SyncState.PROGRESSING: "yellow",
    SyncState.FAILED: "bold red",
    SyncState.SUSPENDED: "magenta",
}
HISTORY_STYLE = {"failed": "red", "interrupted": "yellow", "started": "yellow"}


def tokens(n: int) -> str:
    """A token count in a few characters: 950, 12.3k, 4.5M."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def usd(amount: float) -> str:
    """Dollars with cents, and more digits for the small amounts a few turns cost."""
    return f"${amount:,.2f}" if amount >= 1 or amount == 0 else f"${amount:.4f}"


def usage_text(u: UsageView) -> str:
    """`12,345 tokens, $0.1234 in 7 turns (in 10,000, out 345, cache write 0, cache read 2,000)`."""
    detail = f"in {u.input_tokens:,}, out {u.output_tokens:,}, cache write {u.cache_creation_tokens:,}, "
    detail += f"cache read {u.cache_read_tokens:,}"
    return f"{u.tokens:,} tokens, {usd(u.cost_usd)} in {u.turns} turn{'' if u.turns == 1 else 's'} ({detail})"


def limits_text(b: BudgetLimits) -> str:
    """`per day: $5.00, 1,000,000 tokens; in all: $50.00`, or `none`."""
    parts: list[str] = []
    for label, money, count in (("per day", b.usd_per_day, b.tokens_per_day), ("in all", b.usd_total, b.tokens_total)):
        limits = [usd(money)] if money is not None else []
        limits += [f"{count:,} tokens"] if count is not None else []
        if limits:
            parts.append(f"{label}: {', '.join(limits)}")
    return "; ".join(parts) or "none"


def agents_table(agents: list[AgentInfo]) -> Listing:
    """The hive, one agent a row (a hundred agents render in milliseconds: see `Listing`)."""
    table = Listing(
        ("NAME", "STATE", "SYNC", "PID", "UPTIME", "UNREAD", "REFUSED", "TOKENS", "COST", "BACKEND", "SANDBOX"),
        title="hive",
        droppable=("SANDBOX", "BACKEND", "REFUSED", "TOKENS", "COST", "SYNC", "PID", "UPTIME"),
    )
    # A hive of several hosts (a shared database): which host runs each agent.
    several_hosts = any(a.host for a in agents)
    if several_hosts:
        table.add_column("HOST")
    for a in agents:
        state = Text(a.state.value, style=STATE_STYLE.get(a.state, ""))
        if a.detail:
            state.append_text(printable(f" ({a.detail})", style="dim"))
        if a.throttled:
            state.append(" throttled", style="bold yellow")
        if a.paused:
            state.append(" paused: budget", style="bold yellow")
        table.add_row(
            printable(a.name, style="bold"),
            state,
            Text(a.sync.value, style=SYNC_STYLE.get(a.sync, "")) if a.sync else Text("-"),
            str(a.pid) if a.pid else "-",
            age(a.uptime_s),
            str(a.unread),
            Text(str(a.refused), style="yellow") if a.refused else Text("0"),
            tokens(a.usage_total.tokens),
            usd(a.usage_total.cost_usd),
            printable(a.backend),
            printable(a.sandbox or "-"),
            *([printable(a.host or "-")] if several_hosts else []),
        )
    if not agents:
        table.caption = "no agents yet: hivectl spawn NAME"
    return table


def agent_panel(a: AgentInfo) -> Table:
    """One agent, one field a row."""
    title = printable(f"agent {a.name}")
    table = Table(show_header=False, title=title, title_justify="left", box=None, padding=(0, 2))
    table.add_column(style="dim")
    table.add_column()
    state = Text(a.state.value, style=STATE_STYLE.get(a.state, ""))
    if a.paused:
        state.append(" paused: budget", style="bold yellow")
    rows: list[tuple[str, Text]] = [
        ("state", state),
        ("pid", Text(str(a.pid) if a.pid else "-")),
        ("started", Text(a.started_at.isoformat(timespec="seconds") if a.started_at else "-")),
        ("uptime", Text(age(a.uptime_s))),
        ("unread", Text(str(a.unread))),
        ("backend", printable(a.backend)),
        ("sandbox", printable(a.sandbox or "-")),
        ("socket", printable(a.socket)),
        ("driver", printable(f"{a.driver_in_use} (asked: {a.driver})" if a.driver_in_use else a.driver)),
    ]
    rows.append(("used today", Text(usage_text(a.usage_today))))
    rows.append(("used in all", Text(usage_text(a.usage_total))))
    rows.append(("budget", Text(limits_text(a.budget))))
    if a.paused:
        rows.append(("paused", printable(a.paused, style="bold yellow")))
    if a.role:
        rows.append(("role", printable(a.role)))
    if a.throttled:
        rows.append(("throttled", printable(a.throttled, style="bold yellow")))
    if a.refused:
        rows.append(("refused", printable(f"{a.refused} sends; the latest: {a.last_refusal}", style="yellow")))
    if a.detail:
        rows.append(("detail", printable(a.detail)))
    if a.containment:
        rows.append(("contained by", printable(a.containment)))
    if (r := a.resources) is not None:
        rows.append(
            (
                "memory",
                Text(
                    f"{_mib_or_dash(r.memory_bytes)} (peak {_mib_or_dash(r.memory_peak_bytes)}) "
                    f"of {_mib_or_dash(r.memory_limit_bytes)}"
                ),
            )
        )
        rows.append(("processes", Text(f"{_count(r.pids)} of {_count(r.pids_limit)}")))
        cpu_limit = "unlimited" if r.cpus_limit is None else f"{r.cpus_limit:g} CPU"
        cpu_used = "-" if r.cpu_s is None else f"{r.cpu_s:.1f} s used"
        rows.append(("cpu", Text(f"{cpu_used}; {cpu_limit}")))
        if r.oom_kills:
            rows.append(("out of memory", Text(f"{r.oom_kills} process(es) killed", style="bold red")))
    if a.sync is not None:
        sync = Text(a.sync.value, style=SYNC_STYLE.get(a.sync, ""))
        if a.sync_reason:
            sync.append_text(printable(f": {a.sync_reason}"))
        rows.append(("sync", sync))
        rows.append(("applied", Text(f"main {a.applied_rev[:12]}" if a.applied_rev else "-")))
        if a.attempted_rev and a.attempted_rev != a.applied_rev:
            rows.append(("attempted", Text(f"main {a.attempted_rev[:12]}")))
    if a.not_applied:
        rows.append(("not applied", printable(", ".join(a.not_applied), style="yellow")))
    shown = {k: v for k, v in a.settings.items() if k.startswith(("claude.", "sandbox."))}
    if shown:
        rows.append(("settings", printable("; ".join(f"{k} = {json.dumps(v)}" for k, v in shown.items()))))
    if a.branch is not None:
        rows += [(key, branch_text(a.branch, key)) for key in ("branch", "commits")]
    for entry in a.history:
        line = Text(
            f"{entry.at.astimezone():%H:%M:%S} {entry.step} {entry.state}", style=HISTORY_STYLE.get(entry.state, "")
        )
        line.append_text(printable(f": {entry.detail or entry.cause}", style="dim"))
        rows.append(("history", line))
    for key, value in rows:
        table.add_row(key, value)
    return table


def branch_text(b: BranchView, part: str) -> Text:
    """An agent's branch (`part` "branch"), or the commits on it that its repository's HEAD lacks ("commits")."""
    if part == "branch":
        return printable(f"{b.branch} of {b.repo} (its clone: {b.work_dir})")
    if b.error:
        return printable(b.error, style="yellow")
    if b.head is None:
        return Text("none yet", style="dim")
    listed = "".join(f"\n{commit}" for commit in b.commits)
    more = f"\n... and {b.ahead - len(b.commits)} more" if b.ahead > len(b.commits) else ""
    return printable(f"{b.ahead} not in the repository's HEAD (at {b.head[:12]}){listed}{more}")


def _mib_or_dash(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.0f} MiB"


def _count(n: int | None) -> str:
    return "-" if n is None else str(n)


def _when(t: datetime) -> str:
    return t.astimezone().strftime("%H:%M:%S")


def messages_table(messages: list[MessageView], *, title: str) -> Table:
    """Messages, oldest first; bodies shown literally."""
    table = Table("ID", "TIME", "FROM", "TO", "REPLY TO", "BODY", title=printable(title), title_justify="left")
    for m in messages:
        table.add_row(
            str(m.id),
            _when(m.created_at),
            printable(m.sender),
            printable(m.recipient),
            str(m.reply_to) if m.reply_to is not None else "",
            printable(m.body),
        )
    if not messages:
        table.caption = "no messages"
    return table


def inbox_table(view: InboxView) -> Table:
    """An inbox peek: counts in the title, queued messages below, refused sends to it in the caption."""
    table = messages_table(
        view.messages, title=f"inbox of {view.agent}: {view.queued} queued, {view.delivered} delivered unacked"
    )
    if view.refused:
        latest = view.refused[-1]
        note = Text(f"{len(view.refused)} sends to {view.agent} were refused; the latest, from ", style="yellow")
        note.append_text(printable(latest.sender, style="bold yellow"))
        note.append(": ", style="yellow")
        note.append_text(printable(latest.reason, style="yellow"))
        table.caption = note
    return table


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def hive_panel(h: HiveStatus) -> Table:
    """The hive as a whole, one field a row, warnings last."""
    table = Table(show_header=False, title="hive", title_justify="left", box=None, padding=(0, 2))
    table.add_column(style="dim")
    table.add_column()
    counts = ", ".join(f"{n} {state.value}" for state, n in sorted(h.messages.items())) or "none"
    limit = f" of {_mib(h.database_limit_bytes)}" if h.database_limit_bytes else ""
    rows: list[tuple[str, Text]] = [
        ("daemon", Text(f"pid {h.pid}, up {age(h.uptime_s)}, backend {h.backend}")),
        ("agents", Text(str(h.agents))),
        ("messages", Text(counts)),
        ("database", Text(f"{_mib(h.database_bytes)}{limit}")),
        ("disk free", Text(f"{_mib(h.disk_free_bytes)} (new messages refused below {_mib(h.min_free_bytes)})")),
        ("used today", Text(usage_text(h.usage_today))),
        ("used in all", Text(usage_text(h.usage_total))),
        ("budget", Text(limits_text(h.budget))),
        ("state dir", printable(h.state_dir)),
        ("run dir", printable(h.run_dir)),
    ]
    if h.state_repo:
        rows.append(("main", printable(f"{h.main[:12] if h.main else '-'} in {h.state_repo}")))
        rows.append(("proposals", Text(f"{h.pending_proposals} waiting for a verdict")))
    rows.extend(("warning", printable(w, style="bold yellow")) for w in h.warnings)
    for key, value in rows:
        table.add_row(key, value)
    return table


def budgets_table(budgets: BudgetList) -> Table:
    """The hive's budget first, then each agent's: what it used against its limits."""
    table = Table(
        *("BUDGET", "TODAY", "IN ALL", "LIMITS", "STATE"),
        title=f"budgets (UTC day {budgets.hive.day})",
        title_justify="left",
    )
    for view in (budgets.hive, *budgets.agents):
        state = printable(view.paused, style="bold yellow") if view.paused else Text("ok", style="green")
        table.add_row(
            printable(view.scope, style="bold"),
            Text(f"{tokens(view.today.tokens)} tokens, {usd(view.today.cost_usd)}"),
            Text(f"{tokens(view.total.tokens)} tokens, {usd(view.total.cost_usd)}"),
            Text(limits_text(view.limits)),
            state,
        )
    table.caption = "hivectl budget [NAME] --usd-per-day X --tokens-per-day N --usd-total X --tokens-total N"
    return table


def budget_panel(view: BudgetView) -> Table:
    """One budget, one field a row."""
    title = "budget of the hive" if view.scope == "hive" else f"budget of {view.scope}"
    table = Table(show_header=False, title=printable(title), title_justify="left", box=None, padding=(0, 2))
    table.add_column(style="dim")
    table.add_column()
    table.add_row("limits", Text(limits_text(view.limits)))
    table.add_row(f"used today ({view.day} UTC)", Text(usage_text(view.today)))
    table.add_row("used in all", Text(usage_text(view.total)))
    table.add_row("paused", printable(view.paused, style="bold yellow") if view.paused else Text("no"))
    return table


def _short(value: object, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dicts(value: object) -> list[dict[str, Any]]:
    items = cast(list[object], value) if isinstance(value, list) else []
    return [cast(dict[str, Any], item) for item in items if isinstance(item, dict)]


def _blocks(event: dict[str, Any]) -> list[dict[str, Any]]:
    message = event.get("message")
    return _dicts(cast(dict[str, Any], message).get("content")) if isinstance(message, dict) else []


def _describe(data: dict[str, Any]) -> tuple[str, str]:
    """A style and a one-line summary for a claude stream-json event or a turn-loop event."""
    kind, subtype = data.get("type"), data.get("subtype")
    if kind == "system" and subtype == "init":
        servers = ", ".join(f"{s.get('name')} {s.get('status')}" for s in _dicts(data.get("mcp_servers")))
        model = data.get("model", "?")
        return "dim", f"session {data.get('session_id', '?')} started (model {model}; mcp: {servers or 'none'})"
    if kind == "system" and subtype == "api_retry":
        status = data.get("error_status") or "no answer"
        delay_s = (data.get("retry_delay_ms") or 0) / 1000
        attempt = f"{data.get('attempt', '?')}/{data.get('max_retries', '?')}"
        return "yellow", f"API error {status} ({data.get('error', '?')}); retry {attempt} in {delay_s:.1f} s"
    if kind == "assistant":
        parts: list[str] = []
        for block in _blocks(data):
            if block.get("type") == "text":
                parts.append(_short(block.get("text", "")))
            elif block.get("type") == "tool_use":
                parts.append(f"→ {block.get('name')} {_short(block.get('input', {}))}")
        return "cyan", " | ".join(parts) or "(assistant)"
    if kind == "user":
        results = [b for b in _blocks(data) if b.get("type") == "tool_result"]
        if results:
            marks = ["error: " if r.get("is_error") else "" for r in results]
            return "green", " | ".join(
                f"← {m}{_short(r.get('content', ''))}" for m, r in zip(marks, results, strict=True)
            )
        return "dim", "(user)"
    if kind == "result":
        cost = data.get("total_cost_usd")
        seconds = (data.get("duration_ms") or 0) / 1000
        outcome = "failed" if data.get("is_error") else "done"
        summary = f"turn {outcome} in {seconds:.1f} s, {data.get('num_turns', '?')} turns"
        if cost is not None:
            summary += f", ${cost:.4f}"
        return ("bold red" if data.get("is_error") else "bold"), summary
    if kind == "hive":
        if subtype in ("turn_error", "reconcile_error", "died"):
            style = "bold red"
        else:
            style = "bold yellow" if subtype in PAUSE_EVENTS else "magenta"
        return style, f"[{subtype}] {_short(data.get('message', ''), 400)}"
    return "dim", f"{kind}: {_short(data)}"


def event_line(event: EventView) -> Text:
    """One turn event as one readable line; the text is the agent's, shown literally."""
    style, summary = _describe(event.data)
    line = Text(f"{_when(event.created_at)} ", style="dim")
    line.append_text(printable(summary, style=style))
    return line

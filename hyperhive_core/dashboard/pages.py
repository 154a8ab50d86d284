"""The dashboard's pages and partials, as HTML built by `html.render` (every value escaped).

One layout with a nav; each view is a route rendering a page, plus the partials htmx swaps in.
A new view is one more `NAV` entry, a route and a partial (approvals.py and history.py hold two).
"""

import json
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from hyperhive_core.dashboard.html import Html, join, render
from hyperhive_core.dashboard.queries import Message
from hyperhive_core.durations import age
from hyperhive_core.mcp.models import AgentInfo
from hyperhive_core.names import OPERATOR
from hyperhive_core.states import AgentState, SyncState

EMPTY = Html("")
# (path, label): the views in the order the nav shows them.
NAV: tuple[tuple[str, str], ...] = (
    ("/agents", "Agents"),
    ("/messages", "Messages"),
    ("/terminal", "Terminal"),
    ("/approvals", "Approvals"),
    ("/history", "History"),
    ("/stats", "Stats"),
)
# A body longer than this is cut in the stream; its thread shows it whole.
STREAM_BODY_CHARS = 2_000
HTMX_CONFIG = json.dumps(
    {
        # No eval and no scripts from swapped content: the CSP forbids both, and agents write content.
        "allowEval": False,
        "allowScriptTags": False,
        "includeIndicatorStyles": False,
        "selfRequestsOnly": True,
        "historyCacheSize": 0,
        # A refused action (4xx) is still shown: its answer says why.
        "responseHandling": [
            {"code": "204", "swap": False},
            {"code": "[23]..", "swap": True},
            {"code": "4..", "swap": True, "error": False},
            {"code": "...", "swap": False, "error": True},
        ],
    }
)
LAYOUT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{title} · hyperhive</title>
<meta name="hyperhive-csrf" content="{csrf}">
<meta name="htmx-config" content="{htmx_config}">
<link rel="stylesheet" href="/static/app.css">
{head}<script src="/static/vendor/htmx/htmx.min.js" defer></script>
<script src="/static/app.js" defer></script>
</head>
<body data-view="{view}">
<header class="top"><a class="brand" href="/agents">hyperhive</a><nav>{nav}</nav>
<span id="conn" class="conn"></span></header>
<main>{content}</main>
<div id="notice" class="notice" role="status" aria-live="polite"></div>
</body>
</html>
"""
SYNC_CLASS = {
    SyncState.READY: "ok",
    SyncState.PROGRESSING: "idle",
    SyncState.FAILED: "bad",
    SyncState.SUSPENDED: "idle",
}
STATE_CLASS = {
    AgentState.RUNNING: "ok",
    AgentState.STOPPED: "idle",
    AgentState.FAILED: "bad",
    AgentState.MISSING: "bad",
}


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def layout(*, title: str, view: str, csrf: str, content: Html, head: Html = EMPTY) -> Html:
    """A whole page: the nav, the view's content, and the page's scripts."""
    nav = join(
        render('<a href="{path}"{current}>{label}</a>', path=path, label=label, current=Html(' aria-current="page"'))
        if path == f"/{view}"
        else render('<a href="{path}">{label}</a>', path=path, label=label)
        for path, label in NAV
    )
    return render(
        LAYOUT, title=title, csrf=csrf, htmx_config=HTMX_CONFIG, head=head, view=view, nav=nav, content=content
    )


# agents


def _money(usd: float) -> str:
    return f"${usd:.4f}" if usd else "-"


def host_down(agent: AgentInfo, here: str) -> bool:
    """Whether `agent` runs on another host whose daemon stopped heart-beating (`Hive.list` shows
    such agents as missing; this daemon's own agents are on a live host: this one)."""
    return agent.host != here and agent.state == AgentState.MISSING


def agent_row(agent: AgentInfo, *, sent: int, last_at: float | None, here: str | None = None) -> Html:
    """One agent: state and why, driver, uptime, counts, activity, usage, flags, and its buttons.

    `here`: this daemon's host, in a hive of several hosts (the row then shows the agent's host,
    and marks an agent of a down host); None on one host.
    """
    down = here is not None and host_down(agent, here)
    failing = agent.state in (AgentState.FAILED, AgentState.MISSING) and not down
    flags: list[Html] = []
    if down:
        flags.append(render('<span class="flag bad" title="{why}">host down</span>', why=agent.detail))
    if agent.paused:
        flags.append(render('<span class="flag warn" title="{why}">paused: budget</span>', why=agent.paused))
    if agent.throttled:
        flags.append(render('<span class="flag warn" title="{why}">throttled</span>', why=agent.throttled))
    if agent.refused:
        flags.append(
            render('<span class="flag warn" title="{why}">{n} refused</span>', why=agent.last_refusal, n=agent.refused)
        )
    if failing:
        flags.append(Html('<span class="flag bad">failing</span>'))
    driver = agent.driver_in_use or "-"
    suspended = agent.sync == SyncState.SUSPENDED
    if suspended:
        hold = render(
            '<button type="button" hx-post="/api/agents/{name}/resume" hx-target="#notice" '
            'title="reconcile it to main again, now">resume</button>',
            name=agent.name,
        )
    else:
        hold = render(
            '<button type="button" hx-post="/api/agents/{name}/suspend" hx-target="#notice" '
            'title="stop reconciling it: no restarts, no change from main, until resumed">suspend</button>',
            name=agent.name,
        )
    return render(
        """<tr class="agent{failing}" id="agent-{name}" data-agent="{name}"
 data-state="{state}" data-sync="{sync_state}" data-host="{host}">
<td class="name"><a href="/terminal/{name}">{name}</a><div class="role">{role}</div></td>{host_cell}
<td><span class="badge {state_class}">{state}</span><div class="detail">{detail}</div>{flags}</td>
<td class="sync">{sync}<div class="detail">{sync_reason}</div></td>
<td>{backend}<div class="dim">{sandbox}</div></td>
<td>{driver_in_use}<div class="dim">asked: {driver}</div></td>
<td class="num">{uptime}</td>
<td class="num">{unread}</td>
<td class="num">{sent}</td>
<td class="num" title="{last_iso}">{last}</td>
<td class="num" title="today: {tokens_today}">{tokens}</td>
<td class="num" title="today: {cost_today}">{cost}</td>
<td class="actions">
<button type="button" hx-post="/api/agents/{name}/rebuild" hx-target="#notice">rebuild</button>
<button type="button" class="danger" hx-post="/api/agents/{name}/kill" hx-target="#notice"
 hx-confirm="Kill {name}? It stops and leaves the hive; its messages stay.">kill</button>
{hold}
</td>
</tr>
""",
        failing=Html(" failing") if failing else Html(" down") if down else Html(" suspended") if suspended else EMPTY,
        host=agent.host,
        host_cell=EMPTY if here is None else render('<td class="host">{host}</td>', host=agent.host or here),
        sync=render('<span class="badge {cls}">{s}</span>', cls=SYNC_CLASS.get(agent.sync, ""), s=agent.sync.value)
        if agent.sync is not None
        else Html('<span class="dim">-</span>'),
        sync_reason=agent.sync_reason,
        sync_state=agent.sync.value if agent.sync is not None else "",
        hold=hold,
        name=agent.name,
        role=agent.role,
        state=agent.state.value,
        state_class=STATE_CLASS.get(agent.state, ""),
        detail=agent.detail,
        flags=join(flags, " "),
        backend=agent.backend,
        sandbox=agent.sandbox or "-",
        driver_in_use=driver,
        driver=agent.driver,
        uptime=age(agent.uptime_s),
        unread=agent.unread,
        sent=sent,
        last=age(time.time() - last_at) + " ago" if last_at else "-",
        last_iso=_iso(last_at) if last_at else "",
        tokens=f"{agent.usage_total.tokens:,}" if agent.usage_total.tokens else "-",
        cost=_money(agent.usage_total.cost_usd),
        tokens_today=f"{agent.usage_today.tokens:,}",
        cost_today=_money(agent.usage_today.cost_usd),
    )


def agents_body(rows: Sequence[Html], *, hosts: bool = False) -> Html:
    """The table body htmx refreshes every few seconds and after every action (`hosts`: with the host column)."""
    body = join(rows) or render(
        '<tr><td colspan="{n}" class="empty">no agents yet: <code>hivectl spawn NAME</code></td></tr>',
        n=13 if hosts else 12,
    )
    return render(
        # hx-disinherit: the buttons inside answer into #notice (innerHTML), not with this outerHTML swap.
        '<tbody id="agents-body" hx-get="/partials/agents" hx-trigger="every 5s, hive-changed from:body" '
        'hx-swap="outerHTML" hx-disinherit="*">{body}</tbody>',
        body=body,
    )


def agents_view(body: Html, count: int, *, hosts: bool = False) -> Html:
    """The agents view (`hosts`: a hive of several hosts, with a column for each agent's host)."""
    return render(
        """<section class="view">
<h1>Agents <small>{count}</small></h1>
<table class="agents">
<thead><tr><th>agent</th>{host}<th>state</th><th>against main</th><th>backend</th><th>driver</th><th>up</th>
<th>unread</th><th>sent</th><th>last active</th><th>tokens</th><th>cost</th><th></th></tr></thead>
{body}
</table>
</section>""",
        count=count,
        body=body,
        host=Html("<th>host</th>") if hosts else EMPTY,
    )


# messages


def message_item(message: Message, *, whole: bool = False, current: bool = False) -> Html:
    """One message: who to whom, when, what it answers, and its body as text."""
    body = message.body
    cut = ""
    if not whole and len(body) > STREAM_BODY_CHARS:
        cut = f"… {len(body) - STREAM_BODY_CHARS} more characters: open the thread"
        body = body[:STREAM_BODY_CHARS]
    return render(
        """<article class="msg{current}" id="m-{id}" data-id="{id}" data-sender="{sender}" data-recipient="{recipient}">
<header><button type="button" class="link" hx-get="/partials/thread/{id}" hx-target="#thread">#{id}</button>
<span class="who"><b>{sender}</b> → <b>{recipient}</b></span>{reply}
<time datetime="{iso}">{clock}</time>
<button type="button" class="link reply-btn" data-reply-id="{id}" data-reply-to="{sender}">reply</button></header>
<div class="body">{body}</div>{cut}
</article>""",
        current=Html(" current") if current else EMPTY,
        id=message.id,
        sender=message.sender,
        recipient=message.recipient,
        reply=render(' <span class="reply">↩ #{to}</span>', to=message.reply_to) if message.reply_to else EMPTY,
        iso=_iso(message.created_at),
        clock=_clock(message.created_at),
        body=body,
        cut=render('<div class="cut">{cut}</div>', cut=cut) if cut else EMPTY,
    )


def _options(names: Iterable[str], selected: str | None, *, blank: str | None = None) -> Html:
    options = [render('<option value="">{blank}</option>', blank=blank)] if blank is not None else []
    for name in names:
        if name == selected:
            options.append(render('<option value="{n}" selected>{n}</option>', n=name))
        else:
            options.append(render('<option value="{n}">{n}</option>', n=name))
    return join(options)


def messages_view(messages: Sequence[Message], *, agents: Sequence[str], agent: str | None, last_id: int) -> Html:
    """The live stream (newest first), the filter, the thread panel and the operator's send form."""
    items = join(message_item(m) for m in reversed(messages))
    return render(
        """<section class="view messages">
<div class="toolbar">
<form class="filter" method="get" action="/messages">
<label>agent <select name="agent" id="agent-filter">{filter}</select></label>
<noscript><button>filter</button></noscript>
</form>
<form id="send-form" class="send" hx-post="/api/send" hx-target="#notice" autocomplete="off">
<label>to <select name="to" id="send-to">{to}</select></label>
<input type="hidden" name="reply_to" id="send-reply-to" value="">
<span id="send-reply-note" class="dim"></span>
<textarea name="body" id="send-body" rows="2" placeholder="a message, sent as the operator" required></textarea>
<button type="submit">send</button>
</form>
</div>
<div class="cols">
<div id="stream" class="stream" data-after="{last_id}" data-agent="{agent}">{items}</div>
<aside id="thread" class="thread"><p class="dim">Open a message (its #id) to see its thread.</p></aside>
</div>
</section>""",
        filter=_options(agents, agent, blank="all"),
        to=_options([a for a in agents if a != OPERATOR], agent),
        last_id=last_id,
        agent=agent or "",
        items=items,
    )


def thread_view(messages: Sequence[Message], current: int) -> Html:
    """A message's thread, oldest first, the opened message marked, bodies whole."""
    if not messages:
        return Html('<p class="dim">no such message</p>')
    items = join(message_item(m, whole=True, current=m.id == current) for m in messages)
    return render('<h2>thread of #{id}</h2><div class="thread-items">{items}</div>', id=current, items=items)


# terminal


def terminal_view(agent: AgentInfo | None, agents: Sequence[str]) -> Html:
    """An agent's terminal (its turn events in xterm.js), with a picker for the others."""
    picker = join(
        render('<a href="/terminal/{n}"{cur}>{n}</a>', n=name, cur=Html(' aria-current="page"'))
        if agent is not None and name == agent.name
        else render('<a href="/terminal/{n}">{n}</a>', n=name)
        for name in agents
    )
    if agent is None:
        return render(
            '<section class="view"><h1>Terminal</h1><p>Pick an agent:</p><nav class="picker">{picker}</nav></section>',
            picker=picker or Html('<span class="dim">no agents yet</span>'),
        )
    return render(
        """<section class="view terminal">
<h1>{name} <span class="badge {cls}">{state}</span> <small>{driver}</small></h1>
<nav class="picker">{picker}</nav>
<div id="term" class="term" data-agent="{name}"></div>
</section>""",
        name=agent.name,
        cls=STATE_CLASS.get(agent.state, ""),
        state=agent.state.value,
        driver=agent.driver_in_use,
        picker=picker,
    )


TERMINAL_HEAD = Html(
    '<link rel="stylesheet" href="/static/vendor/xterm/xterm.css">\n'
    '<script src="/static/vendor/xterm/xterm.js" defer></script>\n'
    '<script src="/static/vendor/xterm-addon-fit/addon-fit.js" defer></script>\n'
)


# stats

STATS_HEAD = Html(
    '<link rel="stylesheet" href="/static/vendor/uplot/uPlot.min.css">\n'
    '<script src="/static/vendor/uplot/uPlot.iife.min.js" defer></script>\n'
)


def stats_view(window_s: int) -> Html:
    """The charts' frame; app.js fetches the samples and draws them with uPlot."""
    return render(
        """<section class="view stats">
<h1>Stats <small>the last hour, sampled every few seconds</small></h1>
<div id="charts" class="charts" data-src="/api/stats?window_s={window_s}" data-window="{window_s}"></div>
</section>""",
        window_s=window_s,
    )


def notice(text: str, *, ok: bool = True) -> Html:
    """A one-line outcome shown at the foot of the page."""
    return render('<p class="{cls}">{text}</p>', cls="ok" if ok else "bad", text=text)


def plain_page(title: str, text: str, csrf: str) -> Html:
    """A page with one paragraph (errors, not found)."""
    return layout(title=title, view="", csrf=csrf, content=render('<section class="view"><p>{t}</p></section>', t=text))

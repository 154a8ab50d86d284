"""The approvals view: pending proposals (message, diff, plan, approve and deny) and the decided ones.

Everything here comes from the operator's tools (`approvals`, `approval`), as `hivectl approvals`
shows it. The proposer (the manager) wrote the summary, the message and the agent files: all of it
is escaped by `render`. A card's diff and plan (a git diff and a plan each, the costly part) load
on their own once the card is on screen, so the page opens at once however many proposals wait.
The view refreshes itself only when something changed: a poll of a small fingerprint (`watch`)
that answers 204 while the proposals stand as they were, so a reason being typed into a deny form
is not wiped every few seconds.
"""

import hashlib
import time
from collections.abc import Sequence
from datetime import datetime

from hyperhive_core.approvals.views import PlanView, ProposalDetail, ProposalView
from hyperhive_core.dashboard.diffs import diff_html
from hyperhive_core.dashboard.html import Html, join, render
from hyperhive_core.states import ProposalState

EMPTY = Html("")
MAX_PENDING = 200
MAX_DECIDED = 100
WATCH_EVERY_S = 4
STATE_CLASS = {
    ProposalState.PROPOSED: "idle",
    ProposalState.APPROVED: "ok",
    ProposalState.APPLYING: "idle",
    ProposalState.APPLIED: "ok",
    ProposalState.DENIED: "bad",
    ProposalState.STALE: "bad",
    ProposalState.EXPIRED: "",
    ProposalState.DEGRADED: "bad",
}


def _ago(at: datetime | None) -> str:
    if at is None:
        return "-"
    s = int(max(time.time() - at.timestamp(), 0))
    if s < 60:
        return f"{s}s ago"
    if s < 3600:
        return f"{s // 60}m ago"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m ago"
    return f"{s // 86400}d ago"


def _when(at: datetime | None) -> Html:
    if at is None:
        return Html("-")
    return render(
        '<time datetime="{iso}" title="{iso}">{ago}</time>', iso=at.isoformat(timespec="seconds"), ago=_ago(at)
    )


def fingerprint(pending: Sequence[ProposalView], decided: Sequence[ProposalView]) -> str:
    """What the view shows, in a few characters: it changes when a proposal comes, goes or moves on."""
    text = ";".join(f"{p.id}:{p.state.value}" for p in [*pending, *decided])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_html(plan: PlanView) -> Html:
    """What approving now would do, one agent a row."""
    if plan.error is not None:
        return render('<p class="bad">main is refused: {e}</p>', e=plan.error)
    if not plan.steps:
        return Html('<p class="dim">nothing would change in the running hive</p>')
    rows = join(
        render(
            '<tr><td class="name">{agent}</td><td><span class="action {action}">{action}</span></td>'
            "<td>{reason}{notes}</td></tr>",
            agent=s.agent,
            action=s.action,
            reason=s.reason,
            notes=join(render('<div class="dim">{n}</div>', n=n) for n in s.notes),
        )
        for s in plan.steps
    )
    return render(
        '<table class="plan"><thead><tr><th>agent</th><th>action</th><th>why</th></tr></thead>'
        "<tbody>{rows}</tbody></table>",
        rows=rows,
    )


def proposal_detail(detail: ProposalDetail) -> Html:
    """What a card loads once shown: the diff of the proposal's files, and what approving it now would do."""
    conflicts = (
        render(
            '<p class="bad">stale: main changed {files} since this was proposed; approving is refused</p>',
            files=", ".join(detail.conflicts),
        )
        if detail.conflicts
        else EMPTY
    )
    return render(
        "{conflicts}<h3>diff</h3>\n{diff}\n<h3>if approved now</h3>\n{plan}",
        conflicts=conflicts,
        diff=diff_html(detail.diff),
        plan=plan_html(detail.plan),
    )


def proposal_card(p: ProposalView) -> Html:
    """A pending proposal: who, what, why, the verdict buttons; its diff and plan load once it is shown."""
    return render(
        """<article class="proposal" id="proposal-{id}" data-id="{id}" data-state="{state}">
<header><b>#{id}</b> <span class="summary">{summary}</span>
<span class="dim">from <b>{proposer}</b>, {when}; expires {expires}; base {base}</span></header>
<div class="message">{message}</div>
<div class="detail" hx-get="/partials/approvals/{id}" hx-trigger="revealed" hx-swap="innerHTML">
<p class="dim">loading its diff and plan…</p></div>
<div class="verdict">
<button type="button" class="approve" hx-post="/api/approvals/{id}/approve" hx-target="#notice"
 hx-disabled-elt="this">approve</button>
<form class="deny" hx-post="/api/approvals/{id}/deny" hx-target="#notice" autocomplete="off">
<input type="text" name="reason" required maxlength="4000" placeholder="why not (the proposer reads it)">
<button type="submit" class="danger">deny</button>
</form>
</div>
</article>""",
        id=p.id,
        state=p.state.value,
        summary=p.summary,
        proposer=p.proposer,
        when=_when(p.created_at),
        expires=_when_ahead(p.expires_at),
        base=p.base[:12],
        message=p.message or Html('<span class="dim">(no message)</span>'),
    )


def _when_ahead(at: datetime) -> Html:
    s = int(at.timestamp() - time.time())
    words = "now" if s <= 0 else f"in {s // 60}m" if s < 3600 else f"in {s // 3600}h{s % 3600 // 60:02d}m"
    return render('<time datetime="{iso}" title="{iso}">{w}</time>', iso=at.isoformat(timespec="seconds"), w=words)


def decided_table(decided: Sequence[ProposalView]) -> Html:
    """The decided proposals, newest first: what, from whom, the outcome, who decided, when, why."""
    if not decided:
        return Html('<p class="dim">no decided proposals yet</p>')
    rows = join(
        render(
            """<tr id="decided-{id}" data-state="{state}"><td class="num">#{id}</td>
<td>{summary}</td><td>{proposer}</td><td><span class="badge {cls}">{state}</span></td>
<td>{by}</td><td>{when}</td><td class="reason">{reason}</td><td class="dim">{merged}</td></tr>""",
            id=p.id,
            summary=p.summary,
            proposer=p.proposer,
            state=p.state.value,
            cls=STATE_CLASS.get(p.state, ""),
            by=p.decided_by or "-",
            when=_when(p.decided_at),
            reason=p.reason or "-",
            merged=p.merged_rev[:12] if p.merged_rev else "",
        )
        for p in decided
    )
    return render(
        """<table class="decided"><thead><tr><th>id</th><th>what</th><th>from</th><th>state</th><th>decided by</th>
<th>when</th><th>reason</th><th>merged</th></tr></thead><tbody>{rows}</tbody></table>""",
        rows=rows,
    )


def approvals_body(pending: Sequence[ProposalView], decided: Sequence[ProposalView]) -> Html:
    """The part of the view that refreshes: the pending cards and the decided table."""
    more = (
        render('<p class="dim">the newest {n} shown: <code>hivectl approvals</code> lists them all</p>', n=MAX_PENDING)
        if len(pending) >= MAX_PENDING
        else EMPTY
    )
    cards = join(proposal_card(p) for p in pending) or Html(
        '<p class="empty">nothing waits for a verdict: the manager\'s proposals appear here</p>'
    )
    return render(
        """<div id="approvals-body" hx-get="/partials/approvals" hx-swap="outerHTML" hx-disinherit="*"
 hx-trigger="approvals-changed from:body, hive-changed from:body">
<span hidden hx-get="/partials/approvals/watch?seen={seen}" hx-trigger="every {every}s" hx-swap="none"></span>
<h2>pending <small>{count}</small></h2>
<div class="proposals">{cards}</div>{more}
<h2>decided</h2>
{decided}
</div>""",
        seen=fingerprint(pending, decided),
        every=WATCH_EVERY_S,
        count=len(pending),
        cards=cards,
        more=more,
        decided=decided_table(decided),
    )


def approvals_view(body: Html) -> Html:
    """The approvals view."""
    return render('<section class="view approvals"><h1>Approvals</h1>{body}</section>', body=body)

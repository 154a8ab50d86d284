"""Rich views of the approvals and the reconciler: proposals, a proposal with its coloured diff, plans,
reconcile reports. Every string a proposer or a file chose goes through `printable`."""

from datetime import UTC, datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from hyperhive_core.approvals.views import PlanView, ProposalDetail, ProposalView, ReconcileReport, Verdict
from hyperhive_core.cli._safe import printable
from hyperhive_core.durations import age
from hyperhive_core.states import ProposalState

PROPOSAL_STYLE = {
    ProposalState.PROPOSED: "bold yellow",
    ProposalState.APPROVED: "cyan",
    ProposalState.APPLYING: "cyan",
    ProposalState.APPLIED: "green",
    ProposalState.DEGRADED: "bold red",
    ProposalState.DENIED: "red",
    ProposalState.STALE: "magenta",
    ProposalState.EXPIRED: "dim",
}
ACTION_STYLE = {
    "create": "green",
    "start": "green",
    "restart": "yellow",
    "rebuild": "yellow",
    "remove": "red",
    "prune": "red",
    "depart": "red",
    "wait": "dim",
    "suspended": "magenta",
    "unmanaged": "bold magenta",
    "unplaced": "bold magenta",
    "elsewhere": "dim",
}


def _ago(t: datetime) -> str:
    return age((datetime.now(UTC) - t).total_seconds())


def short(rev: str | None) -> str:
    """A commit as people write it."""
    return rev[:12] if rev else "-"


def proposals_table(proposals: list[ProposalView], *, title: str) -> Table:
    """Proposals, one a row: id, who, what, age, state (and why, once decided)."""
    table = Table("ID", "FROM", "WHAT", "AGE", "STATE", title=title, title_justify="left")
    for p in proposals:
        state = Text(p.state.value, style=PROPOSAL_STYLE.get(p.state, ""))
        if p.reason and p.state != ProposalState.PROPOSED:
            state.append_text(printable(f" ({p.reason})", style="dim"))
        table.add_row(str(p.id), printable(p.proposer), printable(p.summary), _ago(p.created_at), state)
    if not proposals:
        table.caption = "no proposals"
    return table


def diff_text(diff: str) -> Text:
    """A unified diff, coloured like git's: additions green, removals red, hunks cyan."""
    out = Text()
    for line in diff.splitlines():
        if line.startswith(("+++", "---", "diff --git", "index ")):
            style = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        else:
            style = ""
        out.append_text(printable(line, style=style))
        out.append("\n")
    return out


def plan_table(plan: PlanView, *, title: str = "plan") -> RenderableType:
    """What a reconcile would do, one agent a row; the error first when main is refused."""
    head = f"{title}: main {short(plan.rev)}, {len(plan.steps)} to change, {plan.in_sync} in sync"
    table = Table("AGENT", "ACTION", "WHY", title=head, title_justify="left")
    for step in plan.steps:
        why = printable(step.reason)
        for note in step.notes:
            why.append_text(printable(f"\n{note}", style="dim"))
        table.add_row(
            printable(step.agent, style="bold"), Text(step.action, style=ACTION_STYLE.get(step.action, "")), why
        )
    if plan.error is not None:
        return Group(printable(f"error: {plan.error}", style="bold red"), table)
    if plan.stale is not None:
        return Group(printable(f"warning: {plan.stale}", style="bold yellow"), table)
    if not plan.steps:
        table.caption = "nothing to do: the running hive is main"
    return table


def report_table(report: ReconcileReport) -> RenderableType:
    """What a reconcile did."""
    table = Table(
        "AGENT", "ACTION", "RESULT", "DETAIL", title=f"reconcile of main {short(report.rev)}", title_justify="left"
    )
    for step in report.steps:
        result = Text("ok", style="green") if step.ok else Text("failed", style="bold red")
        table.add_row(
            printable(step.agent),
            Text(step.action, style=ACTION_STYLE.get(step.action, "")),
            result,
            printable(step.detail),
        )
    if report.error is not None:
        return Group(printable(f"error: {report.error}", style="bold red"), table)
    if not report.steps:
        table.caption = "nothing to do: the running hive is main"
    return table


def proposal_panel(detail: ProposalDetail) -> RenderableType:
    """A proposal: who, what, why, its diff, and what approving it now would do."""
    p = detail.proposal
    table = Table(show_header=False, title=f"proposal {p.id}", title_justify="left", box=None, padding=(0, 2))
    table.add_column(style="dim")
    table.add_column()
    rows: list[tuple[str, Text]] = [
        ("what", printable(p.summary, style="bold")),
        ("from", printable(p.proposer)),
        ("state", Text(p.state.value, style=PROPOSAL_STYLE.get(p.state, ""))),
        ("proposed", Text(f"{p.created_at.astimezone():%Y-%m-%d %H:%M:%S} ({_ago(p.created_at)} ago)")),
        ("expires", Text(f"{p.expires_at.astimezone():%Y-%m-%d %H:%M:%S}")),
        ("base", Text(short(p.base))),
        ("branch", printable(p.branch)),
    ]
    if p.decided_by:
        rows.append(("decided by", printable(p.decided_by)))
    if p.reason:
        rows.append(("reason", printable(p.reason)))
    if p.merged_rev:
        rows.append(("merged as", Text(short(p.merged_rev))))
    if detail.conflicts:
        rows.append(("stale", printable(f"main changed {', '.join(detail.conflicts)} since its base", style="magenta")))
    for key, value in rows:
        table.add_row(key, value)
    parts: list[RenderableType] = [table]
    if p.message:
        parts += [Text("\nmessage", style="dim"), printable(p.message)]
    parts += [Text("\ndiff", style="dim"), diff_text(detail.diff)]
    if p.state == ProposalState.PROPOSED and not detail.conflicts:
        parts.append(plan_table(detail.plan, title="if approved now"))
    return Group(*parts)


def verdict_line(verdict: Verdict) -> Text:
    """One line: what became of the proposal."""
    p = verdict.proposal
    line = Text(f"proposal {p.id} ", style="bold")
    line.append_text(printable(f"({p.summary})"))
    line.append(" ")
    line.append(p.state.value, style=PROPOSAL_STYLE.get(p.state, ""))
    if p.reason:
        line.append_text(printable(f": {p.reason}"))
    return line

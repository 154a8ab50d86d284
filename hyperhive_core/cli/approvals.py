"""The approval and reconcile verbs of hivectl: approvals (and `approvals show`), approve, deny, plan,
reconcile, suspend, resume, rollback.

`plan` exits 0 when the running hive is main, 1 when it differs, 2 on an error (a refused main, no
daemon), like `flux diff` and `argocd app diff`.
"""

from typing import Annotated, Any

import typer

from hyperhive_core.approvals.views import (
    CommitReceipt,
    PlanView,
    ProposalDetail,
    ProposalList,
    ReconcileReport,
    Verdict,
)
from hyperhive_core.cli._client import OperatorClient
from hyperhive_core.cli._common import Json, RunDir, StateDir, call_daemon, console, fail, print_json, use_dirs
from hyperhive_core.cli._render import agent_panel
from hyperhive_core.cli._render_approvals import (
    plan_table,
    proposal_panel,
    proposals_table,
    report_table,
    verdict_line,
)
from hyperhive_core.errors import HiveError
from hyperhive_core.mcp.models import AgentInfo
from hyperhive_core.states import ProposalState

# A reconcile may rebuild containers: these verbs wait as long as its steps may take.
RECONCILE_WAIT_S = 900.0
Proposal = Annotated[int, typer.Argument(min=1, help="The proposal's id (hivectl approvals).")]
AgentArg = Annotated[str, typer.Argument(help="The agent's name.")]

app = typer.Typer(
    name="approvals",
    help="The manager's proposals: list them, or `show ID` for one with its diff and plan.",
    no_args_is_help=False,
    pretty_exceptions_show_locals=False,
)


@app.callback(invoke_without_command=True)
def approvals(
    ctx: typer.Context,
    every: Annotated[bool, typer.Option("--all", help="Decided proposals too, not only pending ones.")] = False,
    json: Json = False,
    run_dir: RunDir = None,
    state_dir: StateDir = None,
) -> None:
    """List the proposals waiting for a verdict (--all: every proposal), newest first."""
    if ctx.invoked_subcommand is not None:
        return
    use_dirs(ctx, run_dir, state_dir)
    state = "all" if every else "pending"
    found = call_daemon(ctx, lambda c: c.call("approvals", {"state": state, "limit": 1000}, ProposalList)).proposals
    if json:
        print_json(found)
        return
    console.print(proposals_table(found, title="proposals" if every else "proposals waiting for a verdict"))


@app.command()
def show(
    ctx: typer.Context, proposal: Proposal, json: Json = False, run_dir: RunDir = None, state_dir: StateDir = None
) -> None:
    """One proposal: its message, the coloured diff of its files, and what approving it now would do."""
    use_dirs(ctx, run_dir, state_dir)
    detail = call_daemon(ctx, lambda c: c.call("approval", {"proposal": proposal}, ProposalDetail))
    if json:
        print_json(detail)
    else:
        console.print(proposal_panel(detail))


def approve(
    ctx: typer.Context, proposal: Proposal, json: Json = False, run_dir: RunDir = None, state_dir: StateDir = None
) -> None:
    """Merge a proposal into main and apply it; exit 1 if it is stale, decided already, or failed to apply."""
    use_dirs(ctx, run_dir, state_dir)
    verdict = call_daemon(ctx, lambda c: c.call("approve", {"proposal": proposal}, Verdict, wait_s=RECONCILE_WAIT_S))
    _show_verdict(verdict, json=json)
    if verdict.proposal.state == ProposalState.DEGRADED:
        raise typer.Exit(1)


def deny(
    ctx: typer.Context,
    proposal: Proposal,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why; the proposer reads it.")],
    json: Json = False,
    run_dir: RunDir = None,
    state_dir: StateDir = None,
) -> None:
    """Refuse a proposal; the proposer is told the reason."""
    use_dirs(ctx, run_dir, state_dir)
    if not reason.strip():
        raise fail("give a reason: --reason TEXT (the proposer reads it)")
    verdict = call_daemon(ctx, lambda c: c.call("deny", {"proposal": proposal, "reason": reason}, Verdict))
    _show_verdict(verdict, json=json)


def _show_verdict(verdict: Verdict, *, json: bool) -> None:
    if json:
        print_json(verdict)
        return
    console.print(verdict_line(verdict))
    if verdict.report is not None and verdict.report.steps:
        console.print(report_table(verdict.report))


def plan(ctx: typer.Context, json: Json = False, run_dir: RunDir = None, state_dir: StateDir = None) -> None:
    """Show the difference between main and what runs; exit 0: none, 1: some, 2: an error."""
    dirs = use_dirs(ctx, run_dir, state_dir)
    try:
        with OperatorClient(dirs.host_socket) as client:
            view = client.call("plan", {}, PlanView)
    except HiveError as exc:
        fail(str(exc))
        raise typer.Exit(2) from None
    if json:
        print_json(view)
    elif view.error is None:
        console.print(plan_table(view))
    if view.error is not None:
        if not json:
            fail(view.error)
        raise typer.Exit(2)
    if view.steps:
        raise typer.Exit(1)


def reconcile(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="One agent; none: the whole hive.")] = None,
    json: Json = False,
    run_dir: RunDir = None,
    state_dir: StateDir = None,
) -> None:
    """Bring the running hive (or one agent) to main now; exit 1 if a step failed or main is refused."""
    use_dirs(ctx, run_dir, state_dir)
    arguments: dict[str, Any] = {"name": name} if name else {}
    report = call_daemon(ctx, lambda c: c.call("reconcile", arguments, ReconcileReport, wait_s=RECONCILE_WAIT_S))
    if json:
        print_json(report)
    elif report.error is not None:
        raise fail(report.error)
    else:
        console.print(report_table(report))
    if not report.ok:
        raise typer.Exit(1)


def _agent_verb(ctx: typer.Context, tool: str, name: str, json: bool) -> None:
    def act(client: OperatorClient) -> AgentInfo:
        return client.call(tool, {"name": name}, AgentInfo, wait_s=RECONCILE_WAIT_S)

    info = call_daemon(ctx, act)
    if json:
        print_json(info)
    else:
        console.print(agent_panel(info))


def suspend(
    ctx: typer.Context, name: AgentArg, json: Json = False, run_dir: RunDir = None, state_dir: StateDir = None
) -> None:
    """Stop reconciling one agent: it stays as it is (no restarts, no change from main) until resumed."""
    use_dirs(ctx, run_dir, state_dir)
    _agent_verb(ctx, "suspend", name, json)


def resume(
    ctx: typer.Context, name: AgentArg, json: Json = False, run_dir: RunDir = None, state_dir: StateDir = None
) -> None:
    """Reconcile a suspended agent again, now."""
    use_dirs(ctx, run_dir, state_dir)
    _agent_verb(ctx, "resume", name, json)


def rollback(
    ctx: typer.Context,
    name: AgentArg,
    rev: Annotated[str, typer.Argument(help="A commit of the state repo: a sha, main~2, ...")],
    json: Json = False,
    run_dir: RunDir = None,
    state_dir: StateDir = None,
) -> None:
    """Restore an agent's settings as they were at commit REV (a new commit on main), and reconcile it."""
    use_dirs(ctx, run_dir, state_dir)
    receipt = call_daemon(
        ctx, lambda c: c.call("rollback", {"name": name, "rev": rev}, CommitReceipt, wait_s=RECONCILE_WAIT_S)
    )
    if json:
        print_json(receipt)
        return
    console.print(f"committed {receipt.rev[:12]}: {receipt.summary}", markup=False, soft_wrap=True)
    console.print(report_table(receipt.report))
    if not receipt.report.ok:
        raise typer.Exit(1)


def place(
    ctx: typer.Context,
    name: AgentArg,
    host: Annotated[str, typer.Argument(help="The host whose daemon will run it.")],
    force: Annotated[bool, typer.Option("--force", help="Even onto a host that is down or never seen.")] = False,
    json: Json = False,
    run_dir: RunDir = None,
    state_dir: StateDir = None,
) -> None:
    """Place an agent on HOST (a commit on main): the host it leaves stops it, HOST's daemon runs it."""
    use_dirs(ctx, run_dir, state_dir)
    arguments = {"name": name, "host": host, "force": force}
    receipt = call_daemon(ctx, lambda c: c.call("place", arguments, CommitReceipt, wait_s=RECONCILE_WAIT_S))
    _committed(receipt, json=json)


def drain(
    ctx: typer.Context,
    host: Annotated[str, typer.Argument(help="The host to empty (a host that is down, or one to retire).")],
    to: Annotated[str | None, typer.Option(help="The host that takes its agents (default: this daemon's).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Even onto a host that is down or never seen.")] = False,
    json: Json = False,
    run_dir: RunDir = None,
    state_dir: StateDir = None,
) -> None:
    """Move every agent placed on HOST to another host, as one commit on main; each host then reconciles."""
    use_dirs(ctx, run_dir, state_dir)
    arguments = {"host": host, "to": to, "force": force}
    receipt = call_daemon(ctx, lambda c: c.call("drain", arguments, CommitReceipt, wait_s=RECONCILE_WAIT_S))
    _committed(receipt, json=json)


def _committed(receipt: CommitReceipt, *, json: bool) -> None:
    if json:
        print_json(receipt)
        return
    console.print(f"committed {receipt.rev[:12]}: {receipt.summary}", markup=False, soft_wrap=True)
    console.print(report_table(receipt.report))
    if not receipt.report.ok:
        raise typer.Exit(1)

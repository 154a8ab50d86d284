"""`hivectl`: the operator's command line. Every verb but `serve` speaks MCP to the daemon's host.sock.

Verbs stay flat as in the seed (`hivectl spawn alice`, `hivectl list`); each prints a rich table
for people or JSON with `--json`, and exits 1 with one line on stderr when something is refused.
"""

import typer

from hyperhive_core.cli import agents, approvals, budget, daemon, dashboard, database, messages
from hyperhive_core.cli._common import RunDir, StateDir, make_dirs, size_consoles

app = typer.Typer(
    name="hivectl",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    help="Run and steer a hive of Claude Code agents.",
)


@app.callback()
def root(ctx: typer.Context, run_dir: RunDir = None, state_dir: StateDir = None) -> None:
    """Run and steer a hive of Claude Code agents, each in its own sandbox."""
    size_consoles()
    ctx.obj = make_dirs(run_dir, state_dir)


app.command()(daemon.serve)
app.command()(daemon.shutdown)
app.command()(agents.spawn)
app.command()(agents.kill)
app.command()(agents.rebuild)
app.command(name="list")(agents.list_agents)
app.command()(agents.status)
app.command()(agents.logs)
app.command()(budget.budget)
app.command()(messages.send)
app.command()(messages.recv)
app.command()(messages.ack)
app.command()(messages.inbox)
app.command()(database.backup)
app.command()(database.doctor)
app.command()(database.migrate)
app.command()(dashboard.dashboard)
app.add_typer(approvals.app)
app.command()(approvals.approve)
app.command()(approvals.deny)
app.command()(approvals.plan)
app.command()(approvals.reconcile)
app.command()(approvals.suspend)
app.command()(approvals.resume)
app.command()(approvals.rollback)
app.command()(approvals.place)
app.command()(approvals.drain)


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]

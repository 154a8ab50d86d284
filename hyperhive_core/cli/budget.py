"""`hivectl budget`: see what agents used, and set the limits the daemon enforces.

`hivectl budget` shows every budget; `hivectl budget NAME` one (`hive`, or no NAME with a limit,
is the whole hive's); any limit given changes that budget and leaves its other limits as they were.
"""

from typing import Annotated, Any

import typer

from hyperhive_core.cli._client import OperatorClient
from hyperhive_core.cli._common import Json, RunDir, StateDir, call_daemon, console, print_json, use_dirs
from hyperhive_core.cli._render import budget_panel, budgets_table
from hyperhive_core.errors import UnknownAgentError
from hyperhive_core.mcp.models import BudgetList, BudgetView

HIVE = "hive"
MAX_USD = 1_000_000.0
MAX_TOKENS = 10**15


def budget(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="An agent, or 'hive' (the default when a limit is given) for the whole hive.")
    ] = None,
    usd_per_day: Annotated[
        float | None,
        typer.Option(min=0, max=MAX_USD, show_default=False, help="US dollars per UTC day; 0 pauses at once."),
    ] = None,
    tokens_per_day: Annotated[
        int | None, typer.Option(min=0, max=MAX_TOKENS, show_default=False, help="Tokens (all kinds) per UTC day.")
    ] = None,
    usd_total: Annotated[
        float | None, typer.Option(min=0, max=MAX_USD, show_default=False, help="US dollars in all.")
    ] = None,
    tokens_total: Annotated[
        int | None, typer.Option(min=0, max=MAX_TOKENS, show_default=False, help="Tokens (all kinds) in all.")
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove this budget's limits (before setting any given).")
    ] = False,
    json: Json = False,
    run_dir: RunDir = None,
    state_dir: StateDir = None,
) -> None:
    """Show what agents used and their budgets, or change one; a paused agent resumes when its budget allows."""
    use_dirs(ctx, run_dir, state_dir)
    limits = {
        key: value
        for key, value in (
            ("usd_per_day", usd_per_day),
            ("tokens_per_day", tokens_per_day),
            ("usd_total", usd_total),
            ("tokens_total", tokens_total),
        )
        if value is not None
    }

    def act(client: OperatorClient) -> BudgetView | BudgetList:
        if limits or clear:
            arguments: dict[str, Any] = {**limits, "clear": clear}
            if name is not None:
                arguments["agent"] = name
            return client.call("set_budget", arguments, BudgetView)
        everything = client.call("budgets", {}, BudgetList)
        if name is None:
            return everything
        if name == HIVE:
            return everything.hive
        for view in everything.agents:
            if view.scope == name:
                return view
        raise UnknownAgentError(name, [HIVE, *(view.scope for view in everything.agents)])

    shown = call_daemon(ctx, act)
    if json:
        print_json(shown)
    elif isinstance(shown, BudgetList):
        console.print(budgets_table(shown))
    else:
        console.print(budget_panel(shown))

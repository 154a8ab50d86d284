"""Shared by every hivectl command: the directory options, the consoles, and the call-the-daemon shell."""

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.text import Text

from hyperhive_core.cli._client import OperatorClient
from hyperhive_core.cli._safe import printable, safe_json
from hyperhive_core.config import default_run_dir, default_state_dir
from hyperhive_core.errors import HiveError

T = TypeVar("T")

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
# Piped or captured (a script, the demo's log), rich would cut every table at 80 columns and
# leave "ali…" for alice; like `kubectl get`, the lines are as long as the table needs instead.
PIPED_WIDTH = 240


def size_consoles() -> None:
    """Size the output for where this run's output goes: COLUMNS when set, else the terminal, else wide.

    Done per command, not at import: rich reads COLUMNS once, when a console is made, and an
    environment that changes between runs in one process (tests, a shell embedding us) must count.
    """
    columns = os.environ.get("COLUMNS", "")
    for out, stream in ((console, sys.stdout), (err_console, sys.stderr)):
        if columns.isdigit():
            out.width = int(columns)
        elif stream.isatty():
            out.width = shutil.get_terminal_size().columns
        else:
            out.width = PIPED_WIDTH


RunDir = Annotated[
    Path | None,
    typer.Option(
        "--run-dir",
        envvar="HYPERHIVE_RUN_DIR",
        help="Where the daemon's sockets live \\[default: /run/hyperhive as root, else $XDG_RUNTIME_DIR/hyperhive].",
        show_default=False,
    ),
]
StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar="HYPERHIVE_STATE_DIR",
        help="Where messages and agent work dirs live \\[default: /var/lib/hyperhive as root, "
        "else $XDG_STATE_HOME/hyperhive].",
        show_default=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]


@dataclass(frozen=True, slots=True)
class Dirs:
    """The directories chosen on the command line (or by default)."""

    run_dir: Path
    state_dir: Path

    @property
    def host_socket(self) -> Path:
        """The operator's socket."""
        return self.run_dir / "host.sock"


def dirs(ctx: typer.Context) -> Dirs:
    """The directories the root callback chose."""
    obj: Any = ctx.obj
    assert isinstance(obj, Dirs), "the root callback sets ctx.obj"
    return obj


def _typed(ctx: typer.Context, name: str) -> bool:
    # By the source's name: typer's vendored click keeps the enum in a private module.
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def use_dirs(ctx: typer.Context, run_dir: Path | None, state_dir: Path | None) -> Dirs:
    """The dirs for this command: given after the verb, or before it (the root's), or the defaults."""
    chosen = dirs(ctx)
    # Only what was typed after the verb counts: the same option's value from HYPERHIVE_*_DIR is
    # the root's already, and must not beat a --state-dir typed before the verb.
    run_dir = run_dir if _typed(ctx, "run_dir") else None
    state_dir = state_dir if _typed(ctx, "state_dir") else None
    if run_dir is not None or state_dir is not None:
        chosen = Dirs(run_dir=run_dir or chosen.run_dir, state_dir=state_dir or chosen.state_dir)
        ctx.obj = chosen
    return chosen


def make_dirs(run_dir: Path | None, state_dir: Path | None) -> Dirs:
    """Fill in the defaults for directories not given."""
    return Dirs(run_dir=run_dir or default_run_dir(), state_dir=state_dir or default_state_dir())


def report_failure(message: str) -> None:
    """Print one error line to stderr."""
    # printable, not markup: the message quotes names and bodies that agents chose.
    line = Text.assemble(("error:", "bold red"), " ", printable(message))
    err_console.print(line, highlight=False, soft_wrap=True)


def fail(message: str) -> typer.Exit:
    """Print one error line to stderr and return the exit to raise."""
    report_failure(message)
    return typer.Exit(1)


def call_daemon(ctx: typer.Context, action: Callable[[OperatorClient], T]) -> T:
    """Run `action` against the daemon's operator socket; a `HiveError` becomes one line and exit 1."""
    try:
        with OperatorClient(dirs(ctx).host_socket) as client:
            return action(client)
    except HiveError as exc:
        raise fail(str(exc)) from None


def print_json(value: BaseModel | list[Any] | dict[str, Any], *, compact: bool = False) -> None:
    """Print a model (or a list of them) as JSON on stdout; `compact` puts it on one line.

    Control characters in strings are `\\uXXXX` escapes (see `safe_json`), so the output is valid JSON
    and never drives the terminal.
    """
    if isinstance(value, BaseModel):
        data: Any = value.model_dump(mode="json")
    elif isinstance(value, list):
        data = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    else:
        data = value
    console.print(safe_json(data, compact=compact), markup=False, highlight=False, soft_wrap=True)

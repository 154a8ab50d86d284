"""`hivectl dashboard`: where the running daemon serves its dashboard, with the token to log in once.

The daemon writes `<run dir>/dashboard.json` (mode 0600, in the 0700 run dir: only the daemon's
user can read the token) once its port listens, and removes it when it stops.
"""

import json
import os
import webbrowser
from typing import Annotated, Any, cast

import typer

from hyperhive_core.cli._client import connect_raw
from hyperhive_core.cli._common import Json, RunDir, StateDir, console, err_console, fail, print_json, use_dirs
from hyperhive_core.errors import DaemonUnavailableError


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dashboard(
    ctx: typer.Context,
    open_browser: Annotated[bool, typer.Option("--open", help="Also open it in a browser.")] = False,
    json_output: Json = False,
    run_dir: RunDir = None,
    state_dir: StateDir = None,
) -> None:
    """Print the dashboard's address, with the token that logs the browser in (once)."""
    d = use_dirs(ctx, run_dir, state_dir)
    info_file = d.run_dir / "dashboard.json"
    try:
        info: Any = json.loads(info_file.read_text())
    except FileNotFoundError:
        try:
            connect_raw(d.host_socket).close()
        except DaemonUnavailableError as exc:
            raise fail(str(exc)) from None
        raise fail(
            f"the daemon at {d.host_socket} serves no dashboard (it was started with --no-dashboard or "
            "HYPERHIVE_DASHBOARD=off); restart it with `hivectl serve --dashboard 127.0.0.1:8420`"
        ) from None
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read {info_file}: {exc}") from None
    fields = cast(dict[str, Any], info) if isinstance(info, dict) else {}
    login, url = fields.get("login"), fields.get("url")
    if not _alive(fields.get("pid")) or not isinstance(login, str) or not isinstance(url, str):
        raise fail(
            f"no daemon is running for {info_file} (it is left from one that died); start one with `hivectl serve`"
        )
    if json_output:
        print_json({"url": url, "login": login}, compact=True)
    else:
        console.print(login, markup=False, highlight=False, soft_wrap=True)
    if open_browser and not webbrowser.open(login):
        err_console.print("could not start a browser here; open the address above", markup=False)

"""`hivectl dashboard` and `hivectl serve --dashboard`: where the page is, and clear words when it is not."""

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx2

from tests.cli._hive import DAEMON_DOWN, cli_env, error_line, invoke, live_hive
from tests.helpers import IDLE_AGENT, hive_config


def test_dashboard_prints_the_address_that_logs_the_browser_in(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, dashboard="127.0.0.1:0", agent_command=IDLE_AGENT)
    with live_hive(config) as hive:
        login = hive.ok("dashboard").stdout.strip()
        both = hive.json("dashboard")
        assert both["login"] == login
        assert login.startswith(both["url"] + "?token=")
        with httpx2.Client() as client:
            assert client.get(login).status_code == 303
            assert client.get(both["url"] + "agents").status_code == 200  # the cookie from the login


def test_dashboard_without_a_daemon_says_none_runs(short_tmpdir: Path) -> None:
    line = error_line(invoke(cli_env(short_tmpdir / "run", short_tmpdir / "state"), "dashboard"))
    assert DAEMON_DOWN in line


def test_dashboard_of_a_daemon_serving_none_says_how_to_serve_one(short_tmpdir: Path) -> None:
    with live_hive(hive_config(short_tmpdir, agent_command=IDLE_AGENT)) as hive:
        line = error_line(hive.run("dashboard"))
    assert "serves no dashboard" in line
    assert "hivectl serve --dashboard 127.0.0.1:8420" in line


def test_a_dashboard_file_left_by_a_dead_daemon_is_not_believed(short_tmpdir: Path) -> None:
    run_dir = short_tmpdir / "run"
    run_dir.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    info = {"url": "http://127.0.0.1:1/", "login": "http://127.0.0.1:1/?token=x", "pid": int(dead.stdout)}
    (run_dir / "dashboard.json").write_text(json.dumps(info))
    line = error_line(invoke(cli_env(run_dir, short_tmpdir / "state"), "dashboard"))
    assert "left from one that died" in line


def test_serve_refuses_an_address_that_is_not_host_and_port(short_tmpdir: Path) -> None:
    result = invoke(cli_env(short_tmpdir / "run", short_tmpdir / "state"), "serve", "--dashboard", "8420")
    assert "dashboard address '8420' is not HOST:PORT" in error_line(result)
    assert not (short_tmpdir / "run" / "host.sock").exists()


def test_serve_dashboard_and_no_dashboard_reach_the_daemon(short_tmpdir: Path) -> None:
    for flags, serves in ((["--dashboard", "127.0.0.1:0"], True), (["--no-dashboard"], False)):
        run_dir, state_dir = short_tmpdir / "run", short_tmpdir / "state"
        env = cli_env(run_dir, state_dir)
        # --no-dashboard wins over the environment; --dashboard over `off` there (the tests' default).
        child_env = {**os.environ, "HYPERHIVE_DASHBOARD": "127.0.0.1:0" if not serves else "off"}
        hivectl = [sys.executable, "-m", "hyperhive_core", "--run-dir", str(run_dir), "--state-dir", str(state_dir)]
        started = subprocess.run(
            [*hivectl, "serve", "--detach", *flags],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=child_env,
        )
        assert started.returncode == 0, started.stderr
        try:
            shown = invoke(env, "dashboard")
            if serves:
                assert shown.exit_code == 0, shown.output
                assert "?token=" in shown.stdout
            else:
                assert "serves no dashboard" in error_line(shown)
        finally:
            assert invoke(env, "shutdown").exit_code == 0
        assert not (run_dir / "dashboard.json").exists()

"""`hivectl budget`, and usage in `list` and `status`: typer's CliRunner against a real daemon."""

from typing import Any

from tests.cli._hive import LiveHive, error_line, report_as_agent

SPENT = "budget: alice used $0.0200 of its $0.0100 total budget"


def usage(cost_usd: float, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "type": "hive",
        "subtype": "usage",
        "message": "…",
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost_usd": cost_usd,
    }


def alice_reports(hive: LiveHive, *events: dict[str, Any]) -> None:
    hive.portal.call(report_as_agent, hive.config.agent_socket("alice"), list(events))


def test_budget_sets_a_limit_and_list_and_status_show_the_usage_and_the_pause(hive: LiveHive) -> None:
    hive.ok("spawn", "alice", "bob")
    view = hive.json("budget", "alice", "--usd-total", "0.01")
    assert (view["scope"], view["limits"]["usd_total"], view["limits"]["usd_per_day"], view["paused"]) == (
        "alice",
        0.01,
        None,
        "",
    )
    alice_reports(hive, usage(0.02, 12_000, 345))
    listed = hive.ok("list").stdout
    assert "TOKENS" in listed
    assert "COST" in listed
    [alice_row] = [line for line in listed.splitlines() if "alice" in line]
    assert "paused: budget" in alice_row
    assert "12.3k" in alice_row
    assert "$0.0200" in alice_row
    status = hive.ok("status", "alice").stdout
    assert "running paused: budget" in status
    assert SPENT in status
    assert "12,345 tokens, $0.0200 in 1 turn (in 12,000, out 345" in status
    assert "in all: $0.0100" in status
    assert hive.json("status", "alice")["paused"] == SPENT
    overview = hive.ok("status").stdout
    assert "used in all" in overview
    assert "alice: turns paused: " + SPENT in overview
    # a raise, leaving the other limits as they were, resumes it
    hive.ok("budget", "alice", "--tokens-per-day", "1000000")
    raised = hive.json("budget", "alice", "--usd-total", "5")
    assert raised["limits"] == {
        "usd_per_day": None,
        "tokens_per_day": 1_000_000,
        "usd_total": 5.0,
        "tokens_total": None,
    }
    assert raised["paused"] == ""
    assert "paused" not in hive.ok("list").stdout


def test_budget_without_a_limit_shows_every_budget_or_one(hive: LiveHive) -> None:
    hive.ok("spawn", "alice")
    hive.ok("budget", "--usd-per-day", "20")  # no name: the hive's
    alice_reports(hive, usage(0.5, 100, 10))
    everything = hive.json("budget")
    assert everything["hive"]["limits"]["usd_per_day"] == 20.0
    assert everything["hive"]["today"]["cost_usd"] == 0.5
    assert [(v["scope"], v["total"]["tokens"]) for v in everything["agents"]] == [("alice", 110)]
    table = hive.ok("budget").stdout
    assert "BUDGET" in table
    assert "per day: $20.00" in table
    assert "110 tokens, $0.5000" in table
    assert hive.json("budget", "hive") == everything["hive"]
    assert hive.json("budget", "alice") == everything["agents"][0]
    assert "budget of alice" in hive.ok("budget", "alice").stdout
    cleared = hive.json("budget", "hive", "--clear")
    assert cleared["limits"] == {"usd_per_day": None, "tokens_per_day": None, "usd_total": None, "tokens_total": None}


def test_budget_refuses_an_unknown_agent_and_a_negative_limit_saying_why(hive: LiveHive) -> None:
    hive.ok("spawn", "alice")
    assert error_line(hive.run("budget", "ghost", "--usd-total", "1")) == ("error: unknown agent 'ghost'; known: alice")
    assert error_line(hive.run("budget", "ghost")) == "error: unknown agent 'ghost'; known: alice, hive"
    negative = hive.run("budget", "alice", "--usd-total", "-1")
    assert negative.exit_code == 2
    assert "Invalid value for '--usd-total': Input should be greater than or equal to 0" in negative.stderr
    assert hive.json("budget", "alice")["limits"]["usd_total"] is None

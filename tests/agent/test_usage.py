"""Per-turn usage from claude's result events: cumulative totals differenced, across claude processes."""

from typing import Any

from hyperhive_agent.usage import UsageMeter

SESSION = "e3523ae3-bb8e-454e-99a8-1783f09e212f"
MODEL = "claude-opus-5-5"


def result(
    total: float, *, turn_cost: float | None = None, tokens: tuple[int, int] = (200, 40), session: str = SESSION
) -> dict[str, Any]:
    """A result event shaped as claude-code 2.1.332 prints it (trimmed to the fields that matter)."""
    event: dict[str, Any] = {
        "type": "result",
        "subtype": "success",
        "session_id": session,
        "total_cost_usd": total,
        "duration_ms": 646,
        "num_turns": 2,
        "usage": {
            "input_tokens": tokens[0],
            "output_tokens": tokens[1],
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
        "modelUsage": {MODEL: {"inputTokens": 999, "outputTokens": 999, "costUSD": total}},
    }
    if turn_cost is not None:
        event["model_usage_since_last_result"] = {
            MODEL: {
                "inputTokens": tokens[0],
                "outputTokens": tokens[1],
                "cacheReadInputTokens": 7,
                "cacheCreationInputTokens": 3,
                "costUSD": turn_cost,
            }
        }
    return event


def costs(meter: UsageMeter, *events: dict[str, Any]) -> list[float]:
    return [meter.turn(e)["cost_usd"] for e in events]


def test_the_per_turn_field_gives_each_turns_own_numbers_also_after_a_resumed_process_carries_totals_on() -> None:
    meter = UsageMeter()
    # two turns in one claude, then a claude started again with --resume: its total goes on from 0.0032
    first, second, resumed = (meter.turn(result(t, turn_cost=0.0016)) for t in (0.0016, 0.0032, 0.0048))
    assert [first["cost_usd"], second["cost_usd"], resumed["cost_usd"]] == [0.0016, 0.0016, 0.0016]
    assert resumed["total_cost_usd"] == 0.0048
    assert {k: resumed[k] for k in ("input_tokens", "output_tokens", "cache_read_input_tokens")} == {
        "input_tokens": 200,
        "output_tokens": 40,
        "cache_read_input_tokens": 7,
    }
    assert resumed["cache_creation_input_tokens"] == 3
    assert (resumed["type"], resumed["subtype"], resumed["models"]) == ("hive", "usage", [MODEL])
    assert (resumed["duration_ms"], resumed["num_turns"], resumed["session_id"]) == (646, 2, SESSION)
    assert resumed["message"] == "250 tokens, $0.0016"


def test_without_the_per_turn_field_the_cumulative_cost_is_differenced_per_session() -> None:
    meter = UsageMeter()
    # one process: cumulative
    assert costs(meter, result(0.01), result(0.03)) == [0.01, 0.02]
    # a resumed process that carries the session's total on: still the difference
    assert costs(meter, result(0.045)) == [0.015]
    # a claude that counts from zero again (its total fell): the whole total is this turn's
    assert costs(meter, result(0.004), result(0.006)) == [0.004, 0.002]
    # another session has its own baseline; tokens come from the result's per-turn `usage`
    other = meter.turn(result(0.5, session="other", tokens=(1000, 10)))
    assert (other["cost_usd"], other["input_tokens"], other["output_tokens"]) == (0.5, 1000, 10)
    assert other["models"] == [MODEL]


def test_odd_numbers_in_a_result_count_as_nothing() -> None:
    event = result(0.0)
    event["total_cost_usd"] = float("nan")
    event["usage"] = {"input_tokens": -5, "output_tokens": "many", "cache_read_input_tokens": True}
    event["duration_ms"] = None
    usage = UsageMeter().turn(event)
    assert usage["cost_usd"] == 0
    assert [usage[k] for k in ("input_tokens", "output_tokens", "cache_read_input_tokens", "duration_ms")] == [0] * 4

"""What one claude turn used, from claude's `result` event: the `usage` turn event the daemon records.

claude's result event mixes per-turn and cumulative numbers. `usage`, `duration_ms` and
`num_turns` are the turn's own; `total_cost_usd` and `modelUsage` add up over the session in
this process, and a claude started again with `--resume` carries the session's totals on
(claude-code 2.1.332 restores them: a resumed process's first result includes the earlier
process's cost). claude-code 2.1.332 also reports `model_usage_since_last_result`: the turn's own
tokens and cost per model, which is what this module reads. Without it (another claude version)
the turn's cost is the difference from the previous result of the same session, and a total
lower than that (a claude that started again from zero) counts whole: a budget errs towards
counting too much, never too little.

The driver knows which claude printed which result; the daemon sees only the events, so the
difference is taken here and the daemon gets the turn's own numbers, in the hive's schema
(`wire.USAGE_EVENT`), not claude's.
"""

import math
from typing import Any, cast

from hyperhive_agent import wire

JsonObject = dict[str, Any]

# claude's per-model keys (modelUsage, model_usage_since_last_result) -> the hive's token fields.
_MODEL_KEYS: dict[str, str] = {
    "inputTokens": "input_tokens",
    "outputTokens": "output_tokens",
    "cacheCreationInputTokens": "cache_creation_input_tokens",
    "cacheReadInputTokens": "cache_read_input_tokens",
}


def _number(value: object) -> float:
    """A finite, non-negative number from claude's JSON, else 0 (a missing or odd field counts nothing)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    number = float(value)
    return number if math.isfinite(number) and number > 0 else 0.0


def _dict(value: object) -> JsonObject | None:
    return cast(JsonObject, value) if isinstance(value, dict) else None


class UsageMeter:
    """Turns claude's result events into per-turn usage; one meter per driver, kept across its processes."""

    def __init__(self) -> None:
        # The last total_cost_usd seen per session: the baseline when a result lacks the per-turn field.
        self._session_totals: dict[str, float] = {}

    def turn(self, result: JsonObject) -> JsonObject:
        """The `usage` event for one result event (see `wire.USAGE_EVENT`)."""
        total = _number(result.get("total_cost_usd"))
        session = result.get("session_id")
        session = session if isinstance(session, str) else ""
        since = _dict(result.get("model_usage_since_last_result"))
        tokens: dict[str, int] = dict.fromkeys(wire.USAGE_TOKEN_FIELDS, 0)
        models: list[str] = []
        if since is not None:
            cost = 0.0
            for model, raw in since.items():
                per_model = _dict(raw) or {}
                models.append(model)
                cost += _number(per_model.get("costUSD"))
                for theirs, ours in _MODEL_KEYS.items():
                    tokens[ours] += int(_number(per_model.get(theirs)))
        else:
            before = self._session_totals.get(session)
            # Same session, total grown: the difference is this turn's. No baseline, or a total
            # that went down (a claude that counts from zero again): the whole total is this turn's.
            cost = total - before if before is not None and total >= before else total
            usage = _dict(result.get("usage")) or {}
            for key in wire.USAGE_TOKEN_FIELDS:
                tokens[key] = int(_number(usage.get(key)))
            models = [str(m) for m in (_dict(result.get("modelUsage")) or {})]
        if session:
            self._session_totals[session] = total
        cost = round(cost, 10)  # float sums of claude's own float sums: keep the noise out of the record
        all_tokens = sum(tokens.values())
        return {
            "type": "hive",
            "subtype": wire.USAGE_EVENT,
            "message": f"{all_tokens:,} tokens, ${cost:.4f}",
            **tokens,
            "cost_usd": cost,
            "total_cost_usd": total,
            "duration_ms": int(_number(result.get("duration_ms"))),
            "num_turns": int(_number(result.get("num_turns"))),
            "models": models,
            "session_id": session,
        }

"""The budget's wire views: what `list`, `status`, `hive_status` and the budget tools return."""

from hyperhive_core.budget.keeper import BudgetKeeper, Spend
from hyperhive_core.budget.limits import Limits, Overrun
from hyperhive_core.budget.usage import Usage
from hyperhive_core.mcp.models import BudgetLimits, BudgetView, UsageView


def usage_view(usage: Usage) -> UsageView:
    """Usage as the tools show it."""
    return UsageView(
        tokens=usage.tokens,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_creation_tokens=usage.cache_creation_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cost_usd=round(usage.cost_usd, 6),
        turns=usage.turns,
    )


def limits_view(limits: Limits) -> BudgetLimits:
    """Limits as the tools show them."""
    return BudgetLimits(
        usd_per_day=limits.usd_per_day,
        tokens_per_day=limits.tokens_per_day,
        usd_total=limits.usd_total,
        tokens_total=limits.tokens_total,
    )


def pause_reason(over: Overrun | None) -> str:
    """`budget: <which limit is spent>`, or empty when nothing pauses."""
    return "" if over is None else f"budget: {over.describe()}"


def budget_view(scope: str, spend: Spend) -> BudgetView:
    """One scope's budget and what was used against it."""
    return BudgetView(
        scope=scope,
        limits=limits_view(spend.limits),
        day=spend.day,
        today=usage_view(spend.today),
        total=usage_view(spend.total),
        paused=pause_reason(spend.paused),
    )


def scope_view(keeper: BudgetKeeper, scope: str) -> BudgetView:
    """`scope`'s budget view, read from the keeper."""
    return budget_view(scope, keeper.spend(scope))

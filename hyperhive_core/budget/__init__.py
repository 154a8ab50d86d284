"""Cost and budgets: each turn's usage as the agents report it, and the limits the daemon enforces."""

from hyperhive_core.budget.keeper import BudgetKeeper, Spend
from hyperhive_core.budget.limits import HIVE_SCOPE, BudgetSource, Limits, Overrun
from hyperhive_core.budget.store import BudgetStore, StoredBudgets
from hyperhive_core.budget.usage import Usage

__all__ = [
    "HIVE_SCOPE",
    "BudgetKeeper",
    "BudgetSource",
    "BudgetStore",
    "Limits",
    "Overrun",
    "Spend",
    "StoredBudgets",
    "Usage",
]

"""`hivectl list`'s table: aligned lines in one pass (rich's Table took half a second for 100 agents),
less useful columns hidden (and said so) in a narrow terminal, and never a name cut short."""

import io

from rich.console import Console

from hyperhive_core.cli._columns import Listing
from hyperhive_core.cli._render import agents_table
from hyperhive_core.mcp.models import AgentInfo
from hyperhive_core.states import AgentState


def rendered(renderable: object, width: int) -> list[str]:
    out = io.StringIO()
    Console(file=out, width=width, highlight=False, color_system=None).print(renderable)
    return out.getvalue().splitlines()


def agent(name: str, **fields: object) -> AgentInfo:
    return AgentInfo.model_validate({"name": name, "state": AgentState.RUNNING, "backend": "local", **fields})


def test_every_row_is_one_aligned_line_when_the_columns_fit() -> None:
    agents = [agent(f"agent{i:03d}", pid=1000 + i, sandbox="bwrap") for i in range(100)]
    lines = rendered(agents_table(agents), 240)
    assert lines[0] == "hive"
    header, rows = lines[1], lines[2:]
    assert header.split() == [
        "NAME",
        "STATE",
        "SYNC",
        "PID",
        "UPTIME",
        "UNREAD",
        "REFUSED",
        "TOKENS",
        "COST",
        "BACKEND",
        "SANDBOX",
    ]
    assert len(rows) == 100
    # Each column starts where its header does, on every row.
    pid_at = header.index("PID")
    assert all(row[pid_at:].split()[0] == str(1000 + i) for i, row in enumerate(rows))
    assert all(not line.endswith(" ") for line in lines)


def test_a_narrow_terminal_hides_the_least_useful_columns_and_says_which() -> None:
    agents = [agent("alice", pid=42, sandbox="bwrap"), agent("a-much-longer-name")]
    lines = rendered(agents_table(agents), 60)
    assert all(len(line) <= 60 for line in lines)
    assert "SANDBOX" not in lines[1]
    assert "BACKEND" not in lines[1]
    assert lines[1].split()[:2] == ["NAME", "STATE"]
    assert "a-much-longer-name" in "\n".join(lines)
    notes = " ".join(lines[4:])
    assert "hidden" in notes
    assert "SANDBOX" in notes
    assert "--json" in notes


def test_a_terminal_too_narrow_for_any_line_folds_cells_instead_of_cutting_them() -> None:
    table = Listing(("NAME",), title="hive")
    table.add_row("ninechars")
    lines = rendered(table, 6)
    assert "…" not in "".join(lines)
    # the name is whole, folded over lines below the title and the header
    assert "".join(line.strip() for line in lines[2:]) == "ninechars"


def test_an_empty_hive_says_how_to_start_one() -> None:
    lines = rendered(agents_table([]), 120)
    assert lines[-1] == "no agents yet: hivectl spawn NAME"

"""CPU time and resident memory of process trees, from /proc (Linux), for the stats sampler.

An agent is a tree (bwrap, the turn loop, claude and whatever claude runs): one pass over
/proc/<pid>/stat maps every process to its parent, and an agent's usage is its tree's sum.
"""

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class ProcStat:
    """What one /proc/<pid>/stat says that the sampler needs."""

    ppid: int
    cpu_s: float
    rss_bytes: int


def parse_stat(text: str) -> ProcStat | None:
    """Parse a /proc/<pid>/stat line (the command name may hold spaces and parentheses)."""
    _, sep, rest = text.rpartition(")")
    fields = rest.split()
    if not sep or len(fields) < 22:
        return None
    # after the name: state(0) ppid(1) ... utime(11) stime(12) ... rss(21), as proc(5) numbers them from 3
    return ProcStat(
        ppid=int(fields[1]),
        cpu_s=(int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
        rss_bytes=int(fields[21]) * PAGE_BYTES,
    )


def snapshot() -> dict[int, ProcStat]:
    """Every process visible now (processes that vanish meanwhile are left out)."""
    table: dict[int, ProcStat] = {}
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"{entry.path}/stat") as stat:
                parsed = parse_stat(stat.read())
        except OSError:
            continue
        if parsed is not None:
            table[int(entry.name)] = parsed
    return table


def tree_usage(table: dict[int, ProcStat], roots: dict[str, int]) -> dict[str, tuple[float, int]]:
    """CPU seconds and RSS bytes of each named root's whole tree: {name: (cpu_s, rss_bytes)}."""
    children: dict[int, list[int]] = {}
    for pid, stat in table.items():
        children.setdefault(stat.ppid, []).append(pid)
    usage: dict[str, tuple[float, int]] = {}
    for name, root in roots.items():
        if root not in table:
            continue
        cpu, rss, todo = 0.0, 0, [root]
        while todo:
            pid = todo.pop()
            stat = table[pid]
            cpu += stat.cpu_s
            rss += stat.rss_bytes
            todo.extend(children.get(pid, ()))
        usage[name] = (cpu, rss)
    return usage

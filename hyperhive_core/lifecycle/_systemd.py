"""A container's systemd unit as `systemctl` sees it: the limits hyperhive puts on it, and what `show` says of it.

A NixOS container runs as the host's `container@<C>.service`, a cgroup with every process of the
container in it. Its limits are the unit's resource-control properties (MemoryMax, CPUQuota,
TasksMax), set with `systemctl set-property --runtime`: applied at once to a running unit and at
the next start of a stopped one, and kept only until the host reboots, which is why the backend
sets them before every start. A unit the kernel OOM-killed in is stopped by systemd (OOMPolicy=
stop, systemd's default) and `show` says Result=oom-kill.
"""

import re
from dataclasses import dataclass

from hyperhive_core.lifecycle.base import Limits, Usage

# What `status` asks `systemctl show` for, in one call.
SHOWN = (
    "ActiveState",
    "Result",
    "MemoryMax",
    "TasksMax",
    "CPUQuotaPerSecUSec",
    "MemoryCurrent",
    "MemoryPeak",
    "TasksCurrent",
    "CPUUsageNSec",
)
OOM_RESULT = "oom-kill"
# systemd's "no value" for a uint64 property: printed as a number by older versions.
_UINT64_MAX = 2**64 - 1
_TIMESPAN_UNIT_S = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_TIMESPAN_PART = re.compile(r"(\d+(?:\.\d+)?)(us|µs|ms|s|min|h|d)")


def unit_of(container: str) -> str:
    """The host's systemd unit that runs `container`."""
    return f"container@{container}.service"


def limit_assignments(limits: Limits) -> list[str]:
    """`systemctl set-property` arguments for `limits`; an unset one is lifted (no limit), not left as it was."""
    memory = "infinity" if limits.memory_bytes is None else str(limits.memory_bytes)
    # CPUQuota takes a percentage with at most two decimals; empty: no quota.
    cpu = "" if limits.cpus is None else f"{max(round(limits.cpus * 100, 2), 0.01):g}%"
    tasks = "infinity" if limits.pids is None else str(limits.pids)
    return [f"MemoryMax={memory}", f"CPUQuota={cpu}", f"TasksMax={tasks}"]


@dataclass(frozen=True, slots=True)
class UnitReport:
    """What `systemctl show` says of a container's unit."""

    active: bool
    result: str  # how it last ended: success, oom-kill, exit-code, signal, ...
    limits: Limits
    usage: Usage

    @property
    def oom_killed(self) -> bool:
        """Whether systemd stopped the unit because the kernel's OOM killer fired in it."""
        return not self.active and self.result == OOM_RESULT


def parse_show(text: str) -> UnitReport:
    """Read `systemctl show UNIT --property=…` output (KEY=VALUE lines); what is missing counts as unset."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key] = value.strip()
    quota_s = parse_timespan(values.get("CPUQuotaPerSecUSec", ""))
    cpu_ns = _number(values.get("CPUUsageNSec", ""))
    return UnitReport(
        # As nixos-container's status: up only once active (a reload keeps it up).
        active=values.get("ActiveState") in ("active", "reloading"),
        result=values.get("Result", ""),
        limits=Limits(
            memory_bytes=_number(values.get("MemoryMax", "")),
            pids=_number(values.get("TasksMax", "")),
            # CPU time per second of wall time: 1.5 s per s is 1.5 CPUs.
            cpus=quota_s,
        ),
        usage=Usage(
            memory_bytes=_number(values.get("MemoryCurrent", "")),
            memory_peak_bytes=_number(values.get("MemoryPeak", "")),
            pids=_number(values.get("TasksCurrent", "")),
            cpu_s=None if cpu_ns is None else cpu_ns / 1e9,
        ),
    )


def parse_timespan(text: str) -> float | None:
    """Seconds in systemd's timespan form ("1.500000s", "500ms", "1min 4s"); None for infinity or unset."""
    text = text.strip()
    if not text or text == "infinity" or text.startswith("["):
        return None
    total = 0.0
    for part in text.split():
        match = _TIMESPAN_PART.fullmatch(part)
        if match is None:
            return None
        total += float(match[1]) * _TIMESPAN_UNIT_S[match[2]]
    return total


def _number(value: str) -> int | None:
    # "infinity", "[not set]" (systemd >= 248) and UINT64_MAX (older) all mean: none.
    if not value.isdigit():
        return None
    number = int(value)
    return None if number >= _UINT64_MAX else number

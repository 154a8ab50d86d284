"""A container unit's limits as `systemctl set-property` arguments, and `systemctl show` read back."""

import pytest

from hyperhive_core.lifecycle._systemd import limit_assignments, parse_show, parse_timespan, unit_of
from hyperhive_core.lifecycle.base import Limits, Usage

MIB = 2**20


def test_limits_become_unit_properties_and_unset_ones_are_lifted() -> None:
    assert limit_assignments(Limits(memory_bytes=512 * MIB, pids=100, cpus=1.5)) == [
        "MemoryMax=536870912",
        "CPUQuota=150%",
        "TasksMax=100",
    ]
    assert limit_assignments(Limits()) == ["MemoryMax=infinity", "CPUQuota=", "TasksMax=infinity"]
    # systemd takes two decimals of a percent at most, and no zero quota
    assert limit_assignments(Limits(cpus=0.123456))[1] == "CPUQuota=12.35%"
    assert limit_assignments(Limits(cpus=1e-9))[1] == "CPUQuota=0.01%"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2s", 2.0), ("1.500000s", 1.5), ("500ms", 0.5), ("1min 4s", 64.0), ("infinity", None), ("[not set]", None)],
)
def test_systemd_timespans_are_read_as_seconds(text: str, seconds: float | None) -> None:
    assert parse_timespan(text) == seconds


def test_show_output_gives_the_units_limits_use_and_how_it_ended() -> None:
    running = parse_show(
        "ActiveState=active\nResult=success\nMemoryMax=536870912\nTasksMax=100\nCPUQuotaPerSecUSec=1.500000s\n"
        "MemoryCurrent=1048576\nMemoryPeak=[not set]\nTasksCurrent=3\nCPUUsageNSec=2500000000\n"
    )
    assert running.active
    assert not running.oom_killed
    assert running.limits == Limits(memory_bytes=512 * MIB, pids=100, cpus=1.5)
    assert running.usage == Usage(memory_bytes=MIB, memory_peak_bytes=None, pids=3, cpu_s=2.5)
    # older systemd prints an unset uint64 as its maximum
    killed = parse_show(f"ActiveState=failed\nResult=oom-kill\nMemoryMax=infinity\nTasksMax={2**64 - 1}\n")
    assert killed.oom_killed
    assert killed.limits == Limits()


def test_a_container_runs_as_its_container_unit() -> None:
    assert unit_of("h-alice") == "container@h-alice.service"

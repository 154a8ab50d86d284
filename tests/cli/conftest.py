"""The `hive` fixture: a live daemon with idle agents, and hivectl to drive it."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli._hive import LiveHive, live_hive
from tests.helpers import IDLE_AGENT, hive_config


@pytest.fixture
def hive(short_tmpdir: Path) -> Iterator[LiveHive]:
    with live_hive(hive_config(short_tmpdir, agent_command=IDLE_AGENT)) as live:
        yield live

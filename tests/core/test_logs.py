"""The daemon's log cannot be used to fill the disk: each kind of record is rate-limited, the file rotated."""

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperhive_core.logs import BURST, LOG_BACKUPS, PER_S, configure_daemon_logging

# The daemon's limit, scaled down so the test writes a little.
SMALL_LOG_BYTES = 64 * 1024


@pytest.fixture
def daemon_log(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "daemon.log"
    handler = configure_daemon_logging("info", path, max_bytes=SMALL_LOG_BYTES)
    try:
        yield path
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def test_a_flood_of_one_kind_of_record_is_held_back_and_counted(daemon_log: Path) -> None:
    logger = logging.getLogger("hyperhive_core.flood")
    started = time.monotonic()
    for i in range(20_000):
        logger.warning("closing a connection that sent a line over %d bytes", i)
    try:
        raise OverflowError("Python int too large to convert to SQLite INTEGER")
    except OverflowError:
        for _ in range(2_000):
            logger.exception("tool send crashed")
    text = daemon_log.read_text()
    # The burst gets through, then one a second; what is held back is counted in the next let through.
    allowed = BURST + (time.monotonic() - started) * PER_S + 1
    assert text.count("closing a connection") <= allowed
    assert text.count("Traceback") <= allowed
    if text.count("closing a connection") > BURST:
        assert "more like this were not logged]" in text
    # Another kind of record is not starved by the flood.
    logging.getLogger("hyperhive_core.other").warning("something else")
    assert "something else" in daemon_log.read_text()


def test_the_log_file_is_rotated_at_its_size_limit(daemon_log: Path) -> None:
    logger = logging.getLogger("hyperhive_core.varied")
    line = "x" * 1000
    # Every record a kind of its own: no rate limit helps, only rotation.
    for i in range(3 * SMALL_LOG_BYTES // 1000):
        logger.warning(f"{i} {line}")  # noqa: G004  # each message its own kind, on purpose
    files = sorted(daemon_log.parent.glob("daemon.log*"))
    assert len(files) == LOG_BACKUPS + 1
    assert all(f.stat().st_size <= SMALL_LOG_BYTES for f in files)

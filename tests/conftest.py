"""Shared fixtures: the anyio backend and short temp dirs that fit AF_UNIX socket paths."""

import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperhive_core.lifecycle._cgroup import CgroupHost


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def short_tmpdir() -> Iterator[Path]:
    """A temp dir under /tmp with a short name: pytest's tmp_path can overflow the 107-byte socket limit."""
    path = Path(tempfile.mkdtemp(prefix="hh-", dir="/tmp"))
    try:
        yield path
    finally:
        # A daemon killed with -9 leaves its hive's (empty) cgroup dirs; the next daemon of that
        # state dir would remove them, but there is none.
        CgroupHost.detect(path / "state").close()
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo what an in-process `hivectl serve` does to the root logger: its stream dies with the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)

"""One daemon per state dir and per run dir: an exclusive flock on `daemon.lock` in each, held for the
daemon's life.

The kernel drops a flock when its holder dies, kill -9 included, so a lock is never stale. The file
holds the holder's pid, so the loser can name it. The descriptors are not inherited by agents.
"""

import fcntl
import os
from pathlib import Path

from hyperhive_core.errors import ConfigError, DaemonRunningError

LOCK_NAME = "daemon.lock"


def _holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


class DaemonLock:
    """The daemon's locks on its dirs; `release` (or process exit) lets go."""

    def __init__(self, dirs: tuple[Path, ...]) -> None:
        self.dirs = dirs
        self._fds: list[int] = []

    @classmethod
    def acquire(cls, *dirs: Path) -> "DaemonLock":
        """Lock every dir (creating it 0700 if missing), or none of them.

        Raises:
            DaemonRunningError: another process holds one of the locks.
            ConfigError: a dir or its lock file cannot be created.
        """
        lock = cls(tuple(dict.fromkeys(dirs)))
        try:
            for path in lock.dirs:
                lock._take(path)
        except BaseException:
            lock.release()
            raise
        return lock

    def _take(self, path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigError(f"cannot create {path / LOCK_NAME}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            raise DaemonRunningError(path, pid) from None
        self._fds.append(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        """Let go of every lock held."""
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()


def lock_holder(path: Path) -> int | None:
    """The pid of the daemon holding `path`'s lock, or None when no daemon holds it."""
    try:
        fd = os.open(path / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _holder(fd)
        os.close(fd)
        return pid
    os.close(fd)
    return None

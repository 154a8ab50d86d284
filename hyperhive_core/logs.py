"""The daemon's own log: rate-limited per message, and bounded in bytes on disk.

Agents are hostile: whatever they can make the daemon log (a refused call, a broken connection, a
crash in a tool) they can repeat a million times. So each kind of record (its logger, level and
format string) may burst `burst` times and then `per_s` times a second; what is held back is
counted and said in the next record of that kind that gets through. A detached daemon writes to
`daemon.log`, rotated at `LOG_MAX_BYTES` with `LOG_BACKUPS` old files kept.
"""

import logging
import logging.handlers
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_MAX_BYTES = 8 * 1024 * 1024
LOG_BACKUPS = 2
BURST = 20
PER_S = 1.0
# Kinds of records remembered at once; the least recently seen are forgotten past it.
MAX_KINDS = 1024


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float
    held: int = 0


class RateLimitFilter(logging.Filter):
    """Lets each kind of record through at most `burst` at once and `per_s` a second after."""

    def __init__(self, *, burst: int = BURST, per_s: float = PER_S) -> None:
        super().__init__()
        self.burst = burst
        self.per_s = per_s
        self._buckets: dict[tuple[str, int, str], _Bucket] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        """True to emit `record` (noting how many like it were held back), False to hold it back."""
        key = (record.name, record.levelno, str(record.msg))
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.pop(key, None) or _Bucket(tokens=float(self.burst), at=now)
            self._buckets[key] = bucket  # most recently seen last
            if len(self._buckets) > MAX_KINDS:
                del self._buckets[next(iter(self._buckets))]
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.per_s)
            bucket.at = now
            if bucket.tokens < 1:
                bucket.held += 1
                return False
            bucket.tokens -= 1
            held, bucket.held = bucket.held, 0
        if held:
            record.msg = f"{record.msg} [{held} more like this were not logged]"
        return True


def configure_daemon_logging(
    level: str, log_file: Path | None = None, *, max_bytes: int = LOG_MAX_BYTES
) -> logging.Handler:
    """Log the daemon through one rate-limited handler: to `log_file` (rotated at `max_bytes`) or stderr."""
    handler: logging.Handler
    if log_file is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        # Created private before the handler opens it (it would use the umask).
        os.close(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600))
        handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=max_bytes, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RateLimitFilter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.captureWarnings(True)
    # The SDK logs every refused tool call at INFO; the caller already got the error.
    logging.getLogger("mcp.server.mcpserver.server").setLevel(logging.WARNING)
    return handler

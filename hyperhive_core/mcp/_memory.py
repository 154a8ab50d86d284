"""Give memory a burst of large requests freed back to the operating system.

glibc keeps freed heap memory for reuse, and raises its mmap threshold each time a large block is
freed, so after a few MiB-sized lines every later one comes from a heap that never shrinks: the
issue saw 1.6 GB held 10 s after the connections closed. A fixed mmap threshold keeps large
buffers out of the heap (each is unmapped when freed), and `malloc_trim` returns what the heap
freed once enough has been. Without glibc (musl) both are skipped.
"""

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Blocks from this size up are mmap'd on their own: every line buffer and large string.
MMAP_THRESHOLD_BYTES = 256 * 1024
# Freed bytes (of large requests and closed connections) after which the heap is trimmed.
TRIM_AFTER_BYTES = 8 * 1024 * 1024


class _Libc:
    def __init__(self) -> None:
        self._mallopt = self._trim = None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            self._mallopt = libc.mallopt
            self._trim = libc.malloc_trim
        except (OSError, AttributeError):
            logger.info("no glibc malloc here: freed memory is returned as the allocator sees fit")
        self._configured = False
        self._freed = 0

    def configure(self) -> None:
        if self._configured or self._mallopt is None:
            return
        self._configured = True
        self._mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        self._mallopt(M_TRIM_THRESHOLD, MMAP_THRESHOLD_BYTES)

    def freed(self, nbytes: int) -> None:
        self._freed += nbytes
        if self._freed >= TRIM_AFTER_BYTES and self._trim is not None:
            self._freed = 0
            self._trim(0)


_libc = _Libc()


def configure_allocator() -> None:
    """Fix glibc's mmap and trim thresholds for this process (once; later calls do nothing)."""
    _libc.configure()


def note_freed(nbytes: int) -> None:
    """Say that about `nbytes` of request data became garbage; trims the heap once enough has."""
    _libc.freed(nbytes)

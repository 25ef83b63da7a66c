"""A bounded, broker-wide cache of segment file descriptors (issue 8).

Every ``.log`` file descriptor of the partition logs lives here, the active segments' append
descriptors included: a segment file is opened on its first read or append and closed when it
falls out of this LRU (`max_open`) or has not been used for `idle_close_s` (`close_idle`, run
by the LogManager's background task). So a broker with thousands of partitions holds a bounded
number of descriptors; indexes are never kept open (see ``kbroker/log/index.py``).

Closing a descriptor loses nothing: appends are ``os.write`` calls, already in the page cache
when they return, and fsync works on the file, whichever descriptor asks. Callers take a
descriptor with `get` and use it before calling `get` again (everything here runs on the event
loop thread; worker threads that fsync or clean open their own descriptors).
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from pathlib import Path

logger = logging.getLogger(__name__)

# At most this many segment files open at once (kbroker-specific: Kafka keeps every segment
# memory-mapped and has no such limit). 1,000 busy partitions then cost an open and a close per
# append beyond the cap (a few microseconds) instead of 1,000 descriptors.
DEFAULT_MAX_OPEN = 256
# A descriptor unused for this long is closed by `close_idle`.
DEFAULT_IDLE_CLOSE_S = 10.0

_WRITE_FLAGS = os.O_RDWR | os.O_APPEND


class _Entry:
    """One open descriptor: whether it may append, and when it was last used (sweep time)."""

    __slots__ = ("fd", "writable", "used")

    def __init__(self, fd: int, writable: bool, used: float) -> None:
        self.fd = fd
        self.writable = writable
        self.used = used


class FileHandleCache:
    """LRU of descriptors keyed by path: read-only ones, or O_APPEND ones for active segments."""

    def __init__(self, max_open: int = DEFAULT_MAX_OPEN, idle_close_s: float = DEFAULT_IDLE_CLOSE_S) -> None:
        self.max_open = max(1, max_open)
        self.idle_close_s = idle_close_s
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        # Last-use stamps are the time of the latest sweep, not a clock read per call: cheap,
        # and precise enough to close what sat idle for `idle_close_s` (one sweep's slack).
        self._now = time.monotonic()
        self.opens = 0  # descriptors opened so far (tests and diagnostics)

    def get(self, path: Path | str, *, writable: bool = False, create: bool = False) -> int:
        """A descriptor for `path`, opened if needed (the least recently used closed beyond the cap).

        `writable` gives an ``O_RDWR | O_APPEND`` descriptor (it serves reads too); `create`
        creates a missing file, which only a new segment may do: a segment file that vanished
        must fail (FileNotFoundError), not come back empty.
        """
        key = str(path)
        entry = self._entries.get(key)
        if entry is not None and (entry.writable or not writable):
            self._entries.move_to_end(key)
            entry.used = self._now
            return entry.fd
        if entry is not None:
            # A read-only descriptor cannot append: replace it.
            del self._entries[key]
            os.close(entry.fd)
        if writable:
            flags = _WRITE_FLAGS | (os.O_CREAT if create else 0)
        else:
            flags = os.O_RDONLY
        fd = os.open(key, flags, 0o644)
        self.opens += 1
        self._entries[key] = _Entry(fd, writable, self._now)
        while len(self._entries) > self.max_open:
            _, old = self._entries.popitem(last=False)
            os.close(old.fd)
        return fd

    def peek(self, path: Path | str) -> int | None:
        """The descriptor of `path` if one is open (does not count as a use)."""
        entry = self._entries.get(str(path))
        return entry.fd if entry is not None else None

    def evict(self, path: Path | str) -> None:
        """Close the descriptor of `path` if open (before the file is truncated, replaced or deleted)."""
        entry = self._entries.pop(str(path), None)
        if entry is not None:
            os.close(entry.fd)

    def close_idle(self, now: float | None = None) -> int:
        """Close descriptors unused for `idle_close_s`; returns how many were closed."""
        self._now = time.monotonic() if now is None else now
        limit = self._now - self.idle_close_s
        closed = 0
        # The LRU order is the order of last use, so the idle ones are at the front.
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.used > limit:
                break
            del self._entries[key]
            os.close(entry.fd)
            closed += 1
        if closed:
            logger.debug("closed %d idle segment descriptors, %d open", closed, len(self._entries))
        return closed

    def __len__(self) -> int:
        return len(self._entries)

    def close_all(self) -> None:
        """Close every cached descriptor."""
        while self._entries:
            _, entry = self._entries.popitem()
            os.close(entry.fd)


_shared = FileHandleCache()


def shared_cache() -> FileHandleCache:
    """The process-wide cache used when a PartitionLog is not given one."""
    return _shared

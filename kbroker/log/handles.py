"""A bounded cache of read-only file descriptors for inactive segments.

Only the active segment of a partition keeps its file open for appends; older segments are
opened on demand for reads and closed again when they fall out of this LRU, so a broker with
thousands of segments holds a bounded number of descriptors (issue 8).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

DEFAULT_MAX_OPEN = 256


class FileHandleCache:
    """LRU of ``os.open(path, O_RDONLY)`` descriptors keyed by path."""

    def __init__(self, max_open: int = DEFAULT_MAX_OPEN) -> None:
        self.max_open = max(1, max_open)
        self._fds: OrderedDict[str, int] = OrderedDict()

    def get(self, path: Path) -> int:
        """A descriptor for `path`, opening it (and closing the least recently used) if needed."""
        key = str(path)
        fd = self._fds.get(key)
        if fd is not None:
            self._fds.move_to_end(key)
            return fd
        fd = os.open(key, os.O_RDONLY)
        self._fds[key] = fd
        while len(self._fds) > self.max_open:
            _, old = self._fds.popitem(last=False)
            os.close(old)
        return fd

    def evict(self, path: Path) -> None:
        """Close the descriptor of `path` if open (before the file is truncated or deleted)."""
        fd = self._fds.pop(str(path), None)
        if fd is not None:
            os.close(fd)

    def __len__(self) -> int:
        return len(self._fds)

    def close_all(self) -> None:
        """Close every cached descriptor."""
        while self._fds:
            _, fd = self._fds.popitem()
            os.close(fd)


_shared = FileHandleCache()


def shared_cache() -> FileHandleCache:
    """The process-wide cache used when a PartitionLog is not given one."""
    return _shared

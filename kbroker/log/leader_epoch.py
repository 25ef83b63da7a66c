"""Leader epoch cache of one partition: (epoch, start offset) pairs, Kafka's LeaderEpochFileCache.

Persisted in the partition's ``leader-epoch-checkpoint`` whenever it changes (rare: once per
leader change), and answering OffsetForLeaderEpoch through `end_offset_for`.

A new epoch seen on append is written without fsync (as Kafka does since KAFKA-15046): the
first produce to each of many partitions must not cost an fsync each. The partition log
fsyncs the file (`sync`, `unsynced_path`) before it moves its recovery point, and recovery
rebuilds the epochs of everything above the recovery point from the batches, so a crash
loses no epoch of data that recovery would keep.
"""

from __future__ import annotations

from bisect import bisect_right
from pathlib import Path

from kbroker.log import checkpoints, files

UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


class LeaderEpochCache:
    """Epochs in increasing order with increasing start offsets."""

    def __init__(self, path: Path, entries: list[tuple[int, int]] | None = None) -> None:
        self.path = path
        self._unsynced = False  # written without fsync since the last `sync`
        self._entries: list[tuple[int, int]] = []
        for epoch, start in entries or []:
            self._add(epoch, start)

    @classmethod
    def load(cls, path: Path) -> "LeaderEpochCache":
        """Read the checkpoint file (missing or malformed: empty cache)."""
        return cls(path, checkpoints.read_epochs(path))

    @property
    def entries(self) -> list[tuple[int, int]]:
        """A copy of the (epoch, start offset) list."""
        return list(self._entries)

    @property
    def latest_epoch(self) -> int:
        """The newest epoch, or -1 when empty."""
        return self._entries[-1][0] if self._entries else UNDEFINED_EPOCH

    def _add(self, epoch: int, start_offset: int) -> bool:
        if epoch < 0:
            return False
        if self._entries:
            last_epoch, last_start = self._entries[-1]
            if epoch <= last_epoch:
                return False
            if start_offset < last_start:
                # A newer epoch starting earlier overrides entries it covers (Kafka does the same).
                self._entries = [e for e in self._entries if e[1] < start_offset]
        self._entries.append((epoch, start_offset))
        return True

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that `epoch` starts at `start_offset` if it is new; persists on change."""
        changed = self._add(epoch, start_offset)
        if changed:
            self.write(fsync=False)
        return changed

    def truncate_from_end(self, end_offset: int) -> None:
        """Drop epochs starting at or after `end_offset` (log truncated there)."""
        kept = [e for e in self._entries if e[1] < end_offset]
        if kept != self._entries:
            self._entries = kept
            self.write()

    def truncate_from_start(self, start_offset: int) -> None:
        """Forget epochs wholly before `start_offset`; the one covering it starts there."""
        starts = [s for _, s in self._entries]
        i = bisect_right(starts, start_offset) - 1
        if i < 0:
            return
        kept = [(self._entries[i][0], max(start_offset, self._entries[i][1]))] + self._entries[i + 1 :]
        if kept != self._entries:
            self._entries = kept
            self.write()

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> tuple[int, int]:
        """(epoch, end offset) as Kafka's LeaderEpochFileCache.endOffsetFor answers it."""
        if requested_epoch == UNDEFINED_EPOCH:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if self._entries and self._entries[-1][0] == requested_epoch:
            return requested_epoch, log_end_offset
        epochs = [e for e, _ in self._entries]
        higher = bisect_right(epochs, requested_epoch)
        if higher >= len(self._entries):
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        higher_start = self._entries[higher][1]
        if higher == 0:
            return requested_epoch, higher_start
        return self._entries[higher - 1][0], higher_start

    def write(self, *, fsync: bool = True) -> None:
        """Persist atomically (durably unless `fsync` is False: then `sync` must follow)."""
        checkpoints.write_epochs(self.path, self._entries, fsync=fsync)
        self._unsynced = not fsync

    @property
    def unsynced_path(self) -> Path | None:
        """The checkpoint path while a write awaits its fsync (for a flush in a worker thread)."""
        return self.path if self._unsynced else None

    def sync(self) -> None:
        """fsync the checkpoint file and its directory if a write has not been yet."""
        if self._unsynced:
            files.fsync_paths([self.path, self.path.parent])
            self._unsynced = False

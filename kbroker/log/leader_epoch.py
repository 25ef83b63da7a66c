"""Leader epoch cache of one partition: (epoch, start offset) pairs, Kafka's LeaderEpochFileCache.

Persisted in the partition's ``leader-epoch-checkpoint`` (changes are rare: once per leader
change), and answering OffsetForLeaderEpoch through `end_offset_for`.

A new epoch seen on append is only noted (the first produce to each of many partitions must
not cost a file creation and an fsync each; Kafka stopped fsyncing it on that path too,
KAFKA-15046). The partition log makes the file durable (`sync`, `prepare_background_sync`)
before it moves its recovery point, and recovery rebuilds the epochs of everything above the
recovery point from the batches, so a crash loses no epoch of data that recovery keeps.
"""

from __future__ import annotations

from bisect import bisect_right
from pathlib import Path

from kbroker.log import checkpoints

UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


class LeaderEpochCache:
    """Epochs in increasing order with increasing start offsets."""

    def __init__(self, path: Path, entries: list[tuple[int, int]] | None = None) -> None:
        self.path = path
        self._dirty = False  # entries changed since the file was last made durable
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
        """Record that `epoch` starts at `start_offset` if it is new (written by the next flush)."""
        changed = self._add(epoch, start_offset)
        if changed:
            self._dirty = True
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

    def write(self) -> None:
        """Persist atomically and durably."""
        checkpoints.write_epochs(self.path, self._entries)
        self._dirty = False

    @property
    def dirty(self) -> bool:
        """True while the file lags the entries (a new epoch was assigned since the last write)."""
        return self._dirty

    def sync(self) -> None:
        """Write the file durably if it lags the entries."""
        if self._dirty:
            self.write()

    def prepare_background_sync(self) -> Path | None:
        """Write a lagging file without fsync and return its path for a worker thread to fsync.

        The cache stays dirty, so the next `sync` writes it durably again: a new epoch assigned
        while the worker runs is never taken for durable.
        """
        if not self._dirty:
            return None
        checkpoints.write_epochs(self.path, self._entries, fsync=False)
        return self.path

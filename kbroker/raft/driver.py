"""Single-voter quorum: the trio side of the metadata log.

With one voter the node is always the leader and a record is committed as soon as it is
durable. `append` writes the batch immediately (so offsets follow call order), then waits
for an fsync that covers it; concurrent appends share one fsync (group commit). Committed
batches go to the listeners in offset order before `append` returns.

The leader epoch is kept in `quorum-state` (JSON, as Kafka's file of that name) and bumped at
every start, as an election would, so batches of different runs carry different epochs.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import trio

from kbroker.raft.log import MetadataLog
from kbroker.raft.quorum import CommitListener
from kbroker.raft.snapshot import load_latest_snapshot, write_snapshot

logger = logging.getLogger(__name__)

QUORUM_STATE_FILE = "quorum-state"


class SingleVoterQuorum:
    """`QuorumLog` for a cluster of one controller; see the module docstring."""

    def __init__(self, directory: Path, node_id: int, *, now_ms=None) -> None:
        self.directory = directory
        self.node_id = node_id
        self.leader_epoch = 0
        self._now_ms = now_ms or (lambda: int(time.time() * 1000))
        self._log: MetadataLog | None = None
        self._listeners: list[CommitListener] = []
        self._pending: list[tuple[int, list[bytes]]] = []  # written, not yet fsynced
        self._flush_lock = trio.Lock()

    # -- lifecycle

    def open(self) -> None:
        """Open the log (recovering a torn tail) and become leader of a new epoch."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._log = MetadataLog.open(self.directory)
        snapshot = load_latest_snapshot(self.directory)
        if snapshot is not None and self._log.end_offset < snapshot.end_offset:
            if self._log.size_bytes:
                raise RuntimeError(
                    f"metadata log in {self.directory} ends at offset {self._log.end_offset}, before its "
                    f"snapshot's end offset {snapshot.end_offset}: the log lost committed records")
            # The records below the snapshot are gone (or were never here): continue after it.
            self._log.end_offset = self._log.flushed_offset = snapshot.end_offset
        self.leader_epoch = self._read_epoch() + 1
        self._write_epoch(self.leader_epoch)
        logger.info("metadata quorum open node_id=%d leader_epoch=%d end_offset=%d",
                    self.node_id, self.leader_epoch, self._log.end_offset)

    async def serve(self) -> None:
        """Stay up until cancelled, then close the log (a single voter has no background work)."""
        try:
            await trio.sleep_forever()
        finally:
            self.close()

    def close(self) -> None:
        """Flush and close the log."""
        if self._log is not None:
            self._log.close()
            self._log = None

    def _read_epoch(self) -> int:
        try:
            state = json.loads((self.directory / QUORUM_STATE_FILE).read_text())
            return int(state.get("leaderEpoch", 0))
        except FileNotFoundError:
            return 0
        except (ValueError, TypeError):
            logger.warning("metadata quorum: unreadable %s, starting from epoch 0", QUORUM_STATE_FILE)
            return 0

    def _write_epoch(self, epoch: int) -> None:
        path = self.directory / QUORUM_STATE_FILE
        tmp = path.with_name(path.name + ".tmp")
        state = {"clusterId": "", "leaderId": self.node_id, "leaderEpoch": epoch, "votedId": self.node_id,
                 "appliedOffset": 0, "currentVoters": [{"voterId": self.node_id}], "data_version": 0}
        with open(tmp, "w") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    # -- QuorumLog

    @property
    def end_offset(self) -> int:
        """Offset of the next appended record."""
        assert self._log is not None, "quorum not open"
        return self._log.end_offset

    def add_listener(self, fn: CommitListener) -> None:
        """Register a callback for committed batches."""
        self._listeners.append(fn)

    async def append(self, values: list[bytes]) -> int:
        """Write a batch now, return its last offset once fsynced and published."""
        log = self._log
        assert log is not None, "quorum not open"
        base, last = log.append(values, leader_epoch=self.leader_epoch, now_ms=self._now_ms())
        self._pending.append((base, values))
        # Shielded: once written, the batch must be fsynced and published even if the caller
        # is cancelled (client gone, shutdown), or the controller's view and the log diverge.
        with trio.CancelScope(shield=True):
            async with self._flush_lock:
                if log.flushed_offset <= last:
                    await trio.to_thread.run_sync(log.flush)
                    self._publish(log.flushed_offset)
        return last

    def _publish(self, flushed: int) -> None:
        ready = [p for p in self._pending if p[0] < flushed]
        self._pending = [p for p in self._pending if p[0] >= flushed]
        for base, values in ready:
            for fn in self._listeners:
                fn(base, values)

    def read_committed(self, start_offset: int) -> list[tuple[int, list[bytes]]]:
        """Committed batches from `start_offset`, grouped as written (used at start-up)."""
        assert self._log is not None, "quorum not open"
        out: list[tuple[int, list[bytes]]] = []
        for offset, value in self._log.read_from(start_offset):
            if out and out[-1][0] + len(out[-1][1]) == offset:
                out[-1][1].append(value)
            else:
                out.append((offset, [value]))
        return out

    def latest_snapshot(self) -> tuple[int, list[bytes]] | None:
        """(end offset, values) of the newest intact snapshot."""
        snap = load_latest_snapshot(self.directory)
        return (snap.end_offset, snap.values) if snap else None

    def save_snapshot(self, end_offset: int, values: list[bytes]) -> None:
        """Write a snapshot atomically (small: metadata only, so done inline)."""
        write_snapshot(self.directory, end_offset, self.leader_epoch, values, now_ms=self._now_ms())

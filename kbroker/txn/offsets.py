"""Transactional offset commits in __consumer_offsets (TxnOffsetCommit), as Kafka stores them.

TxnOffsetCommit appends the offsets as ordinary OffsetCommit records inside a transactional
batch (the producer's id and epoch) to the group's __consumer_offsets partition; EndTxn then
writes a COMMIT or ABORT marker there. When __consumer_offsets is loaded, `TxnOffsetLoader`
holds such records back until their producer's marker: COMMIT releases them for replay, ABORT
drops them, and those of transactions still open at the end are handed to the transaction
coordinator (staged again, so a commit after a restart still makes them visible). Pure.
"""

from __future__ import annotations

import struct
from typing import Any

COMMIT = 1          # control record type of a COMMIT marker (0 is ABORT)


def is_commit_marker(batch: Any) -> bool:
    """Whether a decoded control batch is a COMMIT marker."""
    if not batch.records or batch.records[0].key is None or len(batch.records[0].key) < 4:
        return False
    _version, control_type = struct.unpack_from(">hh", batch.records[0].key)
    return control_type == COMMIT


class TxnOffsetLoader:
    """Splits a __consumer_offsets replay into records to apply now and open transactions."""

    def __init__(self) -> None:
        self.pending: dict[int, list[tuple[bytes | None, bytes | None]]] = {}

    def feed(self, batch: Any) -> list[tuple[bytes | None, bytes | None]]:
        """The (key, value) records of `batch` (a decoded RecordBatch) to replay now."""
        if batch.is_control:
            held = self.pending.pop(batch.producer_id, [])
            return held if is_commit_marker(batch) else []
        pairs = [(r.key, r.value) for r in batch.records]
        if batch.is_transactional:
            self.pending.setdefault(batch.producer_id, []).extend(pairs)
            return []
        return pairs

    def open_transactions(self) -> dict[int, list[tuple[bytes | None, bytes | None]]]:
        """Records of transactions with no marker yet, by producer id."""
        return {pid: pairs for pid, pairs in self.pending.items() if pairs}

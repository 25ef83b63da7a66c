"""Aborted-transaction index: ``<base offset>.txnindex`` files in a partition directory.

Kafka keeps, per segment, the list of transactions that were aborted in it, so a
read_committed Fetch can tell the client which producers' records to drop between the fetch
offset and the last stable offset. Each entry is 34 bytes, big endian, as Kafka's
``AbortedTxn``::

    version int16 (0)  producer_id int64  first_offset int64  last_offset int64
    last_stable_offset int64

``first_offset`` is the transaction's first record, ``last_offset`` its ABORT marker, and
``last_stable_offset`` the partition's LSO right after the marker was written.

The files are named after the base offset of the segment that was active when the marker
was appended (the segment holding the marker). Pure: synchronous file I/O only.
"""

from __future__ import annotations

import logging
import os
import struct
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

ENTRY = struct.Struct(">hqqqq")
ENTRY_SIZE = ENTRY.size  # 34
CURRENT_VERSION = 0
SUFFIX = ".txnindex"


@dataclass(frozen=True, slots=True)
class AbortedTxn:
    """One aborted transaction of one producer in one partition."""

    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int

    def encode(self) -> bytes:
        """The 34-byte on-disk entry."""
        return ENTRY.pack(CURRENT_VERSION, self.producer_id, self.first_offset, self.last_offset,
                          self.last_stable_offset)

    def as_fetch_entry(self) -> dict:
        """The Fetch response's AbortedTransaction element."""
        return {"producer_id": self.producer_id, "first_offset": self.first_offset}


def txn_index_path(directory: Path, base_offset: int) -> Path:
    """``<dir>/<20-digit base offset>.txnindex``, Kafka's naming."""
    return Path(directory) / f"{base_offset:020d}{SUFFIX}"


def read_entries(path: Path) -> list[AbortedTxn]:
    """Every complete entry of one file; a torn tail (crash mid-write) is ignored."""
    data = Path(path).read_bytes()
    usable = len(data) - len(data) % ENTRY_SIZE
    if usable != len(data):
        logger.warning("ignoring %d torn bytes at the end of %s", len(data) - usable, path)
    entries = []
    for pos in range(0, usable, ENTRY_SIZE):
        version, pid, first, last, lso = ENTRY.unpack_from(data, pos)
        if version != CURRENT_VERSION:
            logger.warning("unknown txn index entry version %d in %s; stopping there", version, path)
            break
        entries.append(AbortedTxn(pid, first, last, lso))
    return entries


class AbortedTxnIndex:
    """All ``.txnindex`` files of one partition directory, newest segment last."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._files: dict[int, list[AbortedTxn]] = {}
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            try:
                base = int(path.name[: -len(SUFFIX)])
            except ValueError:
                continue
            self._files[base] = read_entries(path)
        self._bases = sorted(self._files)

    def append(self, txn: AbortedTxn, segment_base_offset: int) -> None:
        """Record `txn` in the file of the segment starting at `segment_base_offset`."""
        assert txn.first_offset <= txn.last_offset, txn
        if segment_base_offset not in self._files:
            self._files[segment_base_offset] = []
            self._bases = sorted(self._files)
        entries = self._files[segment_base_offset]
        entries.append(txn)
        path = txn_index_path(self.directory, segment_base_offset)
        # Append mode: one small write per aborted transaction, as Kafka's TransactionIndex.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, txn.encode())
        finally:
            os.close(fd)

    def all(self) -> list[AbortedTxn]:
        """Every entry, oldest segment first."""
        return [txn for base in self._bases for txn in self._files[base]]

    def collect(self, fetch_offset: int, upper_bound_offset: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping [fetch_offset, upper_bound_offset).

        As Kafka's ``collectAbortedTxns``: every transaction whose marker is at or after the
        fetch offset and whose first record is before the upper bound. Files of segments that
        end before `fetch_offset` may still hold such transactions (a transaction can span
        segments), so every file is looked at; the lists are short.
        """
        return [txn for txn in self.all()
                if txn.last_offset >= fetch_offset and txn.first_offset < upper_bound_offset]

    def truncate_to(self, offset: int) -> None:
        """Drop entries whose marker is at or beyond `offset` (log truncation, recovery)."""
        for base in list(self._bases):
            entries = self._files[base]
            kept = [txn for txn in entries if txn.last_offset < offset]
            if len(kept) == len(entries):
                continue
            path = txn_index_path(self.directory, base)
            if kept or base < offset:
                self._files[base] = kept
                tmp = path.with_suffix(SUFFIX + ".tmp")
                tmp.write_bytes(b"".join(t.encode() for t in kept))
                os.replace(tmp, path)
            else:
                del self._files[base]
                path.unlink(missing_ok=True)
        self._bases = sorted(self._files)

    def delete_below(self, log_start_offset: int) -> None:
        """Delete files whose every transaction ended before `log_start_offset` (retention)."""
        for base in list(self._bases):
            entries = self._files[base]
            if all(txn.last_offset < log_start_offset for txn in entries):
                # keep the newest file: the active segment may still add entries to it
                if base == self._bases[-1] and entries == []:
                    continue
                del self._files[base]
                txn_index_path(self.directory, base).unlink(missing_ok=True)
        self._bases = sorted(self._files)

    def segment_for(self, offset: int) -> int | None:
        """The base of the file that would hold a marker at `offset` (None: no file yet)."""
        i = bisect_right(self._bases, offset) - 1
        return self._bases[i] if i >= 0 else None

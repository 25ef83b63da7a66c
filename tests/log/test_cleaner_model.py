"""Model-based test of compaction (hypothesis): random keyed writes, deletes, rolls, cleans and
reopens against a dict model.

Transactions are in the model too: a committed transaction updates it, an aborted one does
not (readers here skip aborted data as a read_committed consumer would, until the cleaner
removes it).

Invariants after every step: the latest value the log serves for each key equals the model;
offsets served are strictly increasing and never renumbered; the log end offset only grows;
after a clean, every cleaned segment holds each live key at most once, and tombstones older
than delete.retention.ms are gone from the cleaned part.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from protocol.record_codec import ControlRecordType, Record, build_batch, build_control_batch, decode_batch, decode_control_record
from protocol.records import Compression, iter_batches

from kbroker.log.cleaner import CleanerCheckpoints, clean_log_now
from tests.log.helpers import NOW_MS, open_log, small_config

KEYS = [b"k%d" % i for i in range(6)]
RETENTION_MS = 10_000


def config():
    return small_config(cleanup_policy=("compact",), segment_bytes=600, min_cleanable_dirty_ratio=0.0,
                        delete_retention_ms=RETENTION_MS)


class CompactionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="kbroker-compaction-"))
        self.directory = self.tmp / "model-0"
        self.log = open_log(self.directory, config())
        self.model: dict[bytes, bytes | None] = {}  # None: deleted (tombstone written)
        self.offsets: dict[bytes, int] = {}  # offset of the latest write per key
        self.now_ms = NOW_MS
        self.checkpoints = CleanerCheckpoints()
        self.counter = 0
        self.last_leo = 0

    def teardown(self) -> None:
        if not self.log.closed:
            self.log.close(flush=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _append(self, pairs: list[tuple[bytes, bytes | None]], codec: int, *, producer_id: int = -1,
                update_model: bool = True) -> None:
        records = [Record(i, 0, k, v) for i, (k, v) in enumerate(pairs)]
        txn = dict(producer_id=producer_id, producer_epoch=0, base_sequence=0, is_transactional=True) \
            if producer_id >= 0 else {}
        batch = build_batch(records, base_timestamp=self.now_ms, compression=codec, **txn)
        base = self.log.append(batch, leader_epoch=0, now_ms=self.now_ms).base_offset
        if update_model:
            for i, (key, value) in enumerate(pairs):
                self.model[key] = value
                self.offsets[key] = base + i

    @rule(keys=st.lists(st.sampled_from(KEYS), min_size=1, max_size=3), commit=st.booleans())
    def transaction(self, keys, commit):
        self.counter += 1
        pairs = [(k, b"txn %s=%d" % (k, self.counter)) for k in keys]
        self._append(pairs, Compression.NONE, producer_id=42, update_model=commit)
        marker = build_control_batch(commit, 42, 0, 0, timestamp=self.now_ms)
        self.log.append(marker, leader_epoch=0, now_ms=self.now_ms)

    @rule(keys=st.lists(st.sampled_from(KEYS), min_size=1, max_size=4),
          codec=st.sampled_from([Compression.NONE, Compression.GZIP, Compression.ZSTD]))
    def write(self, keys, codec):
        self.counter += 1
        self._append([(k, b"%s=%d" % (k, self.counter) + b"." * 30) for k in keys], codec)

    @rule(key=st.sampled_from(KEYS))
    def delete(self, key):
        self._append([(key, None)], Compression.NONE)

    @rule()
    def roll(self):
        self.log.roll(self.now_ms)

    @rule(ms=st.integers(min_value=0, max_value=2 * RETENTION_MS))
    def advance_clock(self, ms):
        self.now_ms += ms

    @rule()
    def clean(self):
        clean_log_now(self.log, self.now_ms, self.checkpoints)
        self._check_cleaned_part()

    @rule()
    def reopen(self):
        self.log.close(flush=True)
        self.log = open_log(self.directory, config(), recovery_point=0, clean_shutdown=False)

    def _served(self) -> list[tuple[int, bytes | None, bytes | None, int]]:
        """Records as a read_committed reader sees them (aborted transactions skipped)."""
        out = []
        open_txn: list[tuple[int, bytes | None, bytes | None, int]] = []
        offset = self.log.log_start_offset
        while offset < self.log.log_end_offset:
            data = self.log.read(offset, 1 << 20).records
            assert data, f"nothing served at {offset}"
            for pos, header in iter_batches(data):
                batch = decode_batch(data, pos)
                if header.is_control:
                    if batch.records and decode_control_record(batch.records[0]).type == ControlRecordType.COMMIT:
                        out += open_txn
                    open_txn = []
                else:
                    target = open_txn if header.is_transactional else out
                    for record in batch.records:
                        target.append((header.base_offset + record.offset_delta, record.key, record.value,
                                       header.max_timestamp))
                offset = header.next_offset
        return sorted(out)

    def _check_cleaned_part(self) -> None:
        boundary = self.log.segments[-1].base_offset
        # A transaction whose marker is in the active segment was still open for the cleaner
        # (its data is left alone), so uniqueness is only promised below its first batch.
        txn_start = None
        for header, _ in self.log.batches():
            if header.is_transactional and not header.is_control and txn_start is None:
                txn_start = header.base_offset
            elif header.is_control:
                if header.base_offset >= boundary and txn_start is not None:
                    boundary = min(boundary, txn_start)
                txn_start = None
        pending_records = 0  # records of the transaction in progress, in the cleaned part
        for header, raw in self.log.batches():
            if header.base_offset >= boundary:
                break
            if header.is_control:
                control = decode_control_record(decode_batch(raw).records[0])
                assert not (control.type == ControlRecordType.ABORT and pending_records), "aborted data survived"
                pending_records = 0
            elif header.is_transactional:
                pending_records += header.records_count
        seen: set[bytes] = set()
        for offset, key, value, timestamp in self._served():
            if offset >= boundary:
                break
            assert key not in seen, f"key {key!r} twice in the cleaned part"
            seen.add(key)
            if value is None:
                assert self.now_ms - timestamp < RETENTION_MS, "expired tombstone survived"

    @invariant()
    def latest_values_match_the_model(self):
        served = self._served()
        offsets = [o for o, *_ in served]
        assert offsets == sorted(set(offsets))
        latest: dict[bytes, tuple[int, bytes | None]] = {}
        for offset, key, value, _ in served:
            latest[key] = (offset, value)
        for key, value in self.model.items():
            if value is None:
                assert latest.get(key, (0, None))[1] is None
            else:
                assert latest[key] == (self.offsets[key], value)
        assert set(latest) <= set(self.model)
        assert self.log.log_end_offset >= self.last_leo
        self.last_leo = self.log.log_end_offset


CompactionMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=30, deadline=None)
TestCompaction = CompactionMachine.TestCase

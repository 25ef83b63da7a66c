"""Model-based test of retention and DeleteRecords (hypothesis): random appends with moving
timestamps, clock moves, config changes, retention rounds, DeleteRecords and reopens.

Invariants after every step: the log start offset never moves back and never passes the
high watermark; the log end offset never moves back; every record from the log start to the
end is served, in order, with its original offset and payload; retention never deletes a
segment that retention.ms and retention.bytes would keep (checked against the policy
computed from the model), and never the active segment.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from protocol.record_codec import decode_batch
from protocol.records import iter_batches

from kbroker.log.retention import PendingDeletions, apply_retention
from tests.log.helpers import NOW_MS, make_batch, open_log, small_config

HOUR_MS = 3_600_000


class RetentionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="kbroker-retention-"))
        self.directory = self.tmp / "ret-0"
        self.config = small_config(segment_bytes=400, retention_ms=-1, retention_bytes=-1)
        self.log = open_log(self.directory, self.config)
        self.now_ms = NOW_MS
        self.payloads: dict[int, bytes] = {}  # offset -> value written
        self.pending = PendingDeletions()
        self.last_start = 0
        self.last_leo = 0

    def teardown(self) -> None:
        if not self.log.closed:
            self.log.close(flush=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    @rule(batches=st.lists(st.tuples(st.integers(1, 2), st.integers(0, 3 * HOUR_MS), st.integers(10, 60)),
                           min_size=1, max_size=8))
    def append(self, batches):
        for count, age_ms, size in batches:
            tag = len(self.payloads) % 250
            batch = make_batch(count, value_size=size, timestamp=self.now_ms - age_ms, tag=tag)
            base = self.log.append(batch, leader_epoch=0, now_ms=self.now_ms).base_offset
            for i, record in enumerate(decode_batch(batch).records):
                self.payloads[base + i] = record.value

    @rule(ms=st.integers(0, 2 * HOUR_MS))
    def advance_clock(self, ms):
        self.now_ms += ms

    @rule(retention_ms=st.sampled_from([-1, HOUR_MS, 2 * HOUR_MS]),
          retention_bytes=st.sampled_from([-1, 300, 1000, 3000]))
    def change_config(self, retention_ms, retention_bytes):
        self.config = small_config(segment_bytes=400, retention_ms=retention_ms, retention_bytes=retention_bytes)
        self.log.update_config(self.config)

    @rule()
    def retention(self):
        before = self.log.segments
        apply_retention(self.log, self.now_ms, self.pending)
        after = self.log.segments
        deleted = before[: len(before) - len(after)]
        assert after[-1] is before[-1], "the active segment went"
        remaining = sum(s.size for s in before)
        for segment in deleted:
            by_time = (self.config.retention_ms >= 0 and segment.max_timestamp >= 0
                       and self.now_ms - segment.max_timestamp > self.config.retention_ms)
            by_size = self.config.retention_bytes >= 0 and remaining - segment.size >= self.config.retention_bytes
            assert by_time or by_size, f"retention deleted {segment} without cause"
            remaining -= segment.size
        self.pending.remove_due(self.now_ms + 60_000)

    @rule(fraction=st.integers(0, 100))
    def delete_records(self, fraction):
        offset = self.log.high_watermark * fraction // 100
        assert self.log.delete_records_before(offset) == max(offset, self.last_start)

    @rule()
    def reopen(self):
        self.log.write_checkpoints()
        self.log.close(flush=True)
        self.log = open_log(self.directory, self.config, clean_shutdown=False)

    @invariant()
    def offsets_and_records(self):
        log = self.log
        assert log.log_start_offset >= self.last_start
        assert log.log_start_offset <= log.high_watermark <= log.log_end_offset
        assert log.log_end_offset >= self.last_leo
        self.last_start, self.last_leo = log.log_start_offset, log.log_end_offset
        offset = log.log_start_offset
        served = []
        while offset < log.log_end_offset:
            data = log.read(offset, 1 << 20).records
            assert data
            for pos, header in iter_batches(data):
                for record in decode_batch(data, pos).records:
                    served.append((header.base_offset + record.offset_delta, record.value))
                offset = header.next_offset
        served = [(o, v) for o, v in served if o >= log.log_start_offset]
        assert served == [(o, self.payloads[o]) for o in range(log.log_start_offset, log.log_end_offset)]


RetentionMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=40, deadline=None)
TestRetention = RetentionMachine.TestCase

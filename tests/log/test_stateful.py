"""Model-based test of PartitionLog (Redpanda opfuzz style): random appends, reads, rolls,
clean and crashing reopens, truncations and log-start moves against a list of batches."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from protocol.records import iter_batches, validate_batch

from kbroker.errors import KafkaError
from kbroker.log import files
from tests.log.helpers import NOW_MS, make_batch, open_log, small_config

GARBAGE_TAILS = [b"", b"\x00" * 200, b"\xff" * 33, b"\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x01\x00"]


class LogMachine(RuleBasedStateMachine):
    """Model: the (base offset, last offset, produced bytes) of every batch, and the log start."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="kbroker-log-model-"))
        self.directory = self.root / "model-0"
        self.config = small_config(segment_bytes=1024, index_interval_bytes=64)
        self.log = open_log(self.directory, self.config)
        self.batches: list[tuple[int, int, bytes]] = []
        self.log_start = 0
        self.counter = 0

    @property
    def leo(self) -> int:
        return self.batches[-1][1] + 1 if self.batches else self.log_start

    def teardown(self) -> None:
        if not self.log.closed:
            self.log.close(flush=False)
        shutil.rmtree(self.root, ignore_errors=True)

    # ----------------------------------------------------------------- operations

    @rule(count=st.integers(1, 5), value_size=st.integers(1, 150), epoch=st.integers(0, 3))
    def append(self, count, value_size, epoch):
        self.counter += 1
        batch = make_batch(count, value_size=value_size, tag=self.counter, timestamp=NOW_MS + self.counter)
        result = self.log.append(batch, leader_epoch=epoch, now_ms=NOW_MS)
        assert result.base_offset == self.leo
        self.batches.append((result.base_offset, result.last_offset, batch))

    @rule(data=st.data(), max_bytes=st.integers(0, 2000))
    def read(self, data, max_bytes):
        offset = data.draw(st.integers(self.log_start, self.leo), label="offset")
        records = self.log.read(offset, max_bytes).records
        if offset == self.leo:
            assert records == b""
            return
        expected = [b for b in self.batches if b[1] >= offset]
        got = list(iter_batches(records))
        assert got, "a read below the LEO returns at least one batch"
        consumed = got[-1][0] + got[-1][1].size
        assert consumed == len(records), "only whole batches"
        assert len(records) <= max_bytes or len(got) == 1
        for (pos, header), (base, last, produced) in zip(got, expected):
            assert (header.base_offset, header.last_offset) == (base, last)
            stored = records[pos:pos + header.size]
            validate_batch(stored, 0)
            assert stored[16:] == produced[16:]

    @rule()
    def roll(self):
        self.log.roll(NOW_MS)

    @rule()
    def flush(self):
        self.log.flush()

    @rule()
    def reopen_clean(self):
        self.log.close()
        (self.root / files.CLEAN_SHUTDOWN_MARKER).write_text("{}")
        self.log = open_log(self.directory, self.config)
        (self.root / files.CLEAN_SHUTDOWN_MARKER).unlink()

    @rule(tail=st.sampled_from(GARBAGE_TAILS))
    def reopen_after_crash(self, tail):
        # kill -9: written bytes survive (page cache), indexes and checkpoints may lag.
        active = self.log.active_segment.log_path
        self.log._handles.close_all()
        self.log.closed = True
        with open(active, "ab") as f:
            f.write(tail)
        self.log = open_log(self.directory, self.config)

    @rule(data=st.data(), how=st.sampled_from(["delete", "garbage", "shuffle"]))
    def reopen_with_damaged_index(self, data, how):
        self.log.close()
        (self.root / files.CLEAN_SHUTDOWN_MARKER).write_text("{}")
        indexes = sorted(self.directory.glob("*.index")) + sorted(self.directory.glob("*.timeindex"))
        victim = data.draw(st.sampled_from(indexes), label="index")
        if how == "delete":
            victim.unlink()
        elif how == "garbage":
            victim.write_bytes(victim.read_bytes() + b"\x07\x07\x07")
        else:
            content = victim.read_bytes()
            victim.write_bytes(content[len(content) // 2:] + content[: len(content) // 2])
        self.log = open_log(self.directory, self.config)
        (self.root / files.CLEAN_SHUTDOWN_MARKER).unlink()

    @rule(data=st.data())
    def truncate(self, data):
        offset = data.draw(st.integers(self.log_start, self.leo), label="truncate_to")
        new_leo = self.log.truncate_to(offset)
        kept = [b for b in self.batches if b[1] < offset]
        self.batches = kept
        # Truncating below the log start (everything went) moves the log start down to the LEO.
        self.log_start = min(self.log_start, new_leo)
        assert new_leo == self.leo

    @rule(data=st.data())
    def delete_records(self, data):
        offset = data.draw(st.integers(self.log_start, self.leo), label="delete_before")
        assert self.log.delete_records_before(offset) == max(offset, self.log_start)
        self.log_start = max(offset, self.log_start)
        self.batches = [b for b in self.batches if b[1] >= self.log_start]

    @rule()
    def read_below_start_is_out_of_range(self):
        if self.log_start > 0:
            with pytest.raises(KafkaError):
                self.log.read(self.log_start - 1, 100)

    # ----------------------------------------------------------------- invariants

    @invariant()
    def offsets_match_the_model(self):
        assert self.log.log_end_offset == self.leo
        assert self.log.log_start_offset == self.log_start
        assert self.log.log_start_offset <= self.log.high_watermark <= self.log.log_end_offset

    @invariant()
    def full_scan_matches_the_model(self):
        seen = []
        offset = self.log_start
        while offset < self.log.log_end_offset:
            records = self.log.read(offset, 4096).records
            assert records, f"empty read at {offset} below the LEO {self.log.log_end_offset}"
            before = offset
            for _, header in iter_batches(records):
                if header.last_offset >= offset:
                    seen.append((header.base_offset, header.last_offset))
                offset = header.next_offset
            assert offset > before, f"read at {before} returned nothing at or after it"
        assert seen == [(b, l) for b, l, _ in self.batches if l >= self.log_start]


LogMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_log_machine = LogMachine.TestCase


class LongLogMachine(LogMachine):
    pass


LongLogMachine.TestCase.settings = settings(
    max_examples=400, stateful_step_count=80, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_log_machine_long = pytest.mark.slow(LongLogMachine.TestCase)

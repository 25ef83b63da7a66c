"""kill -9 durability of a whole broker (tests/crash/crash_cycles.py): a short variant in the
default suite, long ones behind the `slow` marker (docs/testing.md)."""

from __future__ import annotations

import pytest

from tests.crash.crash_cycles import run_cycles


@pytest.mark.timeout(120)
def test_crash_cycles_short(tmp_path):
    ledger = run_cycles(10, seed=20261125, work_dir=tmp_path, max_acks_per_cycle=200)
    assert ledger.acked_count() > 0
    assert sum(len(v) for v in ledger.verified.values()) >= ledger.acked_count()


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_crash_cycles_long(tmp_path):
    run_cycles(200, seed=7, work_dir=tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_crash_cycles_long_flush_on_ack(tmp_path):
    run_cycles(30, seed=11, work_dir=tmp_path, flush_on_ack=True)


@pytest.mark.timeout(120)
def test_crash_cycles_compacted_short(tmp_path):
    """Kills also land in the middle of cleans and swaps (the cleaner runs every 50 ms)."""
    ledger = run_cycles(8, seed=6, work_dir=tmp_path, max_acks_per_cycle=300, compacted=True)
    assert ledger.acked_count() > 0


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_crash_cycles_compacted_long(tmp_path):
    run_cycles(100, seed=13, work_dir=tmp_path, compacted=True)

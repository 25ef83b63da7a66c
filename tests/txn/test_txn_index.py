"""Aborted-transaction index files (.txnindex): format, collect, truncation, torn tails."""

from __future__ import annotations

import struct

from kbroker.log.txn_index import ENTRY_SIZE, AbortedTxn, AbortedTxnIndex, read_entries, txn_index_path


def test_entries_are_kafka_abortedtxn_layout(tmp_path):
    index = AbortedTxnIndex(tmp_path)
    index.append(AbortedTxn(7, 10, 20, 21), 0)
    data = txn_index_path(tmp_path, 0).read_bytes()
    assert len(data) == ENTRY_SIZE == 34
    assert struct.unpack(">hqqqq", data) == (0, 7, 10, 20, 21)
    assert txn_index_path(tmp_path, 0).name == "00000000000000000000.txnindex"


def test_reopen_and_collect_across_segments(tmp_path):
    index = AbortedTxnIndex(tmp_path)
    a, b, c = AbortedTxn(1, 0, 5, 6), AbortedTxn(2, 3, 40, 41), AbortedTxn(3, 50, 60, 61)
    index.append(a, 0)
    index.append(b, 30)
    index.append(c, 30)
    reopened = AbortedTxnIndex(tmp_path)
    assert reopened.all() == [a, b, c]
    assert reopened.collect(0, 10) == [a, b]        # b started before 10, ends later
    assert reopened.collect(6, 50) == [b]
    assert reopened.collect(61, 100) == []


def test_truncate_drops_markers_at_or_after_offset(tmp_path):
    index = AbortedTxnIndex(tmp_path)
    index.append(AbortedTxn(1, 0, 5, 6), 0)
    index.append(AbortedTxn(2, 6, 9, 10), 0)
    index.append(AbortedTxn(3, 31, 35, 36), 30)
    index.truncate_to(9)
    assert AbortedTxnIndex(tmp_path).all() == [AbortedTxn(1, 0, 5, 6)]
    assert not txn_index_path(tmp_path, 30).exists()


def test_torn_tail_is_ignored(tmp_path):
    index = AbortedTxnIndex(tmp_path)
    index.append(AbortedTxn(1, 0, 5, 6), 0)
    with open(txn_index_path(tmp_path, 0), "ab") as f:
        f.write(b"\x00\x00\x01")                   # a crash mid-entry
    assert read_entries(txn_index_path(tmp_path, 0)) == [AbortedTxn(1, 0, 5, 6)]


def test_delete_below_log_start(tmp_path):
    index = AbortedTxnIndex(tmp_path)
    index.append(AbortedTxn(1, 0, 5, 6), 0)
    index.append(AbortedTxn(2, 12, 15, 16), 10)
    index.delete_below(10)
    assert AbortedTxnIndex(tmp_path).all() == [AbortedTxn(2, 12, 15, 16)]
    assert index.segment_for(11) == 10 and index.segment_for(3) is None

"""Transaction coordinator state machine: transitions, fencing, timeouts, replay, records."""

from __future__ import annotations

import itertools

import pytest

from kbroker.txn.coordinator import (CONCURRENT_TRANSACTIONS, INVALID_PRODUCER_ID_MAPPING,
                                     INVALID_TRANSACTION_TIMEOUT, INVALID_TXN_STATE, NONE,
                                     PRODUCER_FENCED, TransactionCoordinator, TxnConfig, TxnMetadata,
                                     TxnRecord, TxnState)
from kbroker.txn.records import decode_record, encode_record, partition_for

T0 = 1_700_000_000_000


class Driver:
    """Runs ops the way the runtime does: replay records, then complete markers."""

    def __init__(self, config: TxnConfig | None = None) -> None:
        self.c = TransactionCoordinator(config)
        self.log: list[TxnRecord] = []
        self.markers = []
        self.ids = itertools.count(1000)

    def run(self, result, now=T0):
        for r in result.records:
            self.log.append(r)
            self.c.replay(r)
        if result.markers is not None:
            self.markers.append(result.markers)
            self.run(self.c.complete_markers(result.markers.transactional_id, now_ms=now), now)
        return result.response

    def init(self, txn="t", pid=-1, epoch=-1, timeout=60000, now=T0):
        return self.run(self.c.init_producer_id(txn, timeout, pid, epoch, now_ms=now,
                                                new_producer_id=lambda: next(self.ids)), now)

    def add(self, pid, epoch, parts, txn="t", now=T0):
        return self.run(self.c.add_partitions(txn, pid, epoch, parts, now_ms=now), now)

    def end(self, pid, epoch, commit, txn="t", now=T0):
        return self.run(self.c.end_txn(txn, pid, epoch, commit, now_ms=now), now)


def test_commit_cycle_writes_markers_to_every_partition():
    d = Driver()
    assert d.init() == (NONE, 1000, 0)
    assert d.add(1000, 0, [("a", 0), ("b", 1)]) == NONE
    assert d.c.transactions["t"].state is TxnState.ONGOING
    assert d.end(1000, 0, True) == NONE
    m = d.markers[-1]
    assert m.commit and m.partitions == {("a", 0), ("b", 1)} and m.producer_epoch == 0
    meta = d.c.transactions["t"]
    assert meta.state is TxnState.COMPLETE_COMMIT and not meta.partitions
    states = [r.value.state for r in d.log]
    assert states == [TxnState.EMPTY, TxnState.ONGOING, TxnState.PREPARE_COMMIT,
                      TxnState.COMPLETE_COMMIT]
    assert d.end(1000, 0, True) == NONE            # retried EndTxn
    assert d.end(1000, 0, False) == INVALID_TXN_STATE


def test_abort_and_second_transaction_same_epoch():
    d = Driver()
    d.init()
    d.add(1000, 0, [("a", 0)])
    assert d.end(1000, 0, False) == NONE
    assert not d.markers[-1].commit
    assert d.add(1000, 0, [("a", 1)]) == NONE      # next transaction
    assert d.c.transactions["t"].partitions == {("a", 1)}


def test_second_init_fences_first_producer():
    d = Driver()
    d.init()
    assert d.init() == (NONE, 1000, 1)
    assert d.add(1000, 0, [("a", 0)]) == PRODUCER_FENCED
    assert d.end(1000, 0, True) == PRODUCER_FENCED
    assert d.add(999, 1, [("a", 0)]) == INVALID_PRODUCER_ID_MAPPING


def test_init_during_ongoing_transaction_aborts_it_with_bumped_epoch():
    d = Driver()
    d.init()
    d.add(1000, 0, [("a", 0)])
    assert d.init() == (CONCURRENT_TRANSACTIONS, -1, -1)
    m = d.markers[-1]
    assert not m.commit and m.producer_epoch == 1 and m.partitions == {("a", 0)}
    assert d.c.transactions["t"].state is TxnState.COMPLETE_ABORT
    assert d.init() == (NONE, 1000, 2)             # the client's retry


def test_timeout_aborts_and_fences():
    d = Driver()
    d.init(timeout=1000)
    d.add(1000, 0, [("a", 0)], now=T0)
    assert d.c.timed_out(T0 + 1000) == []
    assert d.c.next_deadline_ms() == T0 + 1001
    assert d.c.timed_out(T0 + 1001) == ["t"]
    d.run(d.c.abort_timed_out("t", now_ms=T0 + 1001), T0 + 1001)
    assert not d.markers[-1].commit and d.markers[-1].producer_epoch == 1
    assert d.end(1000, 0, True) == PRODUCER_FENCED


def test_invalid_timeout_and_state_errors():
    d = Driver(TxnConfig(max_timeout_ms=5000))
    assert d.init(timeout=5001)[0] == INVALID_TRANSACTION_TIMEOUT
    assert d.init(timeout=0)[0] == INVALID_TRANSACTION_TIMEOUT
    d.init(timeout=5000)
    assert d.end(1000, 0, True) == INVALID_TXN_STATE    # nothing started


def test_kip360_bump_with_known_id_and_retry():
    d = Driver()
    d.init()
    assert d.init(pid=1000, epoch=0) == (NONE, 1000, 1)
    assert d.init(pid=1000, epoch=0) == (NONE, 1000, 1)     # retry of the same bump
    assert d.init(pid=1000, epoch=7) == (PRODUCER_FENCED, -1, -1)


def test_epoch_exhaustion_takes_a_new_producer_id():
    d = Driver()
    d.init()
    meta = d.c.transactions["t"]
    d.c.replay(TxnRecord("t", TxnMetadata("t", meta.producer_id, 32766, 60000, TxnState.EMPTY)))
    assert d.init() == (NONE, 1001, 0)


def test_prepare_states_are_concurrent_and_pending_after_restart():
    d = Driver()
    d.init()
    d.add(1000, 0, [("a", 0)])
    prepare = d.c.end_txn("t", 1000, 0, True, now_ms=T0)
    fresh = TransactionCoordinator()       # "crash" after the Prepare record only
    for r in d.log + prepare.records:
        fresh.replay(r)
    assert fresh.add_partitions("t", 1000, 0, [("a", 1)], now_ms=T0).response == CONCURRENT_TRANSACTIONS
    pending = fresh.pending_markers()
    assert len(pending) == 1 and pending[0].commit and pending[0].partitions == {("a", 0)}


def test_replay_of_encoded_records_rebuilds_the_same_state():
    d = Driver()
    d.init("x")
    d.add(1000, 0, [("a", 0), ("a", 2)], txn="x")
    d.init("y")
    fresh = TransactionCoordinator()
    for r in d.log:
        fresh.replay(decode_record(*encode_record(r)))
    assert fresh.transactions.keys() == d.c.transactions.keys()
    for key, meta in d.c.transactions.items():
        got = fresh.transactions[key]
        assert (got.producer_id, got.producer_epoch, got.state, got.partitions) == \
            (meta.producer_id, meta.producer_epoch, meta.state, meta.partitions)


def test_expiry_writes_tombstones():
    d = Driver(TxnConfig(transactional_id_expiration_ms=1000))
    d.init()
    assert d.run(d.c.expire(T0 + 999)) is None and "t" in d.c.transactions
    d.run(d.c.expire(T0 + 1000))
    assert "t" not in d.c.transactions and d.log[-1].value is None


def test_describe_and_list():
    d = Driver()
    d.init("a")
    d.init("b")
    pid_b = d.c.transactions["b"].producer_id
    d.add(pid_b, 0, [("t", 1), ("t", 0)], txn="b")
    desc = d.c.describe("b", now_ms=T0)
    assert desc["transaction_state"] == "Ongoing"
    assert desc["topics"] == [{"topic": "t", "partitions": [0, 1]}]
    assert d.c.describe("zz", now_ms=T0)["error_code"] == 105
    listed, unknown = d.c.list(["Ongoing", "Bogus"], now_ms=T0)
    assert [x["transactional_id"] for x in listed] == ["b"] and unknown == ["Bogus"]
    listed, _ = d.c.list(duration_filter_ms=10, now_ms=T0 + 5)
    assert listed == []


@pytest.mark.parametrize("txn_id, partitions, expected", [("", 50, 0), ("a", 50, 47)])
def test_partition_is_java_hash_mod_partitions(txn_id, partitions, expected):
    # "a".hashCode() == 97; 97 % 50 == 47
    assert partition_for(txn_id, partitions) == expected


def test_txn_offset_loader_releases_on_commit_and_drops_on_abort():
    from protocol.record_codec import build_batch, build_control_batch, decode_batch

    from kbroker.txn.offsets import TxnOffsetLoader

    loader = TxnOffsetLoader()
    plain = decode_batch(build_batch([(b"k0", b"v0")]))
    txn_a = decode_batch(build_batch([(b"ka", b"va")], producer_id=1, producer_epoch=0,
                                     is_transactional=True))
    txn_b = decode_batch(build_batch([(b"kb", b"vb")], producer_id=2, producer_epoch=0,
                                     is_transactional=True))
    txn_c = decode_batch(build_batch([(b"kc", b"vc")], producer_id=3, producer_epoch=0,
                                     is_transactional=True))
    assert loader.feed(plain) == [(b"k0", b"v0")]
    assert loader.feed(txn_a) == [] and loader.feed(txn_b) == [] and loader.feed(txn_c) == []
    assert loader.feed(decode_batch(build_control_batch(True, 1, 0, 0))) == [(b"ka", b"va")]
    assert loader.feed(decode_batch(build_control_batch(False, 2, 0, 0))) == []
    assert loader.open_transactions() == {3: [(b"kc", b"vc")]}

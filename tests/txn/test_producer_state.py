"""Producer state: sequence/epoch checks, duplicates, LSO, aborted index, snapshots, rebuild."""

from __future__ import annotations


import pytest

from protocol.record_codec import build_batch, build_control_batch

from kbroker.errors import KafkaError
from kbroker.log.producer_state import (INT32_MAX, BatchInfo, ProducerStateManager, ProducerStates,
                                        decode_snapshot, encode_snapshot, guarded_append,
                                        next_sequence)
from kbroker.log.txn_index import AbortedTxn
from tests.log.helpers import NOW_MS, open_log

OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH, INVALID_TXN_STATE = 45, 47, 48
TRANSACTION_COORDINATOR_FENCED, PRODUCER_FENCED = 52, 90


def data(pid: int, epoch: int, seq: int, count: int = 1, *, txn: bool = False) -> BatchInfo:
    return BatchInfo(pid, epoch, seq, count - 1, NOW_MS, txn, False)


def marker(pid: int, epoch: int) -> BatchInfo:
    return BatchInfo(pid, epoch, -1, 0, NOW_MS, True, True)


def produce(state: ProducerStateManager, info: BatchInfo, offset: int):
    """check then record, as the produce path does; returns the duplicate or None."""
    dup = state.check(info)
    if dup is None:
        state.on_append(info, offset)
    return dup


def test_in_sequence_batches_are_accepted_and_retries_are_duplicates():
    state = ProducerStateManager(None)
    assert produce(state, data(7, 0, 0, 3), 0) is None
    assert produce(state, data(7, 0, 3, 2), 3) is None
    dup = produce(state, data(7, 0, 0, 3), 5)          # retry of the first batch
    assert (dup.first_offset, dup.last_offset) == (0, 2)
    dup = state.check(data(7, 0, 3, 2))
    assert (dup.first_offset, dup.last_offset) == (3, 4)


def test_only_the_last_five_batches_are_remembered():
    state = ProducerStateManager(None)
    for i in range(6):
        produce(state, data(1, 0, i), i)
    assert state.check(data(1, 0, 1)).first_offset == 1
    with pytest.raises(KafkaError) as err:     # batch 0 fell out: now just out of order
        state.check(data(1, 0, 0))
    assert err.value.code == OUT_OF_ORDER_SEQUENCE_NUMBER


def test_gap_is_out_of_order():
    state = ProducerStateManager(None)
    produce(state, data(1, 0, 0, 2), 0)
    with pytest.raises(KafkaError) as err:
        state.check(data(1, 0, 5))
    assert err.value.code == OUT_OF_ORDER_SEQUENCE_NUMBER


def test_old_epoch_is_invalid_producer_epoch():
    state = ProducerStateManager(None)
    produce(state, data(1, 3, 0), 0)
    with pytest.raises(KafkaError) as err:
        state.check(data(1, 2, 1))
    assert err.value.code == INVALID_PRODUCER_EPOCH


def test_epoch_bump_restarts_sequence_at_zero():
    """KIP-360: after a bump the producer starts again at sequence 0, anything else is refused."""
    state = ProducerStateManager(None)
    produce(state, data(1, 0, 0, 4), 0)
    with pytest.raises(KafkaError) as err:
        state.check(data(1, 1, 4))
    assert err.value.code == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert produce(state, data(1, 1, 0), 4) is None
    assert produce(state, data(1, 1, 1), 5) is None


def test_unknown_producer_may_start_anywhere():
    state = ProducerStateManager(None)
    assert produce(state, data(9, 0, 1234), 0) is None
    assert produce(state, data(9, 0, 1235), 1) is None


def test_sequence_wraps_after_int32_max():
    assert next_sequence(INT32_MAX, 1) == 0
    assert next_sequence(INT32_MAX - 1, 3) == 1
    state = ProducerStateManager(None)
    produce(state, data(1, 0, INT32_MAX - 1, 2), 0)       # covers MAX-1, MAX
    assert produce(state, data(1, 0, 0, 2), 2) is None     # wraps to 0
    state2 = ProducerStateManager(None)
    produce(state2, data(1, 0, INT32_MAX - 1, 4), 0)       # MAX-1, MAX, 0, 1
    assert state2.producers[1].last_seq == 1
    assert produce(state2, data(1, 0, 2), 4) is None


def test_non_transactional_write_during_transaction_is_invalid_txn_state():
    state = ProducerStateManager(None)
    produce(state, data(1, 0, 0, txn=True), 0)
    with pytest.raises(KafkaError) as err:
        state.check(data(1, 0, 1))
    assert err.value.code == INVALID_TXN_STATE


def test_lso_and_aborted_transactions():
    state = ProducerStateManager(None)
    produce(state, data(1, 0, 0, 2), 0)                # plain idempotent: offsets 0-1
    produce(state, data(2, 0, 0, 2, txn=True), 2)      # txn A starts at 2
    produce(state, data(3, 0, 0, 1, txn=True), 4)      # txn B starts at 4
    assert state.last_stable_offset(5) == 2
    done = state.on_append(marker(2, 0), 5, marker=(False, 0))   # abort A at 5
    assert done.aborted and (done.first_offset, done.last_offset) == (2, 5)
    assert state.last_stable_offset(6) == 4
    state.on_append(marker(3, 0), 6, marker=(True, 0))           # commit B
    assert state.last_stable_offset(7) == 7
    assert state.aborted_transactions(0, 7) == [AbortedTxn(2, 2, 5, 4)]
    assert state.aborted_transactions(6, 7) == []       # marker before the fetch offset
    assert state.aborted_transactions(0, 2) == []       # txn starts at the upper bound


def test_old_marker_epochs_are_fenced():
    state = ProducerStateManager(None)
    state.on_append(marker(1, 4), 0, marker=(True, 3))
    with pytest.raises(KafkaError) as err:
        state.check_marker(1, 3, 3)
    assert err.value.code == PRODUCER_FENCED
    with pytest.raises(KafkaError) as err:
        state.check_marker(1, 4, 2)
    assert err.value.code == TRANSACTION_COORDINATOR_FENCED
    state.check_marker(1, 5, 3)


def test_snapshot_round_trip_keeps_last_batch_and_open_transaction():
    state = ProducerStateManager(None)
    produce(state, data(1, 2, 10, 3), 100)
    produce(state, data(2, 0, 0, 1, txn=True), 103)
    entries = {e.producer_id: e for e in decode_snapshot(encode_snapshot(state.producers.values()))}
    assert entries[1].producer_epoch == 2 and entries[1].last_seq == 12
    assert entries[1].find_duplicate(2, 10, 12).first_offset == 100
    assert entries[2].current_txn_first_offset == 103
    damaged = bytearray(encode_snapshot(state.producers.values()))
    damaged[-1] ^= 1
    with pytest.raises(ValueError):
        decode_snapshot(bytes(damaged))


def _produce_real(producers, log, pid, epoch, seq, count=1, *, txn=False):
    batch = build_batch([(b"k", b"v%d" % i) for i in range(count)], base_timestamp=NOW_MS,
                        producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                        is_transactional=txn)
    return guarded_append(producers, log, batch, leader_epoch=0, now_ms=NOW_MS)


def _marker_real(producers, log, pid, epoch, commit):
    batch = build_control_batch(commit, pid, epoch, 0, timestamp=NOW_MS)
    state = producers.for_log(log)
    state.check_marker(pid, epoch, 0)
    result = log.append(batch, leader_epoch=0, now_ms=NOW_MS)
    state.on_append(BatchInfo(pid, epoch, -1, 0, NOW_MS, True, True), result.base_offset,
                    marker=(commit, 0), segment_base_offset=log.active_segment.base_offset)
    return result


@pytest.mark.parametrize("with_snapshot", [False, True])
def test_state_is_rebuilt_from_snapshot_and_log_tail(tmp_path, with_snapshot):
    """A retry after a restart (clean or not) is still a duplicate; LSO/aborts survive."""
    directory = tmp_path / "orders-0"
    log = open_log(directory)
    producers = ProducerStates()
    assert _produce_real(producers, log, 5, 0, 0, 3).base_offset == 0
    if with_snapshot:
        producers.snapshot_all()
    assert _produce_real(producers, log, 5, 0, 3, 2).base_offset == 3
    _produce_real(producers, log, 6, 0, 0, 2, txn=True)           # offsets 5-6
    _marker_real(producers, log, 6, 0, False)                      # abort at 7
    _produce_real(producers, log, 6, 0, 2, 1, txn=True)            # open txn at 8
    log.flush()
    log.close()

    log = open_log(directory)
    producers = ProducerStates()
    state = producers.for_log(log)
    assert (tmp_path / "orders-0" / f"{0:020d}.txnindex").exists()
    assert _produce_real(producers, log, 5, 0, 3, 2).base_offset == 3   # duplicate
    assert log.log_end_offset == 9
    assert state.last_stable_offset(log.high_watermark) == 8
    assert state.aborted_transactions(0, 9) == [AbortedTxn(6, 5, 7, 8)]
    assert _produce_real(producers, log, 5, 0, 5, 1).base_offset == 9
    log.close()


def test_snapshot_beyond_log_end_is_ignored(tmp_path):
    directory = tmp_path / "t-0"
    log = open_log(directory)
    producers = ProducerStates()
    _produce_real(producers, log, 1, 0, 0, 2)
    producers.for_log(log).take_snapshot(50)        # e.g. written before a truncation
    _produce_real(producers, log, 1, 0, 2, 1)
    log.close()
    log = open_log(directory)
    state = ProducerStates().for_log(log)
    assert not (directory / f"{50:020d}.snapshot").exists()
    assert state.producers[1].last_seq == 2
    log.close()


def test_duplicate_is_not_written_again(tmp_path):
    log = open_log(tmp_path / "t-0")
    producers = ProducerStates()
    first = _produce_real(producers, log, 3, 0, 0, 2)
    again = _produce_real(producers, log, 3, 0, 0, 2)
    assert (again.base_offset, again.last_offset) == (first.base_offset, first.last_offset)
    assert log.log_end_offset == 2
    log.close()

"""Property: with retries of any earlier batch, each batch is written once (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker.errors import KafkaError
from kbroker.log.producer_state import (NUM_BATCHES_TO_RETAIN, BatchInfo, ProducerStateManager,
                                        decode_snapshot, encode_snapshot)

OUT_OF_ORDER_SEQUENCE_NUMBER = 45

operations = st.lists(st.one_of(
    st.tuples(st.just("send"), st.integers(1, 4)),
    st.tuples(st.just("retry"), st.integers(1, 8)),
    st.tuples(st.just("reload"), st.just(0)),
), max_size=40)


@settings(max_examples=60, deadline=None)
@given(operations, st.integers(0, 2**31 - 1))
def test_retries_never_duplicate_and_offsets_stay_contiguous(ops, start_seq):
    state = ProducerStateManager(None)
    sent: list[tuple[int, int, int, int]] = []   # (first seq, count, first offset, last offset)
    retained = 0                                  # how many of the newest batches state remembers
    log_end = 0
    seq = start_seq
    for op, arg in ops:
        if op == "send":
            info = BatchInfo(1, 0, seq, arg - 1, 0, False, False)
            assert state.check(info) is None
            state.on_append(info, log_end)
            sent.append((seq, arg, log_end, log_end + arg - 1))
            log_end += arg
            seq = (seq + arg) % 2**31
            retained = min(retained + 1, NUM_BATCHES_TO_RETAIN)
        elif op == "retry" and sent:
            back = min(arg, len(sent))
            first_seq, count, first_offset, last_offset = sent[-back]
            info = BatchInfo(1, 0, first_seq, count - 1, 0, False, False)
            if back <= retained:
                dup = state.check(info)
                assert dup is not None and (dup.first_offset, dup.last_offset) == (first_offset, last_offset)
            else:
                try:
                    dup = state.check(info)
                except KafkaError as exc:
                    assert exc.code == OUT_OF_ORDER_SEQUENCE_NUMBER
                else:
                    raise AssertionError(f"forgotten batch {back} back was accepted: {dup}")
        elif op == "reload":
            # a restart from a snapshot keeps only the last batch (Kafka's snapshot format)
            entries = decode_snapshot(encode_snapshot(state.producers.values()))
            state = ProducerStateManager(None)
            state.producers = {e.producer_id: e for e in entries}
            retained = min(retained, 1)
    assert log_end == sum(count for _, count, _, _ in sent)

"""Transactions with confluent-kafka (librdkafka) against kbroker (issue 7)."""

from __future__ import annotations

import socket
import struct
import time
import uuid

import pytest

from kbroker.testing import KafkaBroker
from tests.integration.clients import create_topic, unique_topic

pytestmark = pytest.mark.timeout(240)

TXN_OVERRIDES = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": 300,
                 "transaction.state.log.num.partitions": 5,
                 "offsets.topic.num.partitions": 5,
                 "group.initial.rebalance.delay.ms": 0}


@pytest.fixture(scope="module")
def broker():
    with KafkaBroker(TXN_OVERRIDES) as running:
        yield running


def txn_producer(bootstrap: str, txn_id: str | None = None, **config):
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap,
                         "transactional.id": txn_id or f"txn-{uuid.uuid4().hex[:8]}",
                         "linger.ms": 5, **config})
    producer.init_transactions(30)
    return producer


def consume(bootstrap: str, topic: str, isolation: str, *, partitions: int = 1,
            min_count: int = 0, settle_s: float = 1.0, timeout_s: float = 30) -> list[bytes]:
    """Values of every partition from the start; polls until `min_count` then `settle_s` more."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("g"),
                         "enable.auto.commit": False, "isolation.level": isolation})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        values: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        settle_until = None
        while time.monotonic() < deadline:
            if len(values) >= min_count and settle_until is None:
                settle_until = time.monotonic() + settle_s
            if settle_until is not None and time.monotonic() > settle_until:
                break
            msg = consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                values.append(msg.value())
        return values
    finally:
        consumer.close()


def raw_call(port: int, api_key: int, version: int, body: dict) -> dict:
    """One request on a fresh connection; the decoded response body."""
    from protocol import decode_response, encode_request

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        frame = encode_request(api_key, version, 1, "test", body)
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        head = sock.recv(4, socket.MSG_WAITALL)
        size = struct.unpack(">i", head)[0]
        data = b""
        while len(data) < size:
            data += sock.recv(size - len(data))
    return decode_response(api_key, version, data)[1]


def describe_txn(port: int, txn_id: str) -> dict:
    return raw_call(port, 65, 0, {"transactional_ids": [txn_id]})["transaction_states"][0]


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.1)


def test_commit_is_visible_and_abort_is_not(broker):
    bootstrap = broker.bootstrap_servers
    topic = unique_topic("txn")
    create_topic(bootstrap, topic, 2)
    producer = txn_producer(bootstrap)
    producer.begin_transaction()
    for i in range(4):
        producer.produce(topic, value=b"aborted-%d" % i, partition=i % 2)
    producer.flush(10)
    producer.abort_transaction(30)
    producer.begin_transaction()
    for i in range(4):
        producer.produce(topic, value=b"committed-%d" % i, partition=i % 2)
    producer.commit_transaction(30)

    committed = consume(bootstrap, topic, "read_committed", partitions=2, min_count=4)
    assert sorted(committed) == [b"committed-%d" % i for i in range(4)]
    everything = consume(bootstrap, topic, "read_uncommitted", partitions=2, min_count=8)
    assert sorted(everything) == sorted([b"aborted-%d" % i for i in range(4)]
                                        + [b"committed-%d" % i for i in range(4)])


def test_open_transaction_holds_back_read_committed(broker):
    """The LSO stops read_committed at the first open transaction; uncommitted reads pass it."""
    bootstrap = broker.bootstrap_servers
    topic = unique_topic("lso")
    create_topic(bootstrap, topic, 1)
    from confluent_kafka import Producer

    plain = Producer({"bootstrap.servers": bootstrap})
    plain.produce(topic, value=b"before", partition=0)
    plain.flush(10)
    producer = txn_producer(bootstrap)
    producer.begin_transaction()
    producer.produce(topic, value=b"in-txn", partition=0)
    producer.flush(10)
    plain.produce(topic, value=b"after", partition=0)
    plain.flush(10)
    assert consume(bootstrap, topic, "read_committed", min_count=1) == [b"before"]
    assert consume(bootstrap, topic, "read_uncommitted", min_count=3) == [b"before", b"in-txn", b"after"]
    producer.commit_transaction(30)
    assert consume(bootstrap, topic, "read_committed", min_count=3) == [b"before", b"in-txn", b"after"]


def test_send_offsets_to_transaction_commits_input_offsets_atomically(broker):
    from confluent_kafka import Consumer, TopicPartition

    bootstrap = broker.bootstrap_servers
    source, sink = unique_topic("src"), unique_topic("sink")
    create_topic(bootstrap, source, 1)
    create_topic(bootstrap, sink, 1)
    from confluent_kafka import Producer

    plain = Producer({"bootstrap.servers": bootstrap})
    for i in range(5):
        plain.produce(source, value=b"in-%d" % i, partition=0)
    plain.flush(10)

    group = unique_topic("ctp")
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed", "session.timeout.ms": 6000})
    producer = txn_producer(bootstrap)
    try:
        consumer.subscribe([source])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 5 and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                got.append(msg)
        assert len(got) == 5
        # an aborted attempt first: neither output nor offsets may become visible
        producer.begin_transaction()
        producer.produce(sink, value=b"never", partition=0)
        producer.send_offsets_to_transaction(
            [TopicPartition(source, 0, got[2].offset() + 1)], consumer.consumer_group_metadata(), 30)
        producer.abort_transaction(30)
        assert consumer.committed([TopicPartition(source, 0)], 10)[0].offset < 0

        producer.begin_transaction()
        for msg in got:
            producer.produce(sink, value=msg.value().replace(b"in", b"out"), partition=0)
        producer.send_offsets_to_transaction(
            [TopicPartition(source, 0, got[-1].offset() + 1)], consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
        assert consumer.committed([TopicPartition(source, 0)], 10)[0].offset == 5
    finally:
        consumer.close()
    assert consume(bootstrap, sink, "read_committed", min_count=5) == [b"out-%d" % i for i in range(5)]


def test_second_producer_with_same_id_fences_the_first(broker):
    from confluent_kafka import KafkaException

    bootstrap = broker.bootstrap_servers
    topic = unique_topic("fence")
    create_topic(bootstrap, topic, 1)
    txn_id = f"fenced-{uuid.uuid4().hex[:8]}"
    first = txn_producer(bootstrap, txn_id)
    first.begin_transaction()
    first.produce(topic, value=b"zombie", partition=0)
    first.flush(10)
    second = txn_producer(bootstrap, txn_id)     # aborts the first one's transaction
    second.begin_transaction()
    second.produce(topic, value=b"winner", partition=0)
    second.commit_transaction(30)
    with pytest.raises(KafkaException) as err:
        first.produce(topic, value=b"zombie-2", partition=0)
        first.commit_transaction(30)
    assert err.value.args[0].fatal() or "fenced" in str(err.value).lower()
    assert consume(bootstrap, topic, "read_committed", min_count=1) == [b"winner"]
    state = describe_txn(broker.port, txn_id)
    assert state["transaction_state"] == "CompleteCommit" and state["producer_epoch"] >= 1


def test_transaction_left_open_times_out_and_is_aborted(broker):
    bootstrap = broker.bootstrap_servers
    topic = unique_topic("timeout")
    create_topic(bootstrap, topic, 1)
    txn_id = f"slow-{uuid.uuid4().hex[:8]}"
    producer = txn_producer(bootstrap, txn_id, **{"transaction.timeout.ms": 1500})
    producer.begin_transaction()
    producer.produce(topic, value=b"forgotten", partition=0)
    producer.flush(10)
    assert describe_txn(broker.port, txn_id)["transaction_state"] == "Ongoing"
    wait_until(lambda: describe_txn(broker.port, txn_id)["transaction_state"] == "CompleteAbort",
               20, "the coordinator to abort the timed-out transaction")
    from confluent_kafka import Producer

    plain = Producer({"bootstrap.servers": bootstrap})
    plain.produce(topic, value=b"later", partition=0)
    plain.flush(10)
    assert consume(bootstrap, topic, "read_committed", min_count=1) == [b"later"]
    assert consume(bootstrap, topic, "read_uncommitted", min_count=2) == [b"forgotten", b"later"]


@pytest.mark.parametrize("kill", [False, True], ids=["graceful", "kill-9"])
def test_broker_restart_mid_transaction(kill):
    """The coordinator reloads the open transaction; the producer then commits it."""
    with KafkaBroker(TXN_OVERRIDES) as broker:
        bootstrap = broker.bootstrap_servers
        topic = unique_topic("restart")
        create_topic(bootstrap, topic, 1)
        txn_id = f"restart-{uuid.uuid4().hex[:8]}"
        producer = txn_producer(bootstrap, txn_id, **{"transaction.timeout.ms": 60000})
        producer.begin_transaction()
        for i in range(3):
            producer.produce(topic, value=b"r-%d" % i, partition=0)
        producer.flush(10)
        broker.restart(kill=kill)
        assert describe_txn(broker.port, txn_id)["transaction_state"] == "Ongoing"
        assert consume(bootstrap, topic, "read_committed", settle_s=1.0) == []
        producer.commit_transaction(60)
        assert consume(bootstrap, topic, "read_committed", min_count=3) == [b"r-0", b"r-1", b"r-2"]
        # the next transaction of the same producer works after the restart too
        producer.begin_transaction()
        producer.produce(topic, value=b"r-3", partition=0)
        producer.abort_transaction(30)
        assert consume(bootstrap, topic, "read_committed", min_count=3) == [b"r-0", b"r-1", b"r-2"]


def test_wire_batched_add_partitions_list_and_describe_producers(broker):
    """AddPartitionsToTxn v3 and batched v4 (verify_only), ListTransactions, DescribeProducers."""
    port = broker.port
    topic = unique_topic("wire")
    create_topic(broker.bootstrap_servers, topic, 2)
    txn_id = f"wire-{uuid.uuid4().hex[:8]}"
    find = raw_call(port, 10, 4, {"key_type": 1, "coordinator_keys": [txn_id]})
    assert find["coordinators"][0]["error_code"] == 0
    wait_until(lambda: raw_call(port, 22, 4, {"transactional_id": txn_id, "transaction_timeout_ms": 60000,
                                              "producer_id": -1, "producer_epoch": -1})["error_code"] == 0,
               20, "InitProducerId")
    state = describe_txn(port, txn_id)
    pid, epoch = state["producer_id"], state["producer_epoch"]

    def verify():
        body = {"transactions": [{"transactional_id": txn_id, "producer_id": pid, "producer_epoch": epoch,
                                  "verify_only": True, "topics": [{"name": topic, "partitions": [0, 1]}]}]}
        resp = raw_call(port, 24, 4, body)
        results = resp["results_by_transaction"][0]["topic_results"][0]["results_by_partition"]
        return {r["partition_index"]: r["partition_error_code"] for r in results}

    assert verify() == {0: 48, 1: 48}                    # INVALID_TXN_STATE: not added yet
    added = raw_call(port, 24, 3, {"v3_and_below_transactional_id": txn_id,
                                   "v3_and_below_producer_id": pid, "v3_and_below_producer_epoch": epoch,
                                   "v3_and_below_topics": [{"name": topic, "partitions": [0]}]})
    assert added["results_by_topic_v3_and_below"][0]["results_by_partition"][0]["partition_error_code"] == 0
    assert verify() == {0: 0, 1: 48}
    unknown = raw_call(port, 24, 3, {"v3_and_below_transactional_id": txn_id,
                                     "v3_and_below_producer_id": pid, "v3_and_below_producer_epoch": epoch,
                                     "v3_and_below_topics": [{"name": topic, "partitions": [1, 9]}]})
    codes = {r["partition_index"]: r["partition_error_code"]
             for r in unknown["results_by_topic_v3_and_below"][0]["results_by_partition"]}
    assert codes == {1: 55, 9: 3}                       # OPERATION_NOT_ATTEMPTED, UNKNOWN_TOPIC_OR_PARTITION
    fenced = raw_call(port, 26, 1, {"transactional_id": txn_id, "producer_id": pid,
                                    "producer_epoch": epoch - 1 if epoch else 5, "committed": True})
    assert fenced["error_code"] == 47                   # PRODUCER_FENCED downgraded for EndTxn v1

    listed = raw_call(port, 66, 1, {"state_filters": ["Ongoing"], "producer_id_filters": [pid],
                                    "duration_filter": -1})
    assert [t["transactional_id"] for t in listed["transaction_states"]] == [txn_id]

    from protocol.record_codec import build_batch

    batch = build_batch([(b"k", b"v")], producer_id=pid, producer_epoch=epoch, base_sequence=0,
                        is_transactional=True)
    produced = raw_call(port, 0, 9, {"transactional_id": txn_id, "acks": -1, "timeout_ms": 5000,
                                     "topic_data": [{"name": topic, "partition_data": [
                                         {"index": 0, "records": batch}]}]})
    assert produced["responses"][0]["partition_responses"][0]["error_code"] == 0
    producers = raw_call(port, 61, 0, {"topics": [{"name": topic, "partition_indexes": [0]}]})
    active = producers["topics"][0]["partitions"][0]["active_producers"]
    assert [(p["producer_id"], p["last_sequence"], p["current_txn_start_offset"]) for p in active] == \
        [(pid, 0, 0)]
    ended = raw_call(port, 26, 3, {"transactional_id": txn_id, "producer_id": pid,
                                   "producer_epoch": epoch, "committed": False})
    assert ended["error_code"] == 0
    assert describe_txn(port, txn_id)["transaction_state"] == "CompleteAbort"


def test_offset_fetch_require_stable_sees_pending_transactional_offsets(broker):
    """OffsetFetch v7+ with require_stable: UNSTABLE_OFFSET_COMMIT while a txn holds an offset."""
    port = broker.port
    topic, group = unique_topic("stable"), unique_topic("g")
    create_topic(broker.bootstrap_servers, topic, 1)
    txn_id = f"stable-{uuid.uuid4().hex[:8]}"
    raw_call(port, 10, 4, {"key_type": 1, "coordinator_keys": [txn_id]})
    raw_call(port, 10, 4, {"key_type": 0, "coordinator_keys": [group]})
    init = {}
    wait_until(lambda: init.update(raw_call(port, 22, 4, {
        "transactional_id": txn_id, "transaction_timeout_ms": 60000, "producer_id": -1,
        "producer_epoch": -1})) or init["error_code"] == 0, 20, "InitProducerId")
    pid, epoch = init["producer_id"], init["producer_epoch"]
    ids = {"transactional_id": txn_id, "producer_id": pid, "producer_epoch": epoch}
    assert raw_call(port, 25, 3, {**ids, "group_id": group})["error_code"] == 0
    commit = raw_call(port, 28, 3, {**ids, "group_id": group, "generation_id": -1, "member_id": "",
                                    "group_instance_id": None, "topics": [{"name": topic, "partitions": [
                                        {"partition_index": 0, "committed_offset": 7,
                                         "committed_leader_epoch": -1, "committed_metadata": "m"}]}]})
    assert commit["topics"][0]["partitions"][0]["error_code"] == 0

    def fetch(stable: bool) -> dict:
        body = {"group_id": group, "topics": [{"name": topic, "partition_indexes": [0]}],
                "require_stable": stable}
        return raw_call(port, 9, 7, body)["topics"][0]["partitions"][0]

    assert fetch(True)["error_code"] == 88
    assert (fetch(False)["error_code"], fetch(False)["committed_offset"]) == (0, -1)
    assert raw_call(port, 26, 3, {**ids, "committed": True})["error_code"] == 0
    assert (fetch(True)["error_code"], fetch(True)["committed_offset"]) == (0, 7)


@pytest.mark.parametrize("kill", [False, True], ids=["graceful", "kill-9"])
def test_transactional_offsets_survive_restart_until_commit(kill):
    """TxnOffsetCommit, restart, then EndTxn(commit): the offset becomes visible only then."""
    with KafkaBroker(TXN_OVERRIDES) as broker:
        topic, group = unique_topic("toff"), unique_topic("g")
        create_topic(broker.bootstrap_servers, topic, 1)
        txn_id = f"toff-{uuid.uuid4().hex[:8]}"
        raw_call(broker.port, 10, 4, {"key_type": 1, "coordinator_keys": [txn_id]})
        raw_call(broker.port, 10, 4, {"key_type": 0, "coordinator_keys": [group]})
        init = {}
        wait_until(lambda: init.update(raw_call(broker.port, 22, 4, {
            "transactional_id": txn_id, "transaction_timeout_ms": 60000, "producer_id": -1,
            "producer_epoch": -1})) or init["error_code"] == 0, 20, "InitProducerId")
        ids = {"transactional_id": txn_id, "producer_id": init["producer_id"],
               "producer_epoch": init["producer_epoch"]}
        assert raw_call(broker.port, 25, 3, {**ids, "group_id": group})["error_code"] == 0
        commit = raw_call(broker.port, 28, 3, {
            **ids, "group_id": group, "generation_id": -1, "member_id": "", "group_instance_id": None,
            "topics": [{"name": topic, "partitions": [{"partition_index": 0, "committed_offset": 11,
                                                       "committed_leader_epoch": -1,
                                                       "committed_metadata": ""}]}]})
        assert commit["topics"][0]["partitions"][0]["error_code"] == 0
        broker.restart(kill=kill)

        def fetch(stable: bool) -> tuple[int, int]:
            body = {"group_id": group, "topics": [{"name": topic, "partition_indexes": [0]}],
                    "require_stable": stable}
            p = raw_call(broker.port, 9, 7, body)["topics"][0]["partitions"][0]
            return p["error_code"], p["committed_offset"]

        assert fetch(False) == (0, -1)            # not visible before the commit
        assert fetch(True) == (88, -1)            # but known to be pending
        assert raw_call(broker.port, 26, 3, {**ids, "committed": True})["error_code"] == 0
        assert fetch(True) == (0, 11)
        broker.restart(kill=kill)
        assert fetch(True) == (0, 11)             # and it stays committed

"""Idempotent producers (issue 7): retries after a dropped connection are not duplicated."""

from __future__ import annotations

import socket
import time

import pytest

from kbroker.testing import KafkaBroker
from tests.integration.clients import create_topic, unique_topic
from tests.txn.proxy import DroppingProxy

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def proxied():
    """(broker, proxy): every client connection (bootstrap and advertised) goes via the proxy."""
    proxy = DroppingProxy()
    try:
        with KafkaBroker({"advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy.port}"}) as broker:
            proxy.target_port = broker.port
            yield broker, proxy
    finally:
        proxy.close()


def read_values(bootstrap: str, topic: str, count: int, timeout_s: float = 30) -> list[tuple[int, bytes]]:
    """(offset, value) of every record of partition 0, reading until `count` or the deadline."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("g"),
                         "enable.auto.commit": False, "enable.partition.eof": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        got: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                got.append((msg.offset(), msg.value()))
        # a little longer: a duplicate would show up right behind
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            msg = consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                got.append((msg.offset(), msg.value()))
        return got
    finally:
        consumer.close()


def test_confluent_idempotent_retry_after_drop_is_not_duplicated(proxied):
    broker, proxy = proxied
    bootstrap = f"127.0.0.1:{proxy.port}"
    topic = unique_topic("idem-ck")
    create_topic(broker.bootstrap_servers, topic, 1)
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "linger.ms": 0, "retry.backoff.ms": 50, "message.timeout.ms": 30000})
    errors = []
    offsets = {}

    def delivered(err, msg):
        if err is not None:
            errors.append(err)
        else:
            offsets[msg.value()] = msg.offset()

    dropped_before = proxy.dropped
    values = [b"v%02d" % i for i in range(20)]
    for i, v in enumerate(values):
        if i == 10:
            assert producer.flush(30) == 0
            proxy.drop_produce_responses = 1
        producer.produce(topic, value=v, partition=0, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert not errors
    assert proxy.dropped == dropped_before + 1
    got = read_values(bootstrap, topic, len(values))
    assert [v for _, v in got] == values              # every value once, in order
    assert [o for o, _ in got] == list(range(len(values)))   # offsets contiguous
    assert [offsets[v] for v in values] == list(range(len(values)))


def test_kafka_python_idempotent_retry_after_drop_is_not_duplicated(proxied):
    broker, proxy = proxied
    bootstrap = f"127.0.0.1:{proxy.port}"
    topic = unique_topic("idem-kp")
    create_topic(broker.bootstrap_servers, topic, 1)
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                             linger_ms=0, retry_backoff_ms=50, request_timeout_ms=10000)
    try:
        first = [producer.send(topic, value=b"a%02d" % i, partition=0) for i in range(5)]
        producer.flush(timeout=30)
        dropped_before = proxy.dropped
        proxy.drop_produce_responses = 1
        second = [producer.send(topic, value=b"b%02d" % i, partition=0) for i in range(5)]
        producer.flush(timeout=60)
        offsets = [f.get(timeout=30).offset for f in first + second]
    finally:
        producer.close(timeout=10)
    assert proxy.dropped == dropped_before + 1
    assert offsets == list(range(10))
    got = read_values(bootstrap, topic, 10)
    assert [v for _, v in got] == [b"a%02d" % i for i in range(5)] + [b"b%02d" % i for i in range(5)]


def raw_call(sock, api_key: int, version: int, body: dict, correlation_id: int) -> dict:
    """One request/response on an open socket."""
    import struct

    from protocol import decode_response, encode_request

    frame = encode_request(api_key, version, correlation_id, "raw", body)
    sock.sendall(struct.pack(">i", len(frame)) + frame)
    size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
    data = b""
    while len(data) < size:
        data += sock.recv(size - len(data))
    return decode_response(api_key, version, data)[1]


def raw_produce(sock, topic: str, pid: int, epoch: int, seq: int, correlation_id: int,
                count: int = 1) -> dict:
    """Produce one idempotent batch of `count` records to partition 0; its partition response."""
    from protocol.record_codec import build_batch

    batch = build_batch([(b"k", b"v%d" % i) for i in range(count)], producer_id=pid,
                        producer_epoch=epoch, base_sequence=seq)
    body = {"transactional_id": None, "acks": -1, "timeout_ms": 5000, "topic_data": [
        {"name": topic, "partition_data": [{"index": 0, "records": batch}]}]}
    return raw_call(sock, 0, 9, body, correlation_id)["responses"][0]["partition_responses"][0]


@pytest.mark.parametrize("kill", [False, True], ids=["graceful", "kill-9"])
def test_retry_after_broker_restart_is_still_deduplicated(kill):
    with KafkaBroker() as broker:
        topic = unique_topic("idem-restart")
        create_topic(broker.bootstrap_servers, topic, 1)
        with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as sock:
            init = raw_call(sock, 22, 4, {"transactional_id": None, "transaction_timeout_ms": 60000,
                                          "producer_id": -1, "producer_epoch": -1}, 1)
            pid, epoch = init["producer_id"], init["producer_epoch"]
            assert raw_produce(sock, topic, pid, epoch, 0, 2, count=3)["base_offset"] == 0
            assert raw_produce(sock, topic, pid, epoch, 3, 3, count=2)["base_offset"] == 3
        broker.restart(kill=kill)
        with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as sock:
            retried = raw_produce(sock, topic, pid, epoch, 3, 4, count=2)
            assert (retried["error_code"], retried["base_offset"]) == (0, 3)
            assert raw_produce(sock, topic, pid, epoch, 5, 5)["base_offset"] == 5
            assert raw_produce(sock, topic, pid, epoch, 9, 6)["error_code"] == 45
            fresh = raw_call(sock, 22, 4, {"transactional_id": None, "transaction_timeout_ms": 60000,
                                           "producer_id": -1, "producer_epoch": -1}, 7)
            assert fresh["producer_id"] != pid           # ids are not reused after a restart


def test_out_of_order_and_old_epoch_on_the_wire(proxied):
    """A raw produce with a sequence gap is refused with OUT_OF_ORDER_SEQUENCE_NUMBER (45)."""
    broker, _proxy = proxied
    topic = unique_topic("idem-raw")
    create_topic(broker.bootstrap_servers, topic, 1)
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as sock:
        init = raw_call(sock, 22, 4, {"transactional_id": None, "transaction_timeout_ms": 60000,
                                  "producer_id": -1, "producer_epoch": -1}, 1)
        assert init["error_code"] == 0
        pid, epoch = init["producer_id"], init["producer_epoch"]

        def produce(seq, correlation_id, epoch=epoch):
            return raw_produce(sock, topic, pid, epoch, seq, correlation_id)

        assert produce(0, 2)["base_offset"] == 0
        assert produce(1, 3)["base_offset"] == 1
        assert produce(1, 4)["base_offset"] == 1          # duplicate: original offset
        assert produce(5, 5)["error_code"] == 45          # gap
        assert produce(2, 6, epoch=epoch + 1)["error_code"] == 45   # new epoch must start at 0
        assert produce(0, 7, epoch=epoch + 1)["base_offset"] == 2
        assert produce(2, 8)["error_code"] == 47          # the old epoch is gone

"""Driver for confluent-kafka (librdkafka)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import confluent_kafka
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewPartitions, NewTopic, OffsetSpec, ResourceType)
from confluent_kafka import ConsumerGroupTopicPartitions

from compat.clients.base import Client, Record, Start
from compat.clients.features import FEATURES
from compat.errors import ClientError

TIMEOUT_S = 30.0
# librdkafka's state enum names -> Kafka's group state names
GROUP_STATES = {"EMPTY": "Empty", "STABLE": "Stable", "PREPARING_REBALANCING": "PreparingRebalance",
                "COMPLETING_REBALANCING": "CompletingRebalance", "DEAD": "Dead", "UNKNOWN": "Unknown"}


def _result(future: Any) -> Any:
    try:
        return future.result(timeout=TIMEOUT_S)
    except KafkaException as exc:
        raise ClientError("error", str(exc.args[0] if exc.args else exc)) from exc


def _record(msg: Any) -> Record:
    return {"partition": msg.partition(), "offset": msg.offset(), "key": msg.key(), "value": msg.value(),
            "headers": [(k, v) for k, v in (msg.headers() or [])], "timestamp": msg.timestamp()[1]}


def _poll_messages(consumer: Consumer, timeout_s: float) -> list[Record]:
    out = []
    for msg in consumer.consume(num_messages=10_000, timeout=timeout_s):
        err = msg.error()
        if err is None:
            out.append(_record(msg))
        elif err.code() != KafkaError._PARTITION_EOF:
            raise ClientError("error", f"consume: {err}")
    return out


def _send_all(producer: Producer, topic: str, records: list[Record]) -> list[tuple[int, int]]:
    results: list[tuple[int, int] | None] = [None] * len(records)
    errors: list[str] = []

    def delivered(index: int):
        def callback(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                results[index] = (msg.partition(), msg.offset())
        return callback

    for i, r in enumerate(records):
        kwargs: dict[str, Any] = {"key": r.get("key"), "value": r.get("value"),
                                  "on_delivery": delivered(i)}
        if r.get("partition") is not None:
            kwargs["partition"] = r["partition"]
        if r.get("timestamp") is not None:
            kwargs["timestamp"] = r["timestamp"]
        if r.get("headers"):
            kwargs["headers"] = list(r["headers"])
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)  # local queue full: let deliveries drain
    remaining = producer.flush(120)
    if errors:
        raise ClientError("error", f"{len(errors)} deliveries failed, first: {errors[0]}")
    if remaining:
        raise ClientError("timeout", f"{remaining} records not delivered after flush")
    return [r if r is not None else (-1, -1) for r in results]


class ConfluentClient(Client):
    """confluent-kafka: AdminClient, Producer, Consumer (librdkafka underneath)."""

    name = "confluent"
    features = FEATURES["confluent"]

    def __init__(self) -> None:
        self._admin: AdminClient | None = None
        self._members: dict[str, Consumer] = {}
        self._member_errors: dict[str, list[Any]] = {}
        self._txn: dict[str, Producer] = {}

    def version(self) -> str:
        version = confluent_kafka.version()
        version = version[0] if isinstance(version, tuple) else version
        return f"{version} (librdkafka {confluent_kafka.libversion()[0]})"

    def start(self, bootstrap: str) -> None:
        super().start(bootstrap)
        self._admin = AdminClient(self._conf())

    def reset(self) -> None:
        self._members, self._txn = {}, {}

    def cleanup(self) -> None:
        members, txn = self._members, self._txn
        self._members, self._txn = {}, {}
        for c in members.values():
            c.close()
        for p in txn.values():
            try:
                p.flush(5)
            except KafkaException as exc:
                # a producer fenced on purpose (txn_fencing) is in a fatal state: flush reports that
                # state again; it says nothing about the broker
                err = exc.args[0] if exc.args else None
                if err is None or err.code() not in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED):
                    raise

    @property
    def admin(self) -> AdminClient:
        assert self._admin is not None
        return self._admin

    def _conf(self, **extra: Any) -> dict:
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "log_level": 2}  # errors are reported per scenario
        conf.update({k.replace("_", "."): v for k, v in extra.items()})
        return conf

    # -- admin -------------------------------------------------------------------------------
    def metadata(self) -> dict:
        d = _result(self.admin.describe_cluster(request_timeout=TIMEOUT_S))
        return {"cluster_id": d.cluster_id,
                "controller_id": d.controller.id if d.controller is not None else None,
                "brokers": [{"id": n.id, "host": n.host, "port": n.port} for n in d.nodes]}

    def create_topic(self, topic: str, partitions: int = 1, configs: dict | None = None) -> None:
        futures = self.admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                                     config=configs or {})], operation_timeout=TIMEOUT_S)
        _result(futures[topic])

    def delete_topic(self, topic: str) -> None:
        _result(self.admin.delete_topics([topic], operation_timeout=TIMEOUT_S)[topic])

    def list_topics(self) -> dict[str, int]:
        md = self.admin.list_topics(timeout=TIMEOUT_S)
        return {name: len(t.partitions) for name, t in md.topics.items() if t.error is None}

    def create_partitions(self, topic: str, total: int) -> None:
        _result(self.admin.create_partitions([NewPartitions(topic, total)],
                                             operation_timeout=TIMEOUT_S)[topic])

    def describe_topic_config(self, topic: str) -> dict[str, str]:
        futures = self.admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])
        entries = _result(next(iter(futures.values())))
        return {name: entry.value for name, entry in entries.items()}

    def alter_topic_config(self, topic: str, updates: dict[str, str | None]) -> None:
        entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET if v is not None
                               else AlterConfigOpType.DELETE) for k, v in updates.items()]
        futures = self.admin.incremental_alter_configs(
            [ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)])
        _result(next(iter(futures.values())))

    def delete_records(self, topic: str, partition: int, before: int) -> int:
        futures = self.admin.delete_records([TopicPartition(topic, partition, before)])
        return _result(next(iter(futures.values()))).low_watermark

    def list_offsets(self, topic: str, partition: int, spec: str | int) -> int:
        if spec == "earliest":
            offset_spec = OffsetSpec.earliest()
        elif spec == "latest":
            offset_spec = OffsetSpec.latest()
        else:
            offset_spec = OffsetSpec.for_timestamp(int(spec))
        futures = self.admin.list_offsets({TopicPartition(topic, partition): offset_spec})
        return _result(next(iter(futures.values()))).offset

    def list_groups(self) -> list[str]:
        result = _result(self.admin.list_consumer_groups(request_timeout=TIMEOUT_S))
        return [g.group_id for g in result.valid]

    def describe_group(self, group: str) -> dict:
        d = _result(self.admin.describe_consumer_groups([group])[group])
        return {"state": GROUP_STATES.get(d.state.name, d.state.name), "members": len(d.members)}

    def delete_group(self, group: str) -> None:
        _result(self.admin.delete_consumer_groups([group])[group])

    def committed(self, group: str, topic: str, partitions: int) -> dict[int, int]:
        futures = self.admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
        result = _result(futures[group])
        out = {p: -1 for p in range(partitions)}
        for tp in result.topic_partitions:
            if tp.topic == topic:
                out[tp.partition] = tp.offset
        return out

    # -- data --------------------------------------------------------------------------------
    def produce(self, topic: str, records: list[Record], *, compression: str = "none",
                acks: str = "all", idempotent: bool = False) -> list[tuple[int, int]]:
        producer = Producer(self._conf(**{"acks": acks, "compression.type": compression,
                                          "enable.idempotence": idempotent, "linger.ms": 5}))
        return _send_all(producer, topic, records)

    def consume(self, topic: str, *, count: int, partitions: list[int], start: Start = "earliest",
                isolation: str = "read_uncommitted", timeout_s: float = 30.0) -> list[Record]:
        # librdkafka needs a group.id even for manual assignment; it is never joined or committed
        consumer = Consumer(self._conf(**{"group.id": f"compat-unused-{uuid.uuid4().hex[:8]}",
                                          "enable.auto.commit": False, "isolation.level": isolation,
                                          "auto.offset.reset": "earliest"}))
        try:
            if start == "earliest":
                tps = [TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in partitions]
            elif start == "latest":
                tps = [TopicPartition(topic, p, confluent_kafka.OFFSET_END) for p in partitions]
            elif "timestamp" in start:
                tps = consumer.offsets_for_times([TopicPartition(topic, p, start["timestamp"]) for p in partitions],
                                                 timeout=TIMEOUT_S)
            else:
                tps = [TopicPartition(topic, p, start[p]) for p in partitions]
            consumer.assign(tps)
            out: list[Record] = []
            deadline = time.monotonic() + timeout_s
            while len(out) < count and time.monotonic() < deadline:
                out.extend(_poll_messages(consumer, 0.5))
            return out
        finally:
            consumer.close()

    # -- groups ------------------------------------------------------------------------------
    def group_open(self, handle: str, group: str, topics: list[str], *, assignor: str = "range",
                   instance_id: str | None = None, protocol: str = "classic") -> None:
        conf = self._conf(**{"group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        if protocol == "consumer":
            conf["group.protocol"] = "consumer"  # KIP-848: assignment is computed by the broker
        else:
            conf.update({"partition.assignment.strategy": assignor, "session.timeout.ms": 10_000,
                         "heartbeat.interval.ms": 1_000})
        if instance_id:
            conf["group.instance.id"] = instance_id
        errors: list[Any] = []
        conf["error_cb"] = errors.append  # e.g. "not supported by broker" never reaches poll()
        consumer = Consumer(conf)
        consumer.subscribe(topics)
        self._members[handle] = consumer
        self._member_errors[handle] = errors

    def group_poll(self, handle: str, timeout_s: float) -> list[Record]:
        records = _poll_messages(self._members[handle], timeout_s)
        for err in self._member_errors.get(handle, []):
            if err.fatal() or err.code() == KafkaError._UNSUPPORTED_FEATURE:
                raise ClientError("error", f"group member {handle}: {err}")
        return records

    def group_assignment(self, handle: str) -> list[tuple[str, int]]:
        return [(tp.topic, tp.partition) for tp in self._members[handle].assignment()]

    def group_commit(self, handle: str) -> None:
        try:
            self._members[handle].commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError._NO_OFFSET:
                return  # nothing consumed since the last commit
            raise ClientError("error", str(exc)) from exc

    def group_close(self, handle: str) -> None:
        self._members.pop(handle).close()

    # -- transactions --------------------------------------------------------------------------
    def _txn_call(self, func: Any, *args: Any) -> None:
        try:
            func(*args)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            fenced = err is not None and err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                                       KafkaError.INVALID_PRODUCER_EPOCH)
            raise ClientError("fenced" if fenced else "error", str(err)) from exc

    def txn_open(self, handle: str, transactional_id: str) -> None:
        producer = Producer(self._conf(**{"transactional.id": transactional_id}))
        self._txn[handle] = producer  # registered first: cleanup() flushes it even if init fails
        self._txn_call(producer.init_transactions, 20.0)

    def txn_begin(self, handle: str) -> None:
        self._txn_call(self._txn[handle].begin_transaction)

    def txn_produce(self, handle: str, topic: str, records: list[Record]) -> None:
        _send_all(self._txn[handle], topic, records)

    def txn_send_offsets(self, handle: str, group_handle: str, offsets: dict[tuple[str, int], int]) -> None:
        member = self._members[group_handle]
        self._txn_call(self._txn[handle].send_offsets_to_transaction,
                       [TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                       member.consumer_group_metadata(), TIMEOUT_S)

    def txn_commit(self, handle: str) -> None:
        self._txn_call(self._txn[handle].commit_transaction, TIMEOUT_S)

    def txn_abort(self, handle: str) -> None:
        self._txn_call(self._txn[handle].abort_transaction, TIMEOUT_S)

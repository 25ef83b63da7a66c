"""Driver for kafka-python (pure Python client)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kafka
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource
from kafka.errors import KafkaError, ProducerFencedError
from kafka.structs import OffsetAndMetadata

from compat.clients.base import Client, Record, Start
from compat.clients.features import FEATURES
from compat.errors import ClientError

REQUEST_TIMEOUT_MS = 30_000
# a broker without transactions makes init_transactions block this long (client default 60 s)
TXN_BLOCK_MS = 20_000
ASSIGNORS = {"range": "range", "roundrobin": "roundrobin", "sticky": "sticky"}


def _record(msg: Any) -> Record:
    return {"partition": msg.partition, "offset": msg.offset, "key": msg.key, "value": msg.value,
            "headers": [(k, v) for k, v in (msg.headers or [])], "timestamp": msg.timestamp}


def _send_all(producer: KafkaProducer, topic: str, records: list[Record]) -> list[tuple[int, int]]:
    futures = [producer.send(topic, key=r.get("key"), value=r.get("value"),
                             headers=list(r.get("headers", [])) or None, partition=r.get("partition"),
                             timestamp_ms=r.get("timestamp")) for r in records]
    producer.flush(timeout=120)
    out = []
    for f in futures:
        md = f.get(timeout=60)
        out.append((md.partition, md.offset))
    return out


class KafkaPythonClient(Client):
    """kafka-python: KafkaAdminClient, KafkaProducer, KafkaConsumer."""

    name = "kafka-python"
    features = FEATURES["kafka-python"]

    def __init__(self) -> None:
        self._admin: KafkaAdminClient | None = None
        self._members: dict[str, KafkaConsumer] = {}
        self._txn: dict[str, KafkaProducer] = {}

    def version(self) -> str:
        return kafka.__version__

    def start(self, bootstrap: str) -> None:
        super().start(bootstrap)
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS)

    def stop(self) -> None:
        self.cleanup()
        if self._admin is not None:
            self._admin.close()

    def reset(self) -> None:
        # a hung thread may still hold the old objects; just forget them
        self._members, self._txn = {}, {}

    def cleanup(self) -> None:
        members, txn = self._members, self._txn
        self._members, self._txn = {}, {}
        for c in members.values():
            c.close(autocommit=False)
        for p in txn.values():
            p.close(timeout=5)

    @property
    def admin(self) -> KafkaAdminClient:
        assert self._admin is not None
        return self._admin

    # -- admin -------------------------------------------------------------------------------
    def metadata(self) -> dict:
        md = self.admin.describe_cluster()
        return {"cluster_id": md["cluster_id"], "controller_id": md["controller_id"],
                "brokers": [{"id": b["broker_id"], "host": b["host"], "port": b["port"]}
                            for b in md["brokers"]]}

    def create_topic(self, topic: str, partitions: int = 1, configs: dict | None = None) -> None:
        self.admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1,
                                          "configs": configs or {}}}, wait_for_metadata=True)

    def delete_topic(self, topic: str) -> None:
        self.admin.delete_topics([topic])

    def list_topics(self) -> dict[str, int]:
        return {t["name"]: len(t["partitions"]) for t in self.admin.describe_topics()}

    def create_partitions(self, topic: str, total: int) -> None:
        self.admin.create_partitions({topic: total})

    def describe_topic_config(self, topic: str) -> dict[str, str]:
        result = self.admin.describe_configs([ConfigResource("TOPIC", topic)], config_filter="all")
        return {k: v["value"] for k, v in result["topic"][topic].items()}

    def alter_topic_config(self, topic: str, updates: dict[str, str | None]) -> None:
        configs = {k: ("SET", v) if v is not None else ("DELETE", None) for k, v in updates.items()}
        result = self.admin.alter_configs([ConfigResource("TOPIC", topic, configs=configs)],
                                          incremental=True, raise_on_unknown=False)
        _raise_errors(result)

    def delete_records(self, topic: str, partition: int, before: int) -> int:
        result = self.admin.delete_records({TopicPartition(topic, partition): before})
        value = result[TopicPartition(topic, partition)]
        return value["low_watermark"] if isinstance(value, dict) else value.low_watermark

    def list_offsets(self, topic: str, partition: int, spec: str | int) -> int:
        tp = TopicPartition(topic, partition)
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        try:
            if spec == "earliest":
                return consumer.beginning_offsets([tp])[tp]
            if spec == "latest":
                return consumer.end_offsets([tp])[tp]
            found = consumer.offsets_for_times({tp: int(spec)})[tp]
            return -1 if found is None else found.offset
        finally:
            consumer.close()

    def list_groups(self) -> list[str]:
        groups = self.admin.list_groups()
        return [g["group_id"] if isinstance(g, dict) else g[0] for g in groups]

    def describe_group(self, group: str) -> dict:
        d = self.admin.describe_groups([group])[group]
        return {"state": d["group_state"], "members": len(d["members"])}

    def delete_group(self, group: str) -> None:
        result = self.admin.delete_groups([group])
        # a dict {group_id: error} in kafka-python 3, a list of tuples before
        for group_id, error in (result.items() if isinstance(result, dict) else result):
            if error is not None and getattr(error, "errno", 0):
                raise ClientError("error", f"delete group {group_id}: {error}")

    def committed(self, group: str, topic: str, partitions: int) -> dict[int, int]:
        offsets = self.admin.list_group_offsets({group: None})[group]
        out = {p: -1 for p in range(partitions)}
        for tp, om in offsets.items():
            if tp.topic == topic:
                out[tp.partition] = om.offset
        return out

    # -- data --------------------------------------------------------------------------------
    def produce(self, topic: str, records: list[Record], *, compression: str = "none",
                acks: str = "all", idempotent: bool = False) -> list[tuple[int, int]]:
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap, acks=int(acks) if acks != "all" else "all",
            compression_type=None if compression == "none" else compression,
            enable_idempotence=idempotent, linger_ms=5, request_timeout_ms=REQUEST_TIMEOUT_MS)
        try:
            return _send_all(producer, topic, records)
        finally:
            producer.close(timeout=10)

    def consume(self, topic: str, *, count: int, partitions: list[int], start: Start = "earliest",
                isolation: str = "read_uncommitted", timeout_s: float = 30.0) -> list[Record]:
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                 enable_auto_commit=False, auto_offset_reset="earliest",
                                 isolation_level=isolation)
        try:
            tps = [TopicPartition(topic, p) for p in partitions]
            consumer.assign(tps)
            if start == "earliest":
                consumer.seek_to_beginning(*tps)
            elif start == "latest":
                consumer.seek_to_end(*tps)
            elif "timestamp" in start:
                found = consumer.offsets_for_times({tp: start["timestamp"] for tp in tps})
                for tp in tps:
                    if found[tp] is None:
                        consumer.seek_to_end(tp)
                    else:
                        consumer.seek(tp, found[tp].offset)
            else:
                for tp in tps:
                    consumer.seek(tp, start[tp.partition])
            out: list[Record] = []
            deadline = time.monotonic() + timeout_s
            while len(out) < count and time.monotonic() < deadline:
                for msgs in consumer.poll(timeout_ms=500).values():
                    out.extend(_record(m) for m in msgs)
            return out
        finally:
            consumer.close(autocommit=False)

    # -- groups ------------------------------------------------------------------------------
    def group_open(self, handle: str, group: str, topics: list[str], *, assignor: str = "range",
                   instance_id: str | None = None, protocol: str = "classic") -> None:
        from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
        from kafka.coordinator.assignors.range import RangePartitionAssignor
        strategy = CooperativeStickyAssignor if assignor == "cooperative-sticky" else RangePartitionAssignor
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group,
                                 enable_auto_commit=False, auto_offset_reset="earliest",
                                 group_instance_id=instance_id,
                                 partition_assignment_strategy=[strategy],
                                 session_timeout_ms=10_000, heartbeat_interval_ms=1_000)
        consumer.subscribe(topics)
        self._members[handle] = consumer

    def group_poll(self, handle: str, timeout_s: float) -> list[Record]:
        out: list[Record] = []
        for msgs in self._members[handle].poll(timeout_ms=int(timeout_s * 1000)).values():
            out.extend(_record(m) for m in msgs)
        return out

    def group_poll_many(self, handles: list[str], timeout_s: float) -> dict[str, list[Record]]:
        """Poll all members at once, one thread each. kafka-python only completes a join while
        poll() is running, so members polled one after the other can miss the end of a
        rebalance (see docs/groups.md, client findings)."""
        with ThreadPoolExecutor(max_workers=len(handles)) as pool:
            futures = {h: pool.submit(self.group_poll, h, timeout_s) for h in handles}
            return {h: f.result() for h, f in futures.items()}

    def group_assignment(self, handle: str) -> list[tuple[str, int]]:
        return [(tp.topic, tp.partition) for tp in self._members[handle].assignment()]

    def group_commit(self, handle: str) -> None:
        self._members[handle].commit()

    def group_close(self, handle: str) -> None:
        self._members.pop(handle).close(autocommit=False)

    # -- transactions --------------------------------------------------------------------------
    def txn_open(self, handle: str, transactional_id: str) -> None:
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, transactional_id=transactional_id,
                                 enable_idempotence=True, acks="all", max_block_ms=TXN_BLOCK_MS)
        self._txn[handle] = producer  # registered first: cleanup() closes it even if init fails
        producer.init_transactions()

    def txn_begin(self, handle: str) -> None:
        self._txn[handle].begin_transaction()

    def txn_produce(self, handle: str, topic: str, records: list[Record]) -> None:
        _send_all(self._txn[handle], topic, records)

    def txn_send_offsets(self, handle: str, group_handle: str, offsets: dict[tuple[str, int], int]) -> None:
        member = self._members[group_handle]
        self._txn[handle].send_offsets_to_transaction(
            {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()},
            member.group_metadata())

    def txn_commit(self, handle: str) -> None:
        try:
            self._txn[handle].commit_transaction()
        except ProducerFencedError as exc:
            raise ClientError("fenced", str(exc)) from exc
        except KafkaError as exc:
            raise ClientError("error", f"{type(exc).__name__}: {exc}") from exc

    def txn_abort(self, handle: str) -> None:
        self._txn[handle].abort_transaction()


def _raise_errors(result: Any) -> None:
    """alter_configs returns {type: {name: error}}; raise on any non-zero error."""
    if isinstance(result, dict):
        for per_type in result.values():
            for name, error in (per_type.items() if isinstance(per_type, dict) else []):
                if error is not None and getattr(error, "errno", 0):
                    raise ClientError("error", f"{name}: {error}")

"""Driver for aiokafka (asyncio client); its coroutines run on a private event loop thread."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Awaitable, TypeVar

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError, ProducerFenced

from compat.clients.base import Client, Record, Start
from compat.clients.features import FEATURES
from compat.errors import ClientError

T = TypeVar("T")
OP_TIMEOUT_S = 240.0
# aiokafka retries InitProducerId forever when the broker lacks it; bound transactional calls
TXN_TIMEOUT_S = 20.0


def _record(msg: Any) -> Record:
    return {"partition": msg.partition, "offset": msg.offset, "key": msg.key, "value": msg.value,
            "headers": [(k, v) for k, v in (msg.headers or [])], "timestamp": msg.timestamp}


def _check(response: Any) -> None:
    """Raise on any non-zero error_code in an admin response (topics or resources)."""
    for attr in ("topic_errors", "topics", "resources", "results"):
        for item in getattr(response, attr, None) or []:
            code = item[0] if attr == "resources" else item[1] if isinstance(item, tuple) else 0
            if isinstance(code, int) and code != 0:
                raise ClientError("error", f"{attr}: {item!r}")


class AioKafkaClient(Client):
    """aiokafka: AIOKafkaAdminClient, AIOKafkaProducer, AIOKafkaConsumer."""

    name = "aiokafka"
    features = FEATURES["aiokafka"]

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._members: dict[str, AIOKafkaConsumer] = {}
        self._txn: dict[str, AIOKafkaProducer] = {}

    def version(self) -> str:
        return aiokafka.__version__

    def _run(self, coro: Awaitable[T], timeout_s: float = OP_TIMEOUT_S) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)  # type: ignore[arg-type]

    @staticmethod
    async def _create(factory: Any) -> Any:
        """aiokafka objects bind to the running loop, so they are built inside it."""
        return factory()

    def start(self, bootstrap: str) -> None:
        super().start(bootstrap)
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        self._admin = self._run(self._create(lambda: AIOKafkaAdminClient(bootstrap_servers=bootstrap)))
        self._run(self._admin.start())

    def stop(self) -> None:
        self.cleanup()
        if self._admin is not None:
            self._run(self._admin.close())
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)

    def reset(self) -> None:
        self._members, self._txn = {}, {}

    def cleanup(self) -> None:
        members, txn = self._members, self._txn
        self._members, self._txn = {}, {}
        for c in members.values():
            self._run(c.stop(), 30)
        for p in txn.values():
            try:
                self._run(asyncio.wait_for(p.stop(), 10), 30)
            except (asyncio.TimeoutError, KafkaError):
                pass  # a producer that never started may not stop cleanly; it is dropped either way

    @property
    def admin(self) -> AIOKafkaAdminClient:
        assert self._admin is not None
        return self._admin

    # -- admin -------------------------------------------------------------------------------
    def metadata(self) -> dict:
        md = self._run(self.admin.describe_cluster())
        return {"cluster_id": md["cluster_id"], "controller_id": md["controller_id"],
                "brokers": [{"id": b["node_id"] if "node_id" in b else b["broker_id"], "host": b["host"],
                             "port": b["port"]} for b in md["brokers"]]}

    def create_topic(self, topic: str, partitions: int = 1, configs: dict | None = None) -> None:
        _check(self._run(self.admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs or {})])))

    def delete_topic(self, topic: str) -> None:
        _check(self._run(self.admin.delete_topics([topic])))

    def list_topics(self) -> dict[str, int]:
        return {t["topic"]: len(t["partitions"]) for t in self._run(self.admin.describe_topics())
                if t["error_code"] == 0}

    def create_partitions(self, topic: str, total: int) -> None:
        _check(self._run(self.admin.create_partitions({topic: NewPartitions(total)})))

    def describe_topic_config(self, topic: str) -> dict[str, str]:
        responses = self._run(self.admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)]))
        out: dict[str, str] = {}
        for response in responses:
            _check(response)
            for resource in response.resources:
                for entry in resource[4]:
                    out[entry[0]] = entry[1]
        return out

    def delete_records(self, topic: str, partition: int, before: int) -> int:
        tp = TopicPartition(topic, partition)
        return self._run(self.admin.delete_records({tp: RecordsToDelete(before)}))[tp]

    def list_offsets(self, topic: str, partition: int, spec: str | int) -> int:
        return self._run(self._list_offsets(topic, partition, spec))

    async def _list_offsets(self, topic: str, partition: int, spec: str | int) -> int:
        tp = TopicPartition(topic, partition)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            if spec == "earliest":
                return (await consumer.beginning_offsets([tp]))[tp]
            if spec == "latest":
                return (await consumer.end_offsets([tp]))[tp]
            found = (await consumer.offsets_for_times({tp: int(spec)}))[tp]
            return -1 if found is None else found.offset
        finally:
            await consumer.stop()

    def committed(self, group: str, topic: str, partitions: int) -> dict[int, int]:
        offsets = self._run(self.admin.list_consumer_group_offsets(group))
        out = {p: -1 for p in range(partitions)}
        for tp, om in offsets.items():
            if tp.topic == topic:
                out[tp.partition] = om.offset
        return out

    # -- data --------------------------------------------------------------------------------
    def produce(self, topic: str, records: list[Record], *, compression: str = "none",
                acks: str = "all", idempotent: bool = False) -> list[tuple[int, int]]:
        return self._run(self._produce(topic, records, compression, acks, idempotent))

    async def _produce(self, topic: str, records: list[Record], compression: str, acks: str,
                       idempotent: bool) -> list[tuple[int, int]]:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks=int(acks) if acks != "all" else "all",
                                    compression_type=None if compression == "none" else compression,
                                    enable_idempotence=idempotent, linger_ms=5)
        await producer.start()
        try:
            return await self._send_all(producer, topic, records)
        finally:
            await producer.stop()

    @staticmethod
    async def _send_all(producer: AIOKafkaProducer, topic: str, records: list[Record]) -> list[tuple[int, int]]:
        futures = [await producer.send(topic, key=r.get("key"), value=r.get("value"), partition=r.get("partition"),
                                       timestamp_ms=r.get("timestamp"), headers=list(r.get("headers", [])) or None)
                   for r in records]
        out = []
        for r, f in zip(records, futures):
            md = await f
            # acks=0 resolves to None: nothing is known about the stored position
            out.append((r.get("partition", -1), -1) if md is None else (md.partition, md.offset))
        return out

    def consume(self, topic: str, *, count: int, partitions: list[int], start: Start = "earliest",
                isolation: str = "read_uncommitted", timeout_s: float = 30.0) -> list[Record]:
        return self._run(self._consume(topic, count, partitions, start, isolation, timeout_s), timeout_s + 60)

    async def _consume(self, topic: str, count: int, partitions: list[int], start: Start, isolation: str,
                       timeout_s: float) -> list[Record]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest", isolation_level=isolation)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in partitions]
            consumer.assign(tps)
            if start == "earliest":
                await consumer.seek_to_beginning(*tps)
            elif start == "latest":
                await consumer.seek_to_end(*tps)
            elif "timestamp" in start:
                found = await consumer.offsets_for_times({tp: start["timestamp"] for tp in tps})
                for tp in tps:
                    if found[tp] is None:
                        await consumer.seek_to_end(tp)
                    else:
                        consumer.seek(tp, found[tp].offset)
            else:
                for tp in tps:
                    consumer.seek(tp, start[tp.partition])
            out: list[Record] = []
            deadline = time.monotonic() + timeout_s
            while len(out) < count and time.monotonic() < deadline:
                for msgs in (await consumer.getmany(timeout_ms=500)).values():
                    out.extend(_record(m) for m in msgs)
            return out
        finally:
            await consumer.stop()

    # -- groups ------------------------------------------------------------------------------
    def group_open(self, handle: str, group: str, topics: list[str], *, assignor: str = "range",
                   instance_id: str | None = None, protocol: str = "classic") -> None:
        async def open_member() -> AIOKafkaConsumer:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group,
                                        group_instance_id=instance_id, enable_auto_commit=False,
                                        auto_offset_reset="earliest",
                                        partition_assignment_strategy=(RangePartitionAssignor,),
                                        session_timeout_ms=10_000, heartbeat_interval_ms=1_000)
            await consumer.start()
            consumer.subscribe(topics)
            return consumer
        self._members[handle] = self._run(open_member())

    def group_poll(self, handle: str, timeout_s: float) -> list[Record]:
        batches = self._run(self._members[handle].getmany(timeout_ms=int(timeout_s * 1000)))
        return [_record(m) for msgs in batches.values() for m in msgs]

    def group_assignment(self, handle: str) -> list[tuple[str, int]]:
        return [(tp.topic, tp.partition) for tp in self._members[handle].assignment()]

    def group_commit(self, handle: str) -> None:
        self._run(self._members[handle].commit())

    def group_close(self, handle: str) -> None:
        self._run(self._members.pop(handle).stop())

    # -- transactions --------------------------------------------------------------------------
    def _txn_call(self, coro: Awaitable[Any]) -> Any:
        try:
            return self._run(asyncio.wait_for(coro, TXN_TIMEOUT_S))
        except asyncio.TimeoutError as exc:
            raise ClientError("timeout", f"no answer within {TXN_TIMEOUT_S:.0f}s") from exc
        except ProducerFenced as exc:
            raise ClientError("fenced", str(exc)) from exc
        except KafkaError as exc:
            raise ClientError("error", f"{type(exc).__name__}: {exc}") from exc

    def txn_open(self, handle: str, transactional_id: str) -> None:
        producer = self._run(self._create(lambda: AIOKafkaProducer(bootstrap_servers=self.bootstrap,
                                                                   transactional_id=transactional_id)))
        # registered first so that cleanup() stops it even when start() fails
        self._txn[handle] = producer
        self._txn_call(producer.start())

    def txn_begin(self, handle: str) -> None:
        self._txn_call(self._txn[handle].begin_transaction())

    def txn_produce(self, handle: str, topic: str, records: list[Record]) -> None:
        self._txn_call(self._send_all(self._txn[handle], topic, records))

    def txn_send_offsets(self, handle: str, group_handle: str, offsets: dict[tuple[str, int], int]) -> None:
        group = self._members[group_handle]._group_id
        self._txn_call(self._txn[handle].send_offsets_to_transaction(
            {TopicPartition(t, p): o for (t, p), o in offsets.items()}, group))

    def txn_commit(self, handle: str) -> None:
        self._txn_call(self._txn[handle].commit_transaction())

    def txn_abort(self, handle: str) -> None:
        self._txn_call(self._txn[handle].abort_transaction())

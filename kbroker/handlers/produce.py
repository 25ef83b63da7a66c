"""Produce (key 0): append client batches to partition logs.

Versions 3+ carry magic-2 record batches only (INVALID_RECORD otherwise, as Kafka's
ProduceRequest.validateRecords); versions 0-2 may carry magic 0/1 message sets, converted
to one v2 batch by `protocol.legacy.convert_to_batch` before the append. Validation,
offset assignment and LogAppendTime are the PartitionLog's job; this module maps its
KafkaError codes onto the partition response and wakes fetches through
`Broker.log_appended`.

acks: 0 sends no response (and closes the connection when a partition failed, so the
producer notices, as Kafka does); 1 and -1 answer once the batch is written (a single node
is the whole ISR), except that acks=-1 on a partition whose ISR is smaller than its
min.insync.replicas is refused with NOT_ENOUGH_REPLICAS, as Kafka does. Any other acks
value: INVALID_REQUIRED_ACKS for every partition.
"""

from __future__ import annotations

import logging

from kbroker.dispatch import CloseConnection, RequestContext, handler
from kbroker.errors import KafkaError
from kbroker.log.producer_state import guarded_append
from protocol import DecodeError

logger = logging.getLogger(__name__)

PRODUCE = 0
NONE = 0
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TOPIC_EXCEPTION = 17
NOT_ENOUGH_REPLICAS = 19
INVALID_REQUIRED_ACKS = 21
INVALID_RECORD = 87
MAGIC_OFFSET = 16  # byte position of `magic` in both v2 batches and v0/v1 messages
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state", "__cluster_metadata"})


def _partition_response(index: int, error_code: int, base_offset: int = -1,
                        log_append_time_ms: int = -1, log_start_offset: int = -1,
                        error_message: str | None = None) -> dict:
    return {"index": index, "error_code": error_code, "base_offset": base_offset,
            "log_append_time_ms": log_append_time_ms, "log_start_offset": log_start_offset,
            "record_errors": [], "error_message": error_message}


def _records_for_append(records: bytes | memoryview | None, api_version: int) -> bytes | memoryview:
    """The v2 batch bytes to append; raises KafkaError for the wrong magic or no data."""
    if records is None or len(records) <= MAGIC_OFFSET:
        raise KafkaError(CORRUPT_MESSAGE if records else INVALID_RECORD, "no record batch")
    magic = records[MAGIC_OFFSET]
    if magic == 2:
        return records
    if api_version >= 3 or magic not in (0, 1):
        raise KafkaError(INVALID_RECORD, f"magic {magic} not allowed in produce v{api_version}")
    from protocol.legacy import convert_to_batch  # old clients only

    try:
        return convert_to_batch(bytes(records))
    except DecodeError as exc:
        raise KafkaError(CORRUPT_MESSAGE, str(exc)) from None


async def _topic(ctx: RequestContext, name: str) -> tuple[object | None, int]:
    """(TopicImage or None, error code), auto-creating the topic when enabled."""
    broker = ctx.broker
    topic = broker.controller.image.topics_by_name.get(name)
    if topic is not None:
        return topic, NONE
    if broker.config.auto_create_topics_enable:
        from kbroker.metadata.auto_create import ensure_topic

        try:
            topic = await ensure_topic(broker, name)
        except KafkaError as exc:
            logger.debug("auto-create of %r refused: %s", name, exc)
            code = int(exc.code)
            # An illegal name is the client's fault; other failures look like a missing topic.
            return None, code if code == INVALID_TOPIC_EXCEPTION else UNKNOWN_TOPIC_OR_PARTITION
    return topic, NONE if topic is not None else UNKNOWN_TOPIC_OR_PARTITION


def _append(ctx: RequestContext, topic, index: int, records, api_version: int, acks: int) -> dict:
    broker = ctx.broker
    partition = topic.partitions.get(index)
    log = broker.partition_log(topic, index) if partition is not None else None
    if log is None:
        return _partition_response(index, UNKNOWN_TOPIC_OR_PARTITION)
    if acks == -1:
        min_insync = getattr(log.config, "min_insync_replicas", 1)
        if len(partition.isr) < min_insync:
            # As Kafka's Partition.appendRecordsToLeader: refused before writing anything.
            return _partition_response(index, NOT_ENOUGH_REPLICAS, error_message=(
                f"The size of the current ISR {len(partition.isr)} is insufficient to satisfy "
                f"the min.isr requirement of {min_insync} for partition {topic.name}-{index}"))
    try:
        batch = _records_for_append(records, api_version)
        # issue 7: sequence/epoch checks and de-duplication through the producer state
        result = guarded_append(getattr(broker, "producers", None), log, batch,
                                leader_epoch=partition.leader_epoch, now_ms=broker.clock.now_ms())
    except KafkaError as exc:
        return _partition_response(index, int(exc.code), error_message=exc.message)
    except DecodeError as exc:  # protocol's InvalidRecordError carries its Kafka code
        return _partition_response(index, int(getattr(exc, "error_code", CORRUPT_MESSAGE)),
                                   error_message=str(exc))
    broker.log_appended(topic.name, index)
    return _partition_response(index, NONE, result.base_offset, result.log_append_time_ms,
                               result.log_start_offset)


@handler(PRODUCE, 0, 11)
async def handle_produce(ctx: RequestContext, request: dict) -> dict | None:
    """Append each partition's batch; answer per partition (or not at all for acks=0)."""
    acks = request["acks"]
    responses = []
    failed = False
    for topic_data in request["topic_data"]:
        name = topic_data["name"]
        partitions = topic_data["partition_data"]
        if acks not in (0, 1, -1):
            results = [_partition_response(p["index"], INVALID_REQUIRED_ACKS) for p in partitions]
        elif name in INTERNAL_TOPICS:
            results = [_partition_response(p["index"], INVALID_TOPIC_EXCEPTION,
                                           error_message=f"Cannot append to internal topic {name}")
                       for p in partitions]
        else:
            topic = ctx.broker.controller.image.topics_by_name.get(name)
            if topic is None:  # the rare case (auto-create, unknown topic) may await
                topic, error_code = await _topic(ctx, name)
            if topic is None:
                results = [_partition_response(p["index"], error_code) for p in partitions]
            else:
                results = [_append(ctx, topic, p["index"], p["records"], ctx.api_version, acks)
                           for p in partitions]
        failed = failed or any(r["error_code"] for r in results)
        responses.append({"name": name, "partition_responses": results})
    if acks == 0:
        if failed:
            raise CloseConnection("acks=0 produce failed on a partition")
        return None
    return {"responses": responses, "throttle_time_ms": 0}

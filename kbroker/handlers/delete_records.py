"""DeleteRecords (key 21, v0-2): move a partition's log start offset forward on request.

As Kafka's ReplicaManager.deleteRecords / Partition.deleteRecordsOnLeader: offset -1 means
"up to the high watermark"; an offset beyond the high watermark (or below -1) answers
OFFSET_OUT_OF_RANGE; an offset at or below the current log start changes nothing and
answers the current low watermark; internal topics are refused (INVALID_TOPIC_EXCEPTION)
and so are logs whose cleanup.policy lacks ``delete`` (POLICY_VIOLATION). Whole segments
below the new log start offset are removed by the log; records below it in the first
remaining segment are hidden from reads (OFFSET_OUT_OF_RANGE below the log start).

A single node is the whole ISR, so the new low watermark is final when the response is
sent: `timeout_ms` is never waited on.
"""

from __future__ import annotations

import logging
from typing import Any

from kbroker.dispatch import RequestContext, handler
from kbroker.errors import KafkaError

logger = logging.getLogger(__name__)

DELETE_RECORDS = 21
NONE = 0
OFFSET_OUT_OF_RANGE = 1
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TOPIC_EXCEPTION = 17
POLICY_VIOLATION = 44
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state", "__cluster_metadata"})
HIGH_WATERMARK = -1  # the request's "delete everything below the high watermark" offset


def _partition(ctx: RequestContext, topic: Any, name: str, request: dict) -> dict:
    index = request["partition_index"]
    result = {"partition_index": index, "low_watermark": -1, "error_code": NONE}
    if name in INTERNAL_TOPICS:
        result["error_code"] = INVALID_TOPIC_EXCEPTION
        return result
    partition = topic.partitions.get(index) if topic is not None else None
    log = ctx.broker.partition_log(topic, index) if partition is not None else None
    if log is None:
        result["error_code"] = UNKNOWN_TOPIC_OR_PARTITION
        return result
    if "delete" not in log.config.cleanup_policy:
        result["error_code"] = POLICY_VIOLATION
        return result
    offset = request["offset"]
    if offset < HIGH_WATERMARK:
        result["error_code"] = OFFSET_OUT_OF_RANGE
        return result
    try:
        result["low_watermark"] = log.delete_records_before(offset)
    except KafkaError as exc:
        logger.info("delete records refused topic=%s partition=%d offset=%d: %s", name, index, offset, exc.message)
        result["error_code"] = int(exc.code)
        return result
    logger.debug("delete records topic=%s partition=%d offset=%d low_watermark=%d",
                 name, index, offset, result["low_watermark"])
    return result


@handler(DELETE_RECORDS, 0, 2)
async def handle_delete_records(ctx: RequestContext, request: dict) -> dict:
    """Move the log start offset of each requested partition; per-partition errors."""
    image = ctx.broker.controller.image
    topics = []
    for topic_request in request["topics"]:
        name = topic_request["name"]
        topic = image.topics_by_name.get(name)
        topics.append({"name": name,
                       "partitions": [_partition(ctx, topic, name, p) for p in topic_request["partitions"]]})
    return {"throttle_time_ms": 0, "topics": topics}

"""OffsetForLeaderEpoch (key 23): the end offset of a leader epoch in a partition's log.

Consumers use it after a leader change to detect log truncation (KIP-320). The answer is
the largest epoch <= the requested one and the first offset after it, from
`PartitionLog.end_offset_for_leader_epoch`; (-1, -1) with UNKNOWN_TOPIC_OR_PARTITION for a
partition we do not have.
"""

from __future__ import annotations

from typing import Any

from kbroker.dispatch import RequestContext, handler
from kbroker.errors import KafkaError
from kbroker.handlers.fetch import check_leader_epoch

OFFSET_FOR_LEADER_EPOCH = 23
UNKNOWN_TOPIC_OR_PARTITION = 3


def _partition(ctx: RequestContext, topic: Any, request: dict) -> dict:
    index = request["partition"]
    result = {"error_code": 0, "partition": index, "leader_epoch": -1, "end_offset": -1}
    partition = topic.partitions.get(index) if topic is not None else None
    log = ctx.broker.partition_log(topic, index) if partition is not None else None
    if log is None:
        result["error_code"] = UNKNOWN_TOPIC_OR_PARTITION
        return result
    error = check_leader_epoch(request.get("current_leader_epoch", -1), partition.leader_epoch)
    if error:
        result["error_code"] = error
        return result
    try:
        epoch, end_offset = log.end_offset_for_leader_epoch(request["leader_epoch"])
    except KafkaError as exc:
        result["error_code"] = int(exc.code)
        return result
    result["leader_epoch"] = epoch
    result["end_offset"] = end_offset
    return result


@handler(OFFSET_FOR_LEADER_EPOCH, 0, 4)
async def handle_offset_for_leader_epoch(ctx: RequestContext, request: dict) -> dict:
    """Answer the end offset of each requested (partition, leader epoch)."""
    image = ctx.broker.controller.image
    topics = []
    for topic_request in request["topics"]:
        topic = image.topics_by_name.get(topic_request["topic"])
        topics.append({"topic": topic_request["topic"],
                       "partitions": [_partition(ctx, topic, p) for p in topic_request["partitions"]]})
    return {"throttle_time_ms": 0, "topics": topics}

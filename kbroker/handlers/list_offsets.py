"""ListOffsets (key 2): offsets by timestamp, earliest, latest and max timestamp.

Special timestamps, as Kafka's ListOffsetsRequest: -1 latest (high watermark, or the last
stable offset for read_committed), -2 earliest (log start offset), -3 the record with the
largest timestamp (v7+), -4 earliest local (= earliest: no tiered storage), -5 latest
tiered (v9: no tiered storage, so offset -1 as Kafka answers). A timestamp >= 0 finds the
first record whose timestamp is at least it (offset -1 when none). v0 answers with the
old `old_style_offsets` list (at most `max_num_offsets`).
"""

from __future__ import annotations

from typing import Any

from kbroker.dispatch import RequestContext, handler
from kbroker.errors import KafkaError
from kbroker.handlers.fetch import check_leader_epoch

LIST_OFFSETS = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL = -4
LATEST_TIERED = -5
READ_COMMITTED = 1


def _lookup(log: Any, timestamp: int, isolation_level: int) -> tuple[int, int, int | None]:
    """(offset, timestamp, leader epoch or None for the partition's current one)."""
    if timestamp == LATEST:
        if isolation_level == READ_COMMITTED:
            return getattr(log, "last_stable_offset", log.high_watermark), -1, None
        return log.high_watermark, -1, None
    if timestamp in (EARLIEST, EARLIEST_LOCAL):
        return log.log_start_offset, -1, None
    if timestamp == LATEST_TIERED:
        return -1, -1, -1
    found = log.offset_of_max_timestamp() if timestamp == MAX_TIMESTAMP else log.offset_for_timestamp(timestamp)
    if found is None:
        return -1, -1, -1
    offset, found_timestamp, epoch = found
    return offset, found_timestamp, epoch


def _partition(ctx: RequestContext, topic: Any, request: dict, isolation_level: int) -> dict:
    version = ctx.api_version
    index = request["partition_index"]
    result: dict = {"partition_index": index, "error_code": 0}
    partition = topic.partitions.get(index) if topic is not None else None
    log = ctx.broker.partition_log(topic, index) if partition is not None else None
    offset, timestamp, epoch = -1, -1, -1
    if log is None:
        result["error_code"] = UNKNOWN_TOPIC_OR_PARTITION
    else:
        error = check_leader_epoch(request.get("current_leader_epoch", -1), partition.leader_epoch)
        if error:
            result["error_code"] = error
        else:
            try:
                offset, timestamp, epoch = _lookup(log, request["timestamp"], isolation_level)
            except KafkaError as exc:
                result["error_code"] = int(exc.code)
            if epoch is None:
                epoch = partition.leader_epoch
    if version == 0:
        wanted = request.get("max_num_offsets", 1)
        result["old_style_offsets"] = [offset] if offset >= 0 and wanted > 0 and not result["error_code"] else []
    else:
        result["timestamp"] = timestamp
        result["offset"] = offset
        if version >= 4:
            result["leader_epoch"] = epoch
    return result


@handler(LIST_OFFSETS, 0, 9)
async def handle_list_offsets(ctx: RequestContext, request: dict) -> dict:
    """Answer each partition's offset lookup."""
    isolation_level = request.get("isolation_level", 0) if ctx.api_version >= 2 else 0
    image = ctx.broker.controller.image
    topics = []
    for topic_request in request["topics"]:
        topic = image.topics_by_name.get(topic_request["name"])
        topics.append({"name": topic_request["name"],
                       "partitions": [_partition(ctx, topic, p, isolation_level)
                                      for p in topic_request["partitions"]]})
    return {"throttle_time_ms": 0, "topics": topics}

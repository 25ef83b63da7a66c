"""Fetch (key 1): whole batches as bytes from the partition logs, with long polling.

Path of one fetch: resolve the session (KIP-227, `kbroker.fetch_session`) to the ordered
list of partitions to read -> read each partition's log from its fetch offset up to the
high watermark (last stable offset for read_committed), within `partition_max_bytes` and
what is left of `max_bytes`; the first non-empty partition always gets its first batch
whole (KIP-74) -> if fewer than `min_bytes` came back and no partition failed, wait on
`Broker.wait_for_append` until an append to one of them or `max_wait_ms`, then read again.

Errors per partition: UNKNOWN_TOPIC_OR_PARTITION (by name, v0-12), UNKNOWN_TOPIC_ID
(v13+), OFFSET_OUT_OF_RANGE (from the log), FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH when
current_leader_epoch does not match. Session errors are top-level (v7+).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from kbroker.dispatch import RequestContext, handler
from kbroker.errors import KafkaError
from kbroker.fetch_session import (FINAL_EPOCH, INITIAL_EPOCH, CachedPartition,
                                   FetchSessionError)

logger = logging.getLogger(__name__)

FETCH = 1
INT32_MAX = 2**31 - 1
UNKNOWN_TOPIC_OR_PARTITION = 3
FENCED_LEADER_EPOCH = 74
UNKNOWN_LEADER_EPOCH = 76
UNKNOWN_TOPIC_ID = 100
READ_COMMITTED = 1
CONTROL_BIT = 0x20          # v2 batch attribute: control batch
LOG_APPEND_TIME_BIT = 0x08  # v1 message / v2 batch attribute: LogAppendTime


def check_leader_epoch(requested: int, current: int) -> int:
    """The error for a client's current_leader_epoch against ours (0 when fine or unset)."""
    if requested < 0 or requested == current:
        return 0
    return FENCED_LEADER_EPOCH if requested < current else UNKNOWN_LEADER_EPOCH


def _requested(request: dict, use_ids: bool) -> "OrderedDict[tuple, CachedPartition]":
    partitions: "OrderedDict[tuple, CachedPartition]" = OrderedDict()
    for topic in request["topics"]:
        topic_key = topic["topic_id"] if use_ids else topic["topic"]
        for p in topic["partitions"]:
            partitions[(topic_key, p["partition"])] = CachedPartition(
                fetch_offset=p["fetch_offset"],
                partition_max_bytes=p["partition_max_bytes"],
                current_leader_epoch=p.get("current_leader_epoch", -1),
                log_start_offset=p.get("log_start_offset", -1))
    return partitions


def _forgotten(request: dict, use_ids: bool) -> list[tuple]:
    keys = []
    for topic in request.get("forgotten_topics_data") or ():
        topic_key = topic["topic_id"] if use_ids else topic["topic"]
        keys.extend((topic_key, p) for p in topic["partitions"])
    return keys


def _plan(ctx: RequestContext, request: dict, use_ids: bool):
    """(partitions to read in order, session or None, response session id, full?)."""
    requested = _requested(request, use_ids)
    if ctx.api_version < 7:
        return requested, None, 0, True
    cache = ctx.broker.fetch_sessions
    session_id = request.get("session_id", 0)
    epoch = request.get("session_epoch", FINAL_EPOCH)
    if epoch == FINAL_EPOCH:
        if session_id:
            cache.close(session_id)
        return requested, None, 0, True
    if epoch == INITIAL_EPOCH:
        if session_id:
            cache.close(session_id)
        session = cache.create(requested)
        return requested, session, session.session_id if session else 0, True
    session = cache.resume(session_id, epoch)  # raises FetchSessionError
    for key in _forgotten(request, use_ids):
        session.partitions.pop(key, None)
    for key, cached in requested.items():
        existing = session.partitions.get(key)
        if existing is None:
            session.partitions[key] = cached
        else:
            existing.fetch_offset = cached.fetch_offset
            existing.partition_max_bytes = cached.partition_max_bytes
            existing.current_leader_epoch = cached.current_leader_epoch
            existing.log_start_offset = cached.log_start_offset
    return session.partitions, session, session_id, False


class _Read:
    """One partition's outcome in one pass."""

    __slots__ = ("key", "name", "error_code", "high_watermark", "last_stable_offset",
                 "log_start_offset", "records", "aborted_transactions")

    def __init__(self, key: tuple, name: str | None, error_code: int = 0, high_watermark: int = -1,
                 last_stable_offset: int = -1, log_start_offset: int = -1, records: bytes = b"") -> None:
        self.key = key
        self.name = name
        self.error_code = error_code
        self.high_watermark = high_watermark
        self.last_stable_offset = last_stable_offset
        self.log_start_offset = log_start_offset
        self.records = records
        self.aborted_transactions: list[dict] = []


def _read_partition(ctx: RequestContext, image: Any, key: tuple, cached: CachedPartition,
                    max_bytes: int, min_one_batch: bool, use_ids: bool, isolation_level: int,
                    from_follower: bool) -> _Read:
    topic_key, index = key
    topic = (image.topics_by_id if use_ids else image.topics_by_name).get(topic_key)
    if topic is None:
        return _Read(key, None, UNKNOWN_TOPIC_ID if use_ids else UNKNOWN_TOPIC_OR_PARTITION)
    partition = topic.partitions.get(index)
    log = ctx.broker.partition_log(topic, index) if partition is not None else None
    if log is None:
        return _Read(key, topic.name, UNKNOWN_TOPIC_OR_PARTITION)
    epoch_error = check_leader_epoch(cached.current_leader_epoch, partition.leader_epoch)
    if epoch_error:
        return _Read(key, topic.name, epoch_error)
    producers = getattr(ctx.broker, "producers", None)
    # issue 7: loading the producer state makes log.last_stable_offset the real LSO
    state = producers.for_log(log) if producers is not None else None
    high_watermark = log.high_watermark
    last_stable_offset = getattr(log, "last_stable_offset", high_watermark)
    if from_follower:
        max_offset = None
    else:
        max_offset = last_stable_offset if isolation_level == READ_COMMITTED else high_watermark
    try:
        result = log.read(cached.fetch_offset, max_bytes, max_offset=max_offset,
                          min_one_batch=min_one_batch)
    except KafkaError as exc:
        return _Read(key, topic.name, int(exc.code), high_watermark, last_stable_offset,
                     log.log_start_offset)
    read = _Read(key, topic.name, 0, result.high_watermark, result.last_stable_offset,
                 result.log_start_offset, result.records)
    if state is not None and isolation_level == READ_COMMITTED and result.records:
        read.aborted_transactions = _aborted(state, cached.fetch_offset, result.records)
    return read


def _aborted(state: Any, fetch_offset: int, records: bytes) -> list[dict]:
    """Aborted transactions overlapping the fetched batches (issue 7), as Kafka lists them."""
    from protocol.records import iter_batches

    upper = fetch_offset
    for _pos, header in iter_batches(records):
        upper = header.next_offset
    return [txn.as_fetch_entry() for txn in state.aborted_transactions(fetch_offset, upper)]


def _read_all(ctx: RequestContext, partitions, max_bytes: int, use_ids: bool,
              isolation_level: int, from_follower: bool) -> tuple[list[_Read], int, bool]:
    image = ctx.broker.controller.image
    reads = []
    total = 0
    failed = False
    for key, cached in partitions.items():
        budget = min(cached.partition_max_bytes, max_bytes - total)
        if budget <= 0 and total > 0:
            budget = 0
        read = _read_partition(ctx, image, key, cached, max(budget, 0), total == 0,
                               use_ids, isolation_level, from_follower)
        total += len(read.records)
        failed = failed or read.error_code != 0
        reads.append(read)
    return reads, total, failed


def down_convert(records: bytes, magic: int) -> bytes:
    """v2 batches -> an uncompressed magic 0/1 message set, for Fetch v0-3 (as Kafka does).

    Control batches are dropped, and so are record headers (older formats have none).
    """
    from protocol.legacy import encode_message
    from protocol.record_codec import decode_records

    out = bytearray()
    for batch in decode_records(records):
        if batch.attributes & CONTROL_BIT:
            continue
        log_append_time = batch.timestamp_type == 1
        for record in batch.records:
            timestamp = -1
            if magic == 1:
                timestamp = batch.max_timestamp if log_append_time else batch.base_timestamp + record.timestamp_delta
            out += encode_message(batch.base_offset + record.offset_delta, record.key, record.value,
                                  magic=magic, timestamp=timestamp,
                                  attributes=LOG_APPEND_TIME_BIT if (log_append_time and magic == 1) else 0)
    return bytes(out)


def _partition_body(read: _Read, version: int, isolation_level: int) -> dict:
    body = {"partition_index": read.key[1], "error_code": read.error_code,
            "high_watermark": read.high_watermark, "last_stable_offset": read.last_stable_offset,
            "log_start_offset": read.log_start_offset,
            # As Kafka: the aborted transactions for read_committed, else null.
            "aborted_transactions": (read.aborted_transactions if isolation_level == READ_COMMITTED
                                     else None),
            "records": read.records}
    if version <= 3 and read.records:
        body["records"] = down_convert(read.records, 0 if version <= 1 else 1)
    if version >= 11:
        body["preferred_read_replica"] = -1
    return body


def _response(reads: list[_Read], version: int, session_id: int, use_ids: bool,
              isolation_level: int) -> dict:
    topics: list[dict] = []
    last_key: Any = object()
    for read in reads:  # request order; consecutive partitions of a topic share an entry
        topic_key = read.key[0]
        if topic_key != last_key:
            entry = {"topic_id": topic_key} if use_ids else {"topic": topic_key}
            entry["partitions"] = []
            topics.append(entry)
            last_key = topic_key
        topics[-1]["partitions"].append(_partition_body(read, version, isolation_level))
    body: dict = {"throttle_time_ms": 0, "responses": topics}
    if version >= 7:
        body["error_code"] = 0
        body["session_id"] = session_id
    return body


@handler(FETCH, 0, 17)
async def handle_fetch(ctx: RequestContext, request: dict) -> dict:
    """Serve a fetch, long-polling up to max_wait_ms for min_bytes."""
    version = ctx.api_version
    use_ids = version >= 13
    if version >= 15:
        replica_id = (request.get("replica_state") or {}).get("replica_id", -1)
    else:
        replica_id = request.get("replica_id", -1)
    max_bytes = min(request.get("max_bytes", INT32_MAX) if version >= 3 else INT32_MAX,
                    ctx.broker.config.fetch_max_bytes)
    isolation_level = request.get("isolation_level", 0) if version >= 4 else 0
    try:
        partitions, session, session_id, full = _plan(ctx, request, use_ids)
    except FetchSessionError as exc:
        return {"throttle_time_ms": 0, "error_code": exc.code, "session_id": 0, "responses": []}

    clock = ctx.broker.clock
    deadline = clock.monotonic() + max(request["max_wait_ms"], 0) / 1000
    min_bytes = request["min_bytes"]
    while True:
        reads, total, failed = _read_all(ctx, partitions, max_bytes, use_ids, isolation_level,
                                         replica_id >= 0)
        if total >= min_bytes or failed or not reads:
            break
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            break
        names = [(read.name, read.key[1]) for read in reads if read.name is not None]
        if not await ctx.broker.wait_for_append(names, remaining):
            break  # timed out (or stopping): nothing was appended, the reads stand

    if session is not None:
        reads = [read for read in reads
                 if _changed(session.partitions.get(read.key), read) or full]
        if not full:
            # As Kafka: partitions that returned data go to the back of the session, so a
            # max_bytes-limited fetch does not always favour the same partitions.
            for read in reads:
                if read.records and read.key in session.partitions:
                    session.partitions.move_to_end(read.key)
    return _response(reads, version, session_id, use_ids, isolation_level)


def _changed(cached: CachedPartition | None, read: _Read) -> bool:
    """Whether an incremental response must include this partition (and remember it)."""
    if cached is None:
        return True
    moved = cached.changed(read.high_watermark, read.last_stable_offset, read.log_start_offset)
    return bool(read.records) or read.error_code != 0 or moved

"""Idempotent producers and transactions: InitProducerId, AddPartitionsToTxn (incl. batched
v4), AddOffsetsToTxn, EndTxn, TxnOffsetCommit, WriteTxnMarkers, DescribeTransactions,
ListTransactions, DescribeProducers.

The transaction coordinator is `broker.txn` (kbroker.txn.runtime); per-partition producer
state is `broker.producers` (kbroker.log.producer_state). This module only translates
requests into coordinator operations and answers, including Kafka's per-version error
downgrade: PRODUCER_FENCED (KIP-588) is reported as INVALID_PRODUCER_EPOCH to clients that
predate it (InitProducerId < v4, AddPartitionsToTxn / AddOffsetsToTxn / EndTxn /
TxnOffsetCommit < v2).
"""

from __future__ import annotations

import logging
from typing import Any

from kbroker.dispatch import RequestContext, handler
from kbroker.errors import KafkaError
from protocol import ApiKey

logger = logging.getLogger(__name__)

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
ILLEGAL_GENERATION = 22
UNKNOWN_MEMBER_ID = 25
INVALID_PRODUCER_EPOCH = 47
OPERATION_NOT_ATTEMPTED = 55
PRODUCER_FENCED = 90
OFFSETS_TOPIC = "__consumer_offsets"


def _txn(ctx: RequestContext) -> tuple[Any, int]:
    """(runtime, NONE) or (None, the error a client retries on)."""
    runtime = getattr(ctx.broker, "txn", None)
    if runtime is None:
        return None, COORDINATOR_NOT_AVAILABLE
    if not runtime.loaded:
        return None, COORDINATOR_LOAD_IN_PROGRESS
    return runtime, NONE


def _downgrade(error: int, version: int, fenced_since: int) -> int:
    """PRODUCER_FENCED for clients that know it, INVALID_PRODUCER_EPOCH for older ones."""
    if error == PRODUCER_FENCED and version < fenced_since:
        return INVALID_PRODUCER_EPOCH
    return error


# ---------------------------------------------------------------------- InitProducerId

@handler(ApiKey.INIT_PRODUCER_ID, 0, 5)
async def handle_init_producer_id(ctx: RequestContext, request: dict) -> dict:
    """A producer id and epoch: fresh for idempotent producers, per transactional id otherwise."""
    def answer(error: int, pid: int = -1, epoch: int = -1) -> dict:
        return {"throttle_time_ms": 0, "error_code": _downgrade(error, ctx.api_version, 4),
                "producer_id": pid, "producer_epoch": epoch}

    runtime, error = _txn(ctx)
    if runtime is None:
        return answer(error)
    txn_id = request.get("transactional_id")
    try:
        if not txn_id:
            # Idempotent producer: a new id each time (KIP-360 bumps of a known id included,
            # as Kafka 3.x does for non-transactional producers).
            return answer(NONE, await runtime.new_producer_id(), 0)
        coordinator = runtime.coordinator
        error, pid, epoch = await runtime.execute(
            lambda now: coordinator.init_producer_id(
                txn_id, request["transaction_timeout_ms"], request.get("producer_id", -1),
                request.get("producer_epoch", -1), now_ms=now, new_producer_id=runtime.new_id_for_op))
    except KafkaError as exc:
        logger.warning("InitProducerId transactional_id=%s failed: %s", txn_id, exc)
        return answer(COORDINATOR_NOT_AVAILABLE)
    return answer(error, pid, epoch)


# ---------------------------------------------------------------------- AddPartitionsToTxn

async def _add_partitions(ctx: RequestContext, runtime: Any, txn_id: str, pid: int, epoch: int,
                          topics: list[dict], verify_only: bool) -> list[dict]:
    """Topic results for one transaction (AddPartitionsToTxnTopicResult list)."""
    image = ctx.broker.controller.image
    wanted: list[tuple[str, int]] = []
    errors: dict[tuple[str, int], int] = {}
    for topic in topics:
        info = image.topics_by_name.get(topic["name"])
        for p in topic["partitions"]:
            tp = (topic["name"], p)
            wanted.append(tp)
            if info is None or p not in info.partitions:
                errors[tp] = UNKNOWN_TOPIC_OR_PARTITION
    if verify_only:
        results = runtime.coordinator.verify_partitions(txn_id, pid, epoch, wanted)
    elif errors:
        # As Kafka: nothing is added when a partition is unknown; the others were not attempted.
        results = {tp: errors.get(tp, OPERATION_NOT_ATTEMPTED) for tp in wanted}
    else:
        coordinator = runtime.coordinator
        try:
            code = await runtime.execute(
                lambda now: coordinator.add_partitions(txn_id, pid, epoch, wanted, now_ms=now))
        except KafkaError as exc:
            logger.warning("AddPartitionsToTxn transactional_id=%s failed: %s", txn_id, exc)
            code = COORDINATOR_NOT_AVAILABLE
        results = {tp: code for tp in wanted}
    by_topic: dict[str, list[dict]] = {}
    for (name, p), code in results.items():
        by_topic.setdefault(name, []).append(
            {"partition_index": p,
             "partition_error_code": _downgrade(code, ctx.api_version, 2)})
    return [{"name": name, "results_by_partition": parts} for name, parts in by_topic.items()]


@handler(ApiKey.ADD_PARTITIONS_TO_TXN, 0, 5)
async def handle_add_partitions_to_txn(ctx: RequestContext, request: dict) -> dict:
    """v0-3: one transaction from a producer; v4+: a batch of transactions (brokers)."""
    runtime, error = _txn(ctx)
    if ctx.api_version >= 4:
        if runtime is None:
            return {"throttle_time_ms": 0, "error_code": error, "results_by_transaction": []}
        results = []
        for txn in request["transactions"]:
            topics = await _add_partitions(ctx, runtime, txn["transactional_id"], txn["producer_id"],
                                           txn["producer_epoch"], txn["topics"],
                                           txn.get("verify_only", False))
            results.append({"transactional_id": txn["transactional_id"], "topic_results": topics})
        return {"throttle_time_ms": 0, "error_code": NONE, "results_by_transaction": results}
    topics = request["v3_and_below_topics"]
    if runtime is None:
        return {"throttle_time_ms": 0, "results_by_topic_v3_and_below": [
            {"name": t["name"], "results_by_partition": [
                {"partition_index": p, "partition_error_code": error} for p in t["partitions"]]}
            for t in topics]}
    results = await _add_partitions(ctx, runtime, request["v3_and_below_transactional_id"],
                                    request["v3_and_below_producer_id"],
                                    request["v3_and_below_producer_epoch"], topics, False)
    return {"throttle_time_ms": 0, "results_by_topic_v3_and_below": results}


# ---------------------------------------------------------------------- AddOffsetsToTxn

@handler(ApiKey.ADD_OFFSETS_TO_TXN, 0, 4)
async def handle_add_offsets_to_txn(ctx: RequestContext, request: dict) -> dict:
    """Add the group's __consumer_offsets partition to the transaction."""
    runtime, error = _txn(ctx)
    if runtime is None:
        return {"throttle_time_ms": 0, "error_code": error}
    groups = getattr(ctx.broker, "groups", None)
    if groups is None:
        return {"throttle_time_ms": 0, "error_code": COORDINATOR_NOT_AVAILABLE}
    try:
        await groups.ensure_offsets_topic()
        partition = groups.partition_for(request["group_id"])
        coordinator = runtime.coordinator
        code = await runtime.execute(lambda now: coordinator.add_partitions(
            request["transactional_id"], request["producer_id"], request["producer_epoch"],
            [(OFFSETS_TOPIC, partition)], now_ms=now))
    except KafkaError as exc:
        logger.warning("AddOffsetsToTxn transactional_id=%s failed: %s", request["transactional_id"], exc)
        code = COORDINATOR_NOT_AVAILABLE
    return {"throttle_time_ms": 0, "error_code": _downgrade(code, ctx.api_version, 2)}


# ---------------------------------------------------------------------- EndTxn

@handler(ApiKey.END_TXN, 0, 4)
async def handle_end_txn(ctx: RequestContext, request: dict) -> dict:
    """Commit or abort: answered once every marker is written."""
    runtime, error = _txn(ctx)
    if runtime is None:
        return {"throttle_time_ms": 0, "error_code": error}
    coordinator = runtime.coordinator
    try:
        code = await runtime.execute(lambda now: coordinator.end_txn(
            request["transactional_id"], request["producer_id"], request["producer_epoch"],
            request["committed"], now_ms=now))
    except KafkaError as exc:
        logger.warning("EndTxn transactional_id=%s failed: %s", request["transactional_id"], exc)
        code = COORDINATOR_NOT_AVAILABLE
    return {"throttle_time_ms": 0, "error_code": _downgrade(code, ctx.api_version, 2)}


# ---------------------------------------------------------------------- TxnOffsetCommit

def _member_error(ctx: RequestContext, request: dict) -> int:
    """v3+: the generation/member check of a classic group (NONE when not applicable)."""
    generation = request.get("generation_id", -1)
    member_id = request.get("member_id") or ""
    groups = getattr(ctx.broker, "groups", None)
    if groups is None or generation < 0 or not member_id:
        return NONE

    def check(coordinator: Any) -> int:
        group = coordinator.groups.get(request["group_id"])
        if group is None or not group.members:
            return NONE
        if member_id not in group.members:
            return UNKNOWN_MEMBER_ID
        return ILLEGAL_GENERATION if generation != group.generation_id else NONE

    return groups.query(check)


@handler(ApiKey.TXN_OFFSET_COMMIT, 0, 4)
async def handle_txn_offset_commit(ctx: RequestContext, request: dict) -> dict:
    """Stage offsets in the transaction; they become visible when it commits."""
    from kbroker.txn.runtime import PendingOffset

    runtime, error = _txn(ctx)
    image = ctx.broker.controller.image
    if runtime is not None:
        error = runtime.coordinator.check_txn_offset_commit(
            request["transactional_id"], request["producer_id"], request["producer_epoch"])
        error = error or _member_error(ctx, request)
    error = _downgrade(error, ctx.api_version, 2)
    now_ms = ctx.broker.clock.now_ms()
    staged: dict[tuple[str, int], PendingOffset] = {}
    topics = []
    for topic in request["topics"]:
        info = image.topics_by_name.get(topic["name"])
        parts = []
        for p in topic["partitions"]:
            code = error
            if not code and (info is None or p["partition_index"] not in info.partitions):
                code = UNKNOWN_TOPIC_OR_PARTITION
            if not code:
                staged[(topic["name"], p["partition_index"])] = PendingOffset(
                    p["committed_offset"], p.get("committed_leader_epoch", -1),
                    p.get("committed_metadata"), now_ms)
            parts.append({"partition_index": p["partition_index"], "error_code": code})
        topics.append({"name": topic["name"], "partitions": parts})
    if staged and runtime is not None:
        try:
            # persisted first (a restart must find them), then staged in memory
            runtime.write_txn_offsets(request["producer_id"], request["producer_epoch"],
                                      request["group_id"], staged)
        except KafkaError as exc:
            logger.warning("TxnOffsetCommit group=%s not written: %s", request["group_id"], exc)
            for topic in topics:
                for part in topic["partitions"]:
                    if (topic["name"], part["partition_index"]) in staged:
                        part["error_code"] = COORDINATOR_NOT_AVAILABLE
            return {"throttle_time_ms": 0, "topics": topics}
        runtime.stage_offsets(request["producer_id"], request["group_id"], staged)
    return {"throttle_time_ms": 0, "topics": topics}


# ---------------------------------------------------------------------- WriteTxnMarkers

@handler(ApiKey.WRITE_TXN_MARKERS, 0, 1)
async def handle_write_txn_markers(ctx: RequestContext, request: dict) -> dict:
    """Inter-broker: write the given markers (our own coordinator writes them directly)."""
    runtime, error = _txn(ctx)
    markers = []
    for marker in request["markers"]:
        topics = []
        for topic in marker["topics"]:
            parts = []
            for p in topic["partition_indexes"]:
                code = error if runtime is None else runtime.write_marker(
                    topic["name"], p, marker["producer_id"], marker["producer_epoch"],
                    marker["transaction_result"], marker["coordinator_epoch"])
                parts.append({"partition_index": p, "error_code": code})
            topics.append({"name": topic["name"], "partitions": parts})
        markers.append({"producer_id": marker["producer_id"], "topics": topics})
    return {"markers": markers}


# ---------------------------------------------------------------------- admin

@handler(ApiKey.DESCRIBE_TRANSACTIONS, 0, 0)
async def handle_describe_transactions(ctx: RequestContext, request: dict) -> dict:
    """State, timeout, producer and partitions of each transactional id."""
    runtime, error = _txn(ctx)
    now_ms = ctx.broker.clock.now_ms()
    states = []
    for txn_id in request["transactional_ids"]:
        if runtime is None:
            states.append({"error_code": error, "transactional_id": txn_id, "transaction_state": "",
                           "transaction_timeout_ms": 0, "transaction_start_time_ms": -1,
                           "producer_id": -1, "producer_epoch": -1, "topics": []})
        else:
            states.append(runtime.query(lambda c, t=txn_id: c.describe(t, now_ms=now_ms)))
    return {"throttle_time_ms": 0, "transaction_states": states}


@handler(ApiKey.LIST_TRANSACTIONS, 0, 1)
async def handle_list_transactions(ctx: RequestContext, request: dict) -> dict:
    """Transactional ids, filtered by state, producer id and (v1) minimum running time."""
    runtime, error = _txn(ctx)
    if runtime is None:
        return {"throttle_time_ms": 0, "error_code": error, "unknown_state_filters": [],
                "transaction_states": []}
    now_ms = ctx.broker.clock.now_ms()
    duration = request.get("duration_filter", -1) if ctx.api_version >= 1 else -1
    states, unknown = runtime.query(lambda c: c.list(
        request.get("state_filters") or (), request.get("producer_id_filters") or (), duration,
        now_ms=now_ms))
    return {"throttle_time_ms": 0, "error_code": NONE, "unknown_state_filters": unknown,
            "transaction_states": states}


@handler(ApiKey.DESCRIBE_PRODUCERS, 0, 0)
async def handle_describe_producers(ctx: RequestContext, request: dict) -> dict:
    """Active producers of each partition (from its producer state)."""
    broker = ctx.broker
    producers = getattr(broker, "producers", None)
    image = broker.controller.image
    topics = []
    for topic in request["topics"]:
        info = image.topics_by_name.get(topic["name"])
        parts = []
        for p in topic["partition_indexes"]:
            log = broker.partition_log(info, p) if info is not None else None
            if log is None:
                parts.append({"partition_index": p, "error_code": UNKNOWN_TOPIC_OR_PARTITION,
                              "error_message": None, "active_producers": []})
                continue
            active = producers.for_log(log).active_producers() if producers is not None else []
            parts.append({"partition_index": p, "error_code": NONE, "error_message": None,
                          "active_producers": active})
        topics.append({"name": topic["name"], "partitions": parts})
    return {"throttle_time_ms": 0, "topics": topics}

"""Group coordinator APIs: FindCoordinator, the classic group protocol, offsets, group admin.

Every handler translates between the wire body (any version) and the GroupCoordinator's
operations, which run through the GroupCoordinatorRuntime (`broker.groups`): the runtime
persists their records and holds delayed JoinGroup/SyncGroup requests without blocking other
connections. This broker is the coordinator for every group (single node).
"""

from __future__ import annotations

import logging
from typing import Any

from kbroker.coordinator import coordinator as gc
from kbroker.coordinator.consumer_group import TopicInfo
from kbroker.coordinator.coordinator import CommitPartition, join_error, sync_error
from kbroker.dispatch import RequestContext, handler
from kbroker.errors import KafkaError
from protocol import ApiKey, ErrorCode

logger = logging.getLogger(__name__)

KEY_TYPE_GROUP = 0
KEY_TYPE_TRANSACTION = 1
# DescribeGroups authorized_operations without ACLs: READ(3), DELETE(6), DESCRIBE(8)
GROUP_AUTHORIZED_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)
AUTHORIZED_OPERATIONS_OMITTED = -(2**31)
_APPEND_TOO_LARGE = frozenset({ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.RECORD_LIST_TOO_LARGE,
                               ErrorCode.INVALID_FETCH_SIZE})


def _runtime(ctx: RequestContext) -> Any:
    runtime = getattr(ctx.broker, "groups", None)
    if runtime is None or not runtime.loaded:
        return None
    return runtime


def _client_host(ctx: RequestContext) -> str:
    # Kafka reports InetAddress.toString(): "/127.0.0.1"
    host = ctx.peer.rsplit(":", 1)[0] if ctx.peer else ""
    return "/" + host.strip("[]")


def _not_available_code(ctx: RequestContext) -> int:
    runtime = getattr(ctx.broker, "groups", None)
    if runtime is not None and not runtime.loaded:
        return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    return ErrorCode.COORDINATOR_NOT_AVAILABLE


def _append_error(exc: KafkaError) -> int:
    """Kafka's mapping of a failed __consumer_offsets append onto a coordinator error."""
    if exc.code in _APPEND_TOO_LARGE:
        return ErrorCode.INVALID_COMMIT_OFFSET_SIZE
    if exc.code == ErrorCode.NOT_LEADER_OR_FOLLOWER:
        return ErrorCode.NOT_COORDINATOR
    return ErrorCode.COORDINATOR_NOT_AVAILABLE


# ---------------------------------------------------------------------- FindCoordinator

@handler(ApiKey.FIND_COORDINATOR, 0, 6)
async def handle_find_coordinator(ctx: RequestContext, request: dict) -> dict:
    """FindCoordinator 0-6; v4+ answers a batch of keys."""
    key_type = request.get("key_type", KEY_TYPE_GROUP)
    keys = (request.get("coordinator_keys") or []) if ctx.api_version >= 4 else [request["key"]]
    results = [await _find_one(ctx, key, key_type) for key in keys]
    if ctx.api_version >= 4:
        return {"throttle_time_ms": 0, "coordinators": results}
    r = results[0]
    return {"throttle_time_ms": 0, "error_code": r["error_code"],
            "error_message": r["error_message"], "node_id": r["node_id"], "host": r["host"],
            "port": r["port"]}


async def _find_one(ctx: RequestContext, key: str, key_type: int) -> dict:
    def error(code: int, message: str) -> dict:
        return {"key": key, "node_id": -1, "host": "", "port": -1, "error_code": code,
                "error_message": message}

    if key_type not in (KEY_TYPE_GROUP, KEY_TYPE_TRANSACTION):
        return error(ErrorCode.INVALID_REQUEST, f"Unknown coordinator key type {key_type}.")
    if key_type == KEY_TYPE_TRANSACTION:
        # issue 7: the transaction coordinator (__transaction_state) is on this broker too
        runtime = getattr(ctx.broker, "txn", None)
        if runtime is None or not runtime.loaded:
            return error(ErrorCode.COORDINATOR_NOT_AVAILABLE, "The coordinator is not available.")
    else:
        runtime = _runtime(ctx)
        if runtime is None:
            return error(_not_available_code(ctx), "The coordinator is not available.")
    try:
        await (runtime.ensure_state_topic() if key_type == KEY_TYPE_TRANSACTION
               else runtime.ensure_offsets_topic())
    except KafkaError as exc:
        logger.warning("cannot create the coordinator's internal topic: %s", exc)
        return error(ErrorCode.COORDINATOR_NOT_AVAILABLE, "The coordinator is not available.")
    endpoints = getattr(ctx.broker, "advertised_endpoints", None) or []
    if not endpoints:
        return error(ErrorCode.COORDINATOR_NOT_AVAILABLE, "The coordinator is not available.")
    endpoint = endpoints[0]
    return {"key": key, "node_id": ctx.broker.node_id, "host": endpoint.host,
            "port": endpoint.port, "error_code": ErrorCode.NONE, "error_message": "NONE"}


# ---------------------------------------------------------------------- classic protocol

def _join_body(resp: dict, version: int) -> dict:
    body = dict(resp)
    body["throttle_time_ms"] = 0
    if version < 7 and body["protocol_name"] is None:
        body["protocol_name"] = ""        # not nullable before v7
    return body


@handler(ApiKey.JOIN_GROUP, 0, 9)
async def handle_join_group(ctx: RequestContext, request: dict) -> dict:
    """JoinGroup 0-9; waits (without blocking the broker) until the join phase ends."""
    runtime = _runtime(ctx)
    if runtime is None:
        return _join_body(join_error(_not_available_code(ctx), request.get("member_id", "")),
                          ctx.api_version)
    try:
        resp = await runtime.execute(lambda now_ms: runtime.coordinator.join_group(
            request, client_id=ctx.client_id or "", client_host=_client_host(ctx),
            api_version=ctx.api_version, now_ms=now_ms))
    except KafkaError as exc:
        resp = join_error(_append_error(exc), request.get("member_id", ""))
    return _join_body(resp, ctx.api_version)


@handler(ApiKey.SYNC_GROUP, 0, 5)
async def handle_sync_group(ctx: RequestContext, request: dict) -> dict:
    """SyncGroup 0-5; followers wait for the leader's assignment."""
    runtime = _runtime(ctx)
    if runtime is None:
        resp = sync_error(_not_available_code(ctx))
    else:
        try:
            resp = await runtime.execute(lambda now_ms: runtime.coordinator.sync_group(
                request, now_ms=now_ms))
        except KafkaError as exc:
            resp = sync_error(_append_error(exc))
    return {"throttle_time_ms": 0, **resp}


@handler(ApiKey.HEARTBEAT, 0, 4)
async def handle_heartbeat(ctx: RequestContext, request: dict) -> dict:
    """Heartbeat 0-4."""
    runtime = _runtime(ctx)
    if runtime is None:
        return {"throttle_time_ms": 0, "error_code": _not_available_code(ctx)}
    code = await runtime.execute(lambda now_ms: runtime.coordinator.heartbeat(
        request, now_ms=now_ms), wake_timers=False)
    return {"throttle_time_ms": 0, "error_code": code}


@handler(ApiKey.LEAVE_GROUP, 0, 5)
async def handle_leave_group(ctx: RequestContext, request: dict) -> dict:
    """LeaveGroup 0-5; v3+ removes a batch of members (by member id or instance id)."""
    if ctx.api_version >= 3:
        members = [(m.get("member_id") or "", m.get("group_instance_id"))
                   for m in request.get("members") or []]
    else:
        members = [(request.get("member_id") or "", None)]
    runtime = _runtime(ctx)
    if runtime is None:
        code = _not_available_code(ctx)
        top, errors = code, [code] * len(members)
    else:
        try:
            top, errors = await runtime.execute(lambda now_ms: runtime.coordinator.leave_group(
                request["group_id"], members, now_ms=now_ms))
        except KafkaError as exc:
            code = _append_error(exc)
            top, errors = code, [code] * len(members)
    if ctx.api_version < 3:
        # one member: its error is the answer
        return {"throttle_time_ms": 0, "error_code": top if top != gc.NONE else errors[0]}
    return {"throttle_time_ms": 0, "error_code": top, "members": [
        {"member_id": m, "group_instance_id": i, "error_code": e}
        for (m, i), e in zip(members, errors)]}


# ---------------------------------------------------------------------- offsets

def _partition_exists(ctx: RequestContext, topic: str, partition: int) -> bool:
    image = ctx.broker.controller.image.topics_by_name.get(topic)
    return image is not None and partition in image.partitions


@handler(ApiKey.OFFSET_COMMIT, 0, 9)
async def handle_offset_commit(ctx: RequestContext, request: dict) -> dict:
    """OffsetCommit 0-9 (classic groups and simple/admin commits)."""
    v = ctx.api_version
    wanted: list[tuple[str, int]] = []
    known: list[CommitPartition] = []
    errors: dict[tuple[str, int], int] = {}
    for t in request.get("topics") or []:
        for p in t.get("partitions") or []:
            tp = (t["name"], p["partition_index"])
            wanted.append(tp)
            if not _partition_exists(ctx, *tp):
                errors[tp] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                continue
            known.append(CommitPartition(
                topic=tp[0], partition=tp[1], offset=p["committed_offset"],
                leader_epoch=p.get("committed_leader_epoch", -1) if v >= 6 else -1,
                metadata=p.get("committed_metadata"),
                commit_timestamp_ms=p.get("commit_timestamp", -1) if v == 1 else -1))
    runtime = _runtime(ctx)
    if known:
        if runtime is None:
            errors.update({(p.topic, p.partition): _not_available_code(ctx) for p in known})
        else:
            retention_ms = request.get("retention_time_ms", -1) if 2 <= v <= 4 else -1
            try:
                result = await runtime.execute(lambda now_ms: runtime.coordinator.offset_commit(
                    request["group_id"],
                    generation_id=request.get("generation_id_or_member_epoch", -1),
                    member_id=request.get("member_id") or "",
                    group_instance_id=request.get("group_instance_id"),
                    retention_ms=retention_ms if retention_ms is not None else -1,
                    partitions=known, now_ms=now_ms), wake_timers=False)
                errors.update(result)
            except KafkaError as exc:
                code = _append_error(exc)
                errors.update({(p.topic, p.partition): code for p in known})
    topics: dict[str, list[dict]] = {}
    for tp in wanted:
        topics.setdefault(tp[0], []).append({"partition_index": tp[1], "error_code": errors[tp]})
    return {"throttle_time_ms": 0,
            "topics": [{"name": n, "partitions": ps} for n, ps in topics.items()]}


def _fetch_group(ctx: RequestContext, runtime: Any, group_id: str,
                 topics: list[dict] | None, member: tuple[str | None, int] = (None, -1),
                 require_stable: bool = False) -> tuple[int, list[dict]]:
    """(group error, response topics) for one group of an OffsetFetch."""
    wanted = None
    if topics is not None:
        wanted = [(t["name"], p) for t in topics for p in t.get("partition_indexes") or []]
    if runtime is not None:
        code = runtime.query(lambda c: c.check_fetch_member(group_id, *member))
        if code != ErrorCode.NONE:
            return code, []
    if runtime is None:
        code = _not_available_code(ctx)
        rows = [(t, p, None) for t, p in wanted or []]
    else:
        code = ErrorCode.NONE
        rows = runtime.query(lambda c: c.offset_fetch(group_id, wanted))
    # issue 7: with require_stable (v7+), offsets an open transaction staged are unstable
    txn = getattr(ctx.broker, "txn", None) if require_stable else None
    out: dict[str, list[dict]] = {}
    for t, p, o in rows:
        if txn is not None and code == ErrorCode.NONE and txn.has_pending_offset(group_id, t, p):
            out.setdefault(t, []).append({
                "partition_index": p, "committed_offset": -1, "committed_leader_epoch": -1,
                "metadata": "", "error_code": ErrorCode.UNSTABLE_OFFSET_COMMIT})
            continue
        out.setdefault(t, []).append({
            "partition_index": p,
            "committed_offset": o.offset if o is not None else -1,
            "committed_leader_epoch": o.leader_epoch if o is not None else -1,
            "metadata": o.metadata if o is not None else "",
            "error_code": code,
        })
    return code, [{"name": n, "partitions": ps} for n, ps in out.items()]


@handler(ApiKey.OFFSET_FETCH, 0, 9)
async def handle_offset_fetch(ctx: RequestContext, request: dict) -> dict:
    """OffsetFetch 0-9; v8+ fetches several groups at once; null topics = all partitions."""
    runtime = _runtime(ctx)
    if ctx.api_version >= 8:
        groups = []
        for g in request.get("groups") or []:
            member = (g.get("member_id"), g.get("member_epoch", -1)) if ctx.api_version >= 9 \
                else (None, -1)
            code, topics = _fetch_group(ctx, runtime, g["group_id"], g.get("topics"), member,
                                        request.get("require_stable", False))
            groups.append({"group_id": g["group_id"], "topics": topics, "error_code": code})
        return {"throttle_time_ms": 0, "groups": groups}
    code, topics = _fetch_group(ctx, runtime, request["group_id"], request.get("topics"),
                                require_stable=ctx.api_version >= 7 and request.get("require_stable", False))
    return {"throttle_time_ms": 0, "topics": topics, "error_code": code}


@handler(ApiKey.OFFSET_DELETE, 0, 0)
async def handle_offset_delete(ctx: RequestContext, request: dict) -> dict:
    """OffsetDelete 0: remove committed offsets of partitions the group does not consume."""
    runtime = _runtime(ctx)
    if runtime is None:
        return {"error_code": _not_available_code(ctx), "throttle_time_ms": 0, "topics": []}
    wanted = [(t["name"], p["partition_index"]) for t in request.get("topics") or []
              for p in t.get("partitions") or []]
    known = [tp for tp in wanted if _partition_exists(ctx, *tp)]
    try:
        top, errors = await runtime.execute(lambda now_ms: runtime.coordinator.offset_delete(
            request["group_id"], known, now_ms=now_ms))
    except KafkaError as exc:
        return {"error_code": _append_error(exc), "throttle_time_ms": 0, "topics": []}
    if top != gc.NONE:
        return {"error_code": top, "throttle_time_ms": 0, "topics": []}
    topics: dict[str, list[dict]] = {}
    for tp in wanted:
        code = errors.get(tp, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        topics.setdefault(tp[0], []).append({"partition_index": tp[1], "error_code": code})
    return {"error_code": ErrorCode.NONE, "throttle_time_ms": 0,
            "topics": [{"name": n, "partitions": ps} for n, ps in topics.items()]}


# ---------------------------------------------------------------------- group admin

@handler(ApiKey.DESCRIBE_GROUPS, 0, 5)
async def handle_describe_groups(ctx: RequestContext, request: dict) -> dict:
    """DescribeGroups 0-5 (an unknown group is reported as Dead, as Kafka does)."""
    runtime = _runtime(ctx)
    ops = (GROUP_AUTHORIZED_OPERATIONS if request.get("include_authorized_operations")
           else AUTHORIZED_OPERATIONS_OMITTED)
    groups = []
    for group_id in request.get("groups") or []:
        if runtime is None:
            d = {"error_code": _not_available_code(ctx), "group_id": group_id, "group_state": "",
                 "protocol_type": "", "protocol_data": "", "members": []}
        else:
            d = runtime.query(lambda c: c.describe_group(group_id))
        d["authorized_operations"] = ops
        groups.append(d)
    return {"throttle_time_ms": 0, "groups": groups}


@handler(ApiKey.LIST_GROUPS, 0, 5)
async def handle_list_groups(ctx: RequestContext, request: dict) -> dict:
    """ListGroups 0-5 with the states (v4+) and types (v5+) filters."""
    runtime = _runtime(ctx)
    if runtime is None:
        return {"throttle_time_ms": 0, "error_code": _not_available_code(ctx), "groups": []}
    states = (request.get("states_filter") or []) if ctx.api_version >= 4 else []
    types = (request.get("types_filter") or []) if ctx.api_version >= 5 else []
    groups = runtime.query(lambda c: c.list_groups(states, types))
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "groups": groups}


@handler(ApiKey.DELETE_GROUPS, 0, 2)
async def handle_delete_groups(ctx: RequestContext, request: dict) -> dict:
    """DeleteGroups 0-2: only Empty groups can go (NON_EMPTY_GROUP otherwise)."""
    names = list(request.get("groups_names") or [])
    runtime = _runtime(ctx)
    if runtime is None:
        errors = {n: _not_available_code(ctx) for n in names}
    else:
        try:
            errors = await runtime.execute(lambda now_ms: runtime.coordinator.delete_groups(
                names, now_ms=now_ms))
        except KafkaError as exc:
            errors = {n: _append_error(exc) for n in names}
    return {"throttle_time_ms": 0,
            "results": [{"group_id": n, "error_code": errors[n]} for n in names]}


# ---------------------------------------------------------------------- KIP-848

@handler(ApiKey.CONSUMER_GROUP_HEARTBEAT, 0, 1)
async def handle_consumer_group_heartbeat(ctx: RequestContext, request: dict) -> dict:
    """ConsumerGroupHeartbeat 0-1: join, heartbeat, reconcile, leave (server-side assignors).

    v1 (Kafka 4.0): the consumer picks its member id (KIP-1082) and may subscribe by regex.
    """
    protocols = getattr(ctx.broker.config, "group_coordinator_rebalance_protocols",
                        ["classic", "consumer"]) if hasattr(ctx.broker, "config") else ["consumer"]
    if "consumer" not in protocols:
        # group.coordinator.rebalance.protocols without "consumer": Kafka refuses the API
        return {"throttle_time_ms": 0, "error_code": ErrorCode.UNSUPPORTED_VERSION,
                "error_message": "The new consumer group protocol is not enabled.",
                "member_id": None, "member_epoch": 0, "heartbeat_interval_ms": 0,
                "assignment": None}
    runtime = _runtime(ctx)
    if runtime is None:
        return {"throttle_time_ms": 0, "error_code": _not_available_code(ctx),
                "error_message": None, "member_id": None, "member_epoch": 0,
                "heartbeat_interval_ms": 0, "assignment": None}
    image = ctx.broker.controller.image

    def topic_info(name: str) -> TopicInfo | None:
        topic = image.topics_by_name.get(name)
        if topic is None:
            return None
        return TopicInfo(name, topic.topic_id, len(topic.partitions))

    try:
        resp = await runtime.execute(lambda now_ms: runtime.coordinator.consumer_group_heartbeat(
            request, client_id=ctx.client_id or "", client_host=_client_host(ctx),
            topic_info=topic_info, now_ms=now_ms, api_version=ctx.api_version,
            topic_names=lambda: image.topics_by_name))
    except KafkaError as exc:
        resp = {"error_code": _append_error(exc), "error_message": None, "member_id": None,
                "member_epoch": 0, "heartbeat_interval_ms": 0, "assignment": None}
    return {"throttle_time_ms": 0, **resp}


@handler(ApiKey.CONSUMER_GROUP_DESCRIBE, 0, 1)
async def handle_consumer_group_describe(ctx: RequestContext, request: dict) -> dict:
    """ConsumerGroupDescribe 0-1 (v1 adds each member's type: 1 = consumer)."""
    runtime = _runtime(ctx)
    ops = (GROUP_AUTHORIZED_OPERATIONS if request.get("include_authorized_operations")
           else AUTHORIZED_OPERATIONS_OMITTED)
    by_id = ctx.broker.controller.image.topics_by_id

    def topic_name(topic_id: Any) -> str | None:
        topic = by_id.get(topic_id)
        return topic.name if topic is not None else None

    groups = []
    for group_id in request.get("group_ids") or []:
        if runtime is None:
            d = {"error_code": _not_available_code(ctx), "error_message": None,
                 "group_id": group_id, "group_state": "", "group_epoch": -1,
                 "assignment_epoch": -1, "assignor_name": "", "members": []}
        else:
            d = runtime.query(lambda c: c.consumer_group_describe(group_id, topic_name))
        d["authorized_operations"] = ops
        groups.append(d)
    return {"throttle_time_ms": 0, "groups": groups}

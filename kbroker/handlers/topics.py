"""CreateTopics (v0-7), DeleteTopics (v0-6) and CreatePartitions (v0-3): through the controller."""

from __future__ import annotations

import logging
import uuid
from collections import Counter

from kbroker.dispatch import RequestContext, handler
from kbroker.errors import KafkaError
from kbroker.metadata.config_view import describe_topic
from kbroker.metadata.image import TopicImage
from protocol import ApiKey, ErrorCode

logger = logging.getLogger(__name__)

ZERO_UUID = uuid.UUID(int=0)


def _creation_result(ctx: RequestContext, topic: TopicImage, version: int) -> dict:
    result: dict = {"name": topic.name, "topic_id": topic.topic_id, "error_code": ErrorCode.NONE,
                    "error_message": None}
    if version >= 5:  # KIP-525: the created topic's partitions, replication factor and configs
        first = topic.partitions.get(0)
        result["num_partitions"] = len(topic.partitions)
        result["replication_factor"] = len(first.replicas) if first else -1
        broker = ctx.broker
        result["configs"] = [
            {"name": e.name, "value": e.value, "read_only": e.read_only, "config_source": int(e.source),
             "is_sensitive": e.is_sensitive}
            for e in describe_topic(topic, broker.controller.image, broker.config, broker.config.node_id)]
    return result


def _failure(name: str | None, code: int, message: str | None) -> dict:
    return {"name": name, "topic_id": ZERO_UUID, "error_code": code, "error_message": message,
            "num_partitions": -1, "replication_factor": -1, "configs": []}


@handler(ApiKey.CREATE_TOPICS, 0, 7)
async def handle_create_topics(ctx: RequestContext, request: dict) -> dict:
    """Create each topic; per-topic errors as Kafka reports them."""
    version = ctx.api_version
    validate_only = bool(request.get("validate_only", False))
    controller = ctx.broker.controller
    topics = request.get("topics") or []
    counts = Counter(t["name"] for t in topics)
    results: list[dict] = []
    reported: set[str] = set()
    for t in topics:
        name = t["name"]
        if counts[name] > 1:
            if name not in reported:  # one result per duplicated name
                reported.add(name)
                results.append(_failure(name, ErrorCode.INVALID_REQUEST,
                                        f"Create topics request from client `{ctx.client_id}` contains "
                                        f"multiple entries for the following topics: {name}"))
            continue
        configs: dict[str, str | None] = {}
        duplicate_config = None
        for c in t.get("configs") or []:
            if c["name"] in configs:
                duplicate_config = c["name"]
            configs[c["name"]] = c["value"]
        assignments = {a["partition_index"]: list(a["broker_ids"]) for a in t.get("assignments") or []}
        try:
            if duplicate_config is not None:
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"Duplicate config {duplicate_config}")
            if len(assignments) != len(t.get("assignments") or []):
                raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, "Duplicate partition index in assignments")
            topic = await controller.create_topic(name, t["num_partitions"], t["replication_factor"],
                                                  assignments or None, configs, validate_only=validate_only)
        except KafkaError as exc:
            results.append(_failure(name, exc.code, exc.message))
            continue
        results.append(_creation_result(ctx, topic, version))
    return {"throttle_time_ms": 0, "topics": results}


@handler(ApiKey.DELETE_TOPICS, 0, 6)
async def handle_delete_topics(ctx: RequestContext, request: dict) -> dict:
    """Delete topics by name (all versions) or by topic id (v6+)."""
    version = ctx.api_version
    if version >= 6:
        wanted = [(t.get("name"), t.get("topic_id") or ZERO_UUID) for t in request.get("topics") or []]
    else:
        wanted = [(name, ZERO_UUID) for name in request.get("topic_names") or []]
    controller = ctx.broker.controller
    keys = Counter(name if name is not None else topic_id for name, topic_id in wanted)
    responses: list[dict] = []
    reported: set = set()
    for name, topic_id in wanted:
        key = name if name is not None else topic_id
        if key in reported:  # a duplicate gets one result, as in Kafka
            continue
        reported.add(key)
        result = {"name": name, "topic_id": topic_id, "error_code": ErrorCode.NONE, "error_message": None}
        responses.append(result)
        if keys[key] > 1:
            result["error_code"] = ErrorCode.INVALID_REQUEST
            result["error_message"] = "Duplicate topic name." if name is not None else "Duplicate topic id."
            continue
        if name is not None and topic_id != ZERO_UUID:
            result["error_code"] = ErrorCode.INVALID_REQUEST
            result["error_message"] = "Only one of topic name or topic id may be given."
            continue
        if name is None and topic_id == ZERO_UUID:
            result["error_code"] = ErrorCode.INVALID_REQUEST
            result["error_message"] = "Neither topic name nor topic id was given."
            continue
        try:
            deleted = await controller.delete_topic(name if name is not None else topic_id)
        except KafkaError as exc:
            result["error_code"] = exc.code
            result["error_message"] = exc.message
            continue
        result["name"] = deleted.name
        result["topic_id"] = deleted.topic_id
    return {"throttle_time_ms": 0, "responses": responses}


@handler(ApiKey.CREATE_PARTITIONS, 0, 3)
async def handle_create_partitions(ctx: RequestContext, request: dict) -> dict:
    """Grow each topic to its new partition count."""
    validate_only = bool(request.get("validate_only", False))
    controller = ctx.broker.controller
    topics = request.get("topics") or []
    counts = Counter(t["name"] for t in topics)
    results: list[dict] = []
    reported: set[str] = set()
    for t in topics:
        name = t["name"]
        if name in reported:
            continue
        reported.add(name)
        result = {"name": name, "error_code": ErrorCode.NONE, "error_message": None}
        results.append(result)
        if counts[name] > 1:
            result["error_code"] = ErrorCode.INVALID_REQUEST
            result["error_message"] = "Duplicate topic in request."
            continue
        assignments = t.get("assignments")
        try:
            await controller.create_partitions(
                name, t["count"], [list(a["broker_ids"]) for a in assignments] if assignments is not None else None,
                validate_only=validate_only)
        except KafkaError as exc:
            result["error_code"] = exc.code
            result["error_message"] = exc.message
    return {"throttle_time_ms": 0, "results": results}

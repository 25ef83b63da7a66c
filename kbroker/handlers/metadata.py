"""Metadata (v0-12) and DescribeCluster (v0-1): answered from the metadata image."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from kbroker.dispatch import RequestContext, handler
from kbroker.errors import KafkaError
from kbroker.metadata.auto_create import ensure_topic
from kbroker.metadata.image import MetadataImage, TopicImage
from kbroker.metadata.topic_names import is_internal, validate_topic_name
from protocol import ApiKey, ErrorCode

logger = logging.getLogger(__name__)

ZERO_UUID = uuid.UUID(int=0)
AUTHORIZED_OPERATIONS_OMITTED = -2147483648  # Integer.MIN_VALUE: not requested

# Kafka's AclOperation codes; without an authorizer every supported operation is allowed.
_TOPIC_OPERATIONS = (3, 4, 5, 6, 7, 8, 10, 12)  # READ WRITE CREATE DELETE ALTER DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS
# CREATE ALTER DESCRIBE CLUSTER_ACTION DESCRIBE_CONFIGS IDEMPOTENT_WRITE ALTER_CONFIGS
_CLUSTER_OPERATIONS = (5, 7, 8, 9, 10, 11, 12)
TOPIC_AUTHORIZED_OPERATIONS = sum(1 << op for op in _TOPIC_OPERATIONS)
CLUSTER_AUTHORIZED_OPERATIONS = sum(1 << op for op in _CLUSTER_OPERATIONS)

ENDPOINT_TYPE_BROKER = 1
ENDPOINT_TYPE_CONTROLLER = 2


def brokers_of(ctx: RequestContext, image: MetadataImage) -> list[dict]:
    """Registered, unfenced brokers as (node_id, host, port, rack).

    Before this node's registration is committed (a short window at start-up) the broker's
    own advertised endpoint stands in, so clients are never told about zero brokers.
    """
    broker = ctx.broker
    node_id = broker.config.node_id
    brokers = [{"node_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack}
               for b in image.live_brokers() if b.node_id != node_id]
    advertised = getattr(broker, "advertised_endpoints", None)
    own = image.brokers.get(node_id)
    if advertised:  # this node's live endpoint is the truth (the image may still hold last run's port)
        brokers.append({"node_id": node_id, "host": advertised[0].host, "port": advertised[0].port,
                        "rack": broker.config.broker_rack})
    elif own is not None and not own.fenced:
        brokers.append({"node_id": node_id, "host": own.host, "port": own.port, "rack": own.rack})
    brokers.sort(key=lambda b: b["node_id"])
    return brokers


def _topic_entry(topic: TopicImage, live: set[int], version: int, include_ops: bool) -> dict:
    partitions = []
    for index, p in sorted(topic.partitions.items()):
        leader_ok = p.leader >= 0 and p.leader in live
        partitions.append({
            "error_code": ErrorCode.NONE if leader_ok else ErrorCode.LEADER_NOT_AVAILABLE,
            "partition_index": index,
            "leader_id": p.leader if leader_ok else -1,
            "leader_epoch": p.leader_epoch,
            "replica_nodes": list(p.replicas),
            "isr_nodes": [r for r in p.isr if r in live],
            "offline_replicas": [r for r in p.replicas if r not in live],
        })
    return {"error_code": ErrorCode.NONE, "name": topic.name, "topic_id": topic.topic_id,
            "is_internal": is_internal(topic.name), "partitions": partitions,
            "topic_authorized_operations": TOPIC_AUTHORIZED_OPERATIONS if include_ops
            else AUTHORIZED_OPERATIONS_OMITTED}


def _error_entry(code: int, name: str | None, topic_id: uuid.UUID = ZERO_UUID) -> dict:
    return {"error_code": code, "name": name, "topic_id": topic_id, "is_internal": False, "partitions": [],
            "topic_authorized_operations": AUTHORIZED_OPERATIONS_OMITTED}


@handler(ApiKey.METADATA, 0, 12)
async def handle_metadata(ctx: RequestContext, request: dict) -> dict:
    """Brokers, cluster id, controller and the requested (or all) topics."""
    version = ctx.api_version
    broker = ctx.broker
    requested = request.get("topics")
    all_topics = requested is None or (version == 0 and not requested)
    allow_auto = request.get("allow_auto_topic_creation", True) if version >= 4 else True
    include_ops = bool(request.get("include_topic_authorized_operations", False))

    topics: list[dict] = []
    if all_topics:
        image = broker.controller.image
        live = {b["node_id"] for b in brokers_of(ctx, image)}
        topics = [_topic_entry(t, live, version, include_ops) for _, t in sorted(image.topics_by_name.items())]
    else:
        seen: set[Any] = set()
        for entry in requested:
            name = entry.get("name")
            topic_id = entry.get("topic_id") or ZERO_UUID
            key = name if name is not None else topic_id
            if key in seen:  # Kafka answers each distinct topic once
                continue
            seen.add(key)
            topics.append(await _lookup(ctx, name, topic_id, allow_auto, version, include_ops))
        image = broker.controller.image

    response: dict = {
        "throttle_time_ms": 0,
        "brokers": brokers_of(ctx, image),
        "cluster_id": image.cluster_id,
        "controller_id": image.controller_id,
        "topics": topics,
    }
    if 8 <= version <= 10:
        response["cluster_authorized_operations"] = (
            CLUSTER_AUTHORIZED_OPERATIONS if request.get("include_cluster_authorized_operations")
            else AUTHORIZED_OPERATIONS_OMITTED)
    return response


async def _lookup(ctx: RequestContext, name: str | None, topic_id: uuid.UUID, allow_auto: bool,
                  version: int, include_ops: bool) -> dict:
    broker = ctx.broker
    image = broker.controller.image
    if topic_id != ZERO_UUID and name is None:
        topic = image.topics_by_id.get(topic_id)
        if topic is None:
            return _error_entry(ErrorCode.UNKNOWN_TOPIC_ID, None, topic_id)
    elif name is None:
        return _error_entry(ErrorCode.INVALID_REQUEST, None)
    else:
        topic = image.topics_by_name.get(name)
        if topic is None:
            if not (allow_auto and broker.config.auto_create_topics_enable):
                try:  # as Kafka: an illegal name is reported as such, not as unknown
                    validate_topic_name(name)
                except KafkaError as exc:
                    return _error_entry(exc.code, name)
                return _error_entry(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name)
            try:
                topic = await ensure_topic(broker, name)
            except KafkaError as exc:
                return _error_entry(exc.code, name)
            if topic is None:
                return _error_entry(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name)
            image = broker.controller.image
    live = {b["node_id"] for b in brokers_of(ctx, image)}
    return _topic_entry(topic, live, version, include_ops)


@handler(ApiKey.DESCRIBE_CLUSTER, 0, 1)
async def handle_describe_cluster(ctx: RequestContext, request: dict) -> dict:
    """Cluster id, controller and brokers (KIP-700); only the broker endpoint type is served."""
    image = ctx.broker.controller.image
    endpoint_type = request.get("endpoint_type", ENDPOINT_TYPE_BROKER)
    response: dict = {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "error_message": None,
                      "endpoint_type": endpoint_type, "cluster_id": image.cluster_id,
                      "controller_id": image.controller_id, "brokers": [],
                      "cluster_authorized_operations": CLUSTER_AUTHORIZED_OPERATIONS
                      if request.get("include_cluster_authorized_operations") else AUTHORIZED_OPERATIONS_OMITTED}
    if endpoint_type != ENDPOINT_TYPE_BROKER:
        known = endpoint_type == ENDPOINT_TYPE_CONTROLLER
        response["error_code"] = ErrorCode.MISMATCHED_ENDPOINT_TYPE if known else ErrorCode.UNSUPPORTED_ENDPOINT_TYPE
        response["error_message"] = ("The request was sent to an endpoint of type BROKER, but we wanted an "
                                     "endpoint of type CONTROLLER" if known
                                     else f"Unsupported endpoint type {endpoint_type}")
        return response
    response["brokers"] = [{"broker_id": b["node_id"], "host": b["host"], "port": b["port"], "rack": b["rack"]}
                           for b in brokers_of(ctx, image)]
    return response

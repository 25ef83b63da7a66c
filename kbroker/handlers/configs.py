"""DescribeConfigs (v0-4), AlterConfigs (v0-2) and IncrementalAlterConfigs (v0-1) for topics
and the broker.

Changes go through `Controller.alter_configs` (ConfigRecords in the metadata log); the broker's
metadata listener pushes changed topic configs to the open partition logs. Dynamic broker
configs are recorded and described, but the running broker reads its static configuration.
"""

from __future__ import annotations

import logging

from kbroker.dispatch import RequestContext, handler
from kbroker.errors import KafkaError
from kbroker.metadata.config_view import ConfigEntry, describe_broker, describe_topic, render
from kbroker.metadata.image import RESOURCE_BROKER, RESOURCE_TOPIC
from protocol import ApiKey, ErrorCode

logger = logging.getLogger(__name__)

RESOURCE_BROKER_LOGGER = 8

# IncrementalAlterConfigs operations (Kafka's AlterConfigOp.OpType)
OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3


def _entry(e: ConfigEntry, version: int, include_synonyms: bool, include_docs: bool) -> dict:
    out: dict = {"name": e.name, "value": e.value, "read_only": e.read_only, "is_sensitive": e.is_sensitive}
    if version == 0:
        out["is_default"] = e.is_default
    else:
        out["config_source"] = int(e.source)
        out["synonyms"] = ([{"name": s.name, "value": s.value, "source": int(s.source)} for s in e.synonyms]
                           if include_synonyms else [])
    if version >= 3:
        out["config_type"] = int(e.config_type)
        out["documentation"] = e.documentation if include_docs else None
    return out


@handler(ApiKey.DESCRIBE_CONFIGS, 0, 4)
async def handle_describe_configs(ctx: RequestContext, request: dict) -> dict:
    """Describe each requested resource; per-resource errors."""
    version = ctx.api_version
    include_synonyms = bool(request.get("include_synonyms", False)) and version >= 1
    include_docs = bool(request.get("include_documentation", False))
    broker = ctx.broker
    image = broker.controller.image
    node_id = broker.config.node_id
    results: list[dict] = []
    for resource in request.get("resources") or []:
        rtype = resource["resource_type"]
        rname = resource["resource_name"]
        keys = resource.get("configuration_keys")
        result = {"error_code": ErrorCode.NONE, "error_message": None, "resource_type": rtype,
                  "resource_name": rname, "configs": []}
        results.append(result)
        if rtype == RESOURCE_TOPIC:
            topic = image.topics_by_name.get(rname)
            if topic is None:
                result["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                result["error_message"] = f"Topic {rname} does not exist." if rname else "Topic name is empty."
                continue
            entries = describe_topic(topic, image, broker.config, node_id, keys)
        elif rtype == RESOURCE_BROKER:
            if rname not in ("", str(node_id)):
                result["error_code"] = ErrorCode.INVALID_REQUEST
                result["error_message"] = (f"Unexpected broker id, expected {node_id} or empty string, "
                                           f"but received {rname}")
                continue
            entries = describe_broker(image, broker.config, node_id, rname, keys)
        elif rtype == RESOURCE_BROKER_LOGGER:
            entries = []  # kbroker does not expose its loggers; an empty list, as for an unknown logger
        else:
            result["error_code"] = ErrorCode.INVALID_REQUEST
            result["error_message"] = f"Unsupported resource type {rtype}"
            continue
        result["configs"] = [_entry(e, version, include_synonyms, include_docs) for e in entries]
    return {"throttle_time_ms": 0, "results": results}


def _check_resource(ctx: RequestContext, rtype: int, rname: str) -> None:
    node_id = ctx.broker.config.node_id
    if rtype == RESOURCE_BROKER and rname not in ("", str(node_id)):
        raise KafkaError(ErrorCode.INVALID_REQUEST,
                         f"Unexpected broker id, expected {node_id} or empty string, but received {rname}")
    if rtype not in (RESOURCE_TOPIC, RESOURCE_BROKER):
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unsupported resource type {rtype} for altering configs")


def _duplicates(names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Error due to duplicate config keys: {name}")
        seen.add(name)


@handler(ApiKey.ALTER_CONFIGS, 0, 2)
async def handle_alter_configs(ctx: RequestContext, request: dict) -> dict:
    """Legacy AlterConfigs: the given configs replace all overrides of the resource."""
    validate_only = bool(request.get("validate_only", False))
    responses: list[dict] = []
    for resource in request.get("resources") or []:
        rtype, rname = resource["resource_type"], resource["resource_name"]
        result = {"error_code": ErrorCode.NONE, "error_message": None, "resource_type": rtype, "resource_name": rname}
        responses.append(result)
        configs = resource.get("configs") or []
        try:
            _check_resource(ctx, rtype, rname)
            _duplicates([c["name"] for c in configs])
            await ctx.broker.controller.alter_configs(rtype, rname, {c["name"]: c["value"] for c in configs},
                                                      replace_all=True, validate_only=validate_only)
        except KafkaError as exc:
            result["error_code"], result["error_message"] = exc.code, exc.message
    return {"throttle_time_ms": 0, "responses": responses}


@handler(ApiKey.INCREMENTAL_ALTER_CONFIGS, 0, 1)
async def handle_incremental_alter_configs(ctx: RequestContext, request: dict) -> dict:
    """KIP-339: SET, DELETE, APPEND and SUBTRACT (the last two for list configs) per key."""
    validate_only = bool(request.get("validate_only", False))
    responses: list[dict] = []
    for resource in request.get("resources") or []:
        rtype, rname = resource["resource_type"], resource["resource_name"]
        result = {"error_code": ErrorCode.NONE, "error_message": None, "resource_type": rtype, "resource_name": rname}
        responses.append(result)
        ops = resource.get("configs") or []
        try:
            _check_resource(ctx, rtype, rname)
            _duplicates([c["name"] for c in ops])
            changes = {c["name"]: _apply_op(ctx, rtype, rname, c) for c in ops}
            await ctx.broker.controller.alter_configs(rtype, rname, changes, validate_only=validate_only)
        except KafkaError as exc:
            result["error_code"], result["error_message"] = exc.code, exc.message
    return {"throttle_time_ms": 0, "responses": responses}


def _apply_op(ctx: RequestContext, rtype: int, rname: str, op: dict) -> str | None:
    """The new override value (None: delete) that one operation asks for."""
    name, kind, value = op["name"], op["config_operation"], op["value"]
    if kind == OP_SET:
        if value is None:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Null value not supported for: {name}")
        return value
    if kind == OP_DELETE:
        return None
    if kind not in (OP_APPEND, OP_SUBTRACT):
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unknown config operation {kind} for {name}")
    verb = "append" if kind == OP_APPEND else "subtract"
    type_, current = _list_state(ctx, rtype, rname, name)
    if type_ != "list":
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Config value {verb} is not allowed for config key: {name}")
    items = [v for v in (current or "").split(",") if v]
    given = [v.strip() for v in (value or "").split(",") if v.strip()]
    if kind == OP_APPEND:
        items += [v for v in given if v not in items]
    else:
        items = [v for v in items if v not in given]
    return ",".join(items)


def _list_state(ctx: RequestContext, rtype: int, rname: str, name: str) -> tuple[str | None, str | None]:
    """(type of config `name`, its current value: override, else default) for APPEND/SUBTRACT."""
    image = ctx.broker.controller.image
    if rtype == RESOURCE_TOPIC:
        from kbroker.log.log_config import TOPIC_CONFIGS

        definition = TOPIC_CONFIGS.get(name)
        if definition is None:
            raise KafkaError(ErrorCode.INVALID_CONFIG, f"Unknown topic config name: {name}")
        topic = image.topics_by_name.get(rname)
        if topic is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic {rname} does not exist.")
        return definition.type, topic.configs.get(name, render(definition.default))
    from kbroker.config import DEFS_BY_NAME

    definition = DEFS_BY_NAME.get(name)
    if definition is None:
        raise KafkaError(ErrorCode.INVALID_CONFIG, f"Unknown broker config name: {name}")
    overrides = image.broker_configs if rname == "" else image.per_broker_configs.get(int(rname), {})
    static = render(getattr(ctx.broker.config, definition.attribute, definition.default))
    return definition.type, overrides.get(name, static)

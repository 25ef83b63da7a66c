"""DescribeConfigs (v0-4) for topics and the broker, with sources, synonyms and types.

AlterConfigs / IncrementalAlterConfigs (issue 6) map onto `Controller.alter_configs`, which
already writes ConfigRecords; their handlers belong here too.
"""

from __future__ import annotations

import logging

from kbroker.dispatch import RequestContext, handler
from kbroker.metadata.config_view import ConfigEntry, describe_broker, describe_topic
from kbroker.metadata.image import RESOURCE_BROKER, RESOURCE_TOPIC
from protocol import ApiKey, ErrorCode

logger = logging.getLogger(__name__)

RESOURCE_BROKER_LOGGER = 8


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

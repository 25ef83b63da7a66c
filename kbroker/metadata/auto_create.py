"""Auto-creation of topics named by Metadata and Produce requests (auto.create.topics.enable)."""

from __future__ import annotations

import logging
from typing import Any

from kbroker.errors import KafkaError
from kbroker.metadata.codes import ErrorCode
from kbroker.metadata.image import TopicImage
from kbroker.metadata.topic_names import is_internal, validate_topic_name

logger = logging.getLogger(__name__)


async def ensure_topic(broker: Any, name: str) -> TopicImage | None:
    """The topic `name`, created with the broker defaults if needed and allowed.

    Returns None when the topic does not exist and auto-creation is off, or for the internal
    topics (their coordinators create them with their own settings). Raises
    KafkaError(INVALID_TOPIC_EXCEPTION) for an illegal name and propagates other creation
    failures (e.g. INVALID_REPLICATION_FACTOR when default.replication.factor is too high).
    """
    controller = broker.controller
    topic = controller.image.topics_by_name.get(name)
    if topic is not None:
        return topic
    if not broker.config.auto_create_topics_enable or is_internal(name):
        return None
    validate_topic_name(name)
    try:
        topic = await controller.create_topic(name, -1, -1, None, {})
    except KafkaError as exc:
        if exc.code != ErrorCode.TOPIC_ALREADY_EXISTS:  # a concurrent request won the race
            raise
        return controller.image.topics_by_name.get(name)
    logger.info("topic auto-created name=%s", name)
    return topic

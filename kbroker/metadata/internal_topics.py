"""Internal topics (__consumer_offsets, __transaction_state): created on first use, as Kafka does."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Mapping

from protocol import ErrorCode

from kbroker.errors import KafkaError

if TYPE_CHECKING:
    from kbroker.metadata.controller import Controller

logger = logging.getLogger(__name__)


def internal_partition_for(controller: "Controller", topic: str, key: str, default_count: int,
                           partition_for: Callable[[str, int], int]) -> int:
    """The partition of `topic` holding `key`: by the topic's real count once it exists."""
    image_topic = controller.image.topics_by_name.get(topic)
    count = len(image_topic.partitions) if image_topic is not None else default_count
    return partition_for(key, count)


async def ensure_internal_topic(controller: "Controller", lock: Any, topic: str, partitions: int,
                                replication_factor: int, configs: Mapping[str, str]) -> None:
    """Create `topic` through the controller unless it exists; `lock` (a trio.Lock owned by the
    caller) keeps concurrent first users from racing, and a lost race is not an error."""
    if topic in controller.image.topics_by_name:
        return
    async with lock:
        if topic in controller.image.topics_by_name:
            return
        try:
            await controller.create_topic(topic, partitions, replication_factor, None, dict(configs))
        except KafkaError as exc:
            if exc.code != ErrorCode.TOPIC_ALREADY_EXISTS:
                raise
        logger.info("created %s partitions=%d", topic, partitions)

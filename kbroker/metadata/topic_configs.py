"""Topic config names and validation, for CreateTopics, AlterConfigs and DescribeConfigs.

The table of topic configs (types, defaults, validators) belongs to storage
(`kbroker.log.log_config`); this module is the one place metadata code asks it, with a
fallback to the name list in `kbroker.config` so that metadata works before storage lands.
"""

from __future__ import annotations

from typing import Mapping

from kbroker.config import TOPIC_SYNONYMS
from kbroker.errors import KafkaError
from kbroker.metadata.codes import ErrorCode

# Topic-level keys Kafka knows that have no broker synonym.
_EXTRA_TOPIC_KEYS = frozenset({
    "follower.replication.throttled.replicas", "leader.replication.throttled.replicas",
    "local.retention.bytes", "local.retention.ms", "remote.storage.enable",
    "remote.log.copy.disable", "remote.log.delete.on.disable", "segment.jitter.ms",
})


def topic_config_names() -> frozenset[str]:
    """Every topic-level config key."""
    try:
        from kbroker.log.log_config import TOPIC_CONFIGS
    except ImportError:
        return frozenset(TOPIC_SYNONYMS) | _EXTRA_TOPIC_KEYS
    return frozenset(TOPIC_CONFIGS)


def validate_topic_configs(configs: Mapping[str, str | None]) -> None:
    """Raise KafkaError(INVALID_CONFIG) for an unknown key or a bad value."""
    names = topic_config_names()
    try:
        from kbroker.log.log_config import validate_topic_config
    except ImportError:
        validate_topic_config = None
    for name, value in configs.items():
        if name not in names:
            raise KafkaError(ErrorCode.INVALID_CONFIG, f"Unknown topic config name: {name}")
        if value is None:
            raise KafkaError(ErrorCode.INVALID_CONFIG, f"Null value not supported for topic configs: {name}")
        if validate_topic_config is not None:
            validate_topic_config(name, value)

"""Topic-level log configuration: Kafka's names, defaults, broker synonyms and validation.

`TOPIC_CONFIGS` is the table (Kafka 3.9 ``LogConfig`` / ``TopicConfig``); `LogConfig` is the
frozen, typed view the log store uses. Values resolve topic -> broker -> default in
`LogConfig.from_props`, as Kafka does: a topic key wins, else its broker synonym (e.g.
``log.segment.bytes``; ``log.roll.hours`` and friends are converted), else the default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from kbroker.errors import KafkaError

INVALID_CONFIG = 40  # protocol ErrorCode.INVALID_CONFIG

LONG_MAX = 2**63 - 1
INT_MAX = 2**31 - 1

# kbroker-specific broker key: fsync every append before acknowledging it (power-loss safety
# for single-node users); off by default, as Kafka leaves flushing to the OS.
FLUSH_ON_ACK = "log.flush.on.ack"


@dataclass(frozen=True)
class ConfigDef:
    """One topic config: Kafka type name, default, broker synonym, validator, documentation."""

    name: str
    type: str  # "string" | "int" | "long" | "double" | "boolean" | "list"
    default: Any
    synonym: str | None
    validator: Callable[[Any], str | None] | None
    doc: str


def _at_least(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v >= low else f"Value must be at least {low}"


def _between(low: float, high: float) -> Callable[[Any], str | None]:
    return lambda v: None if low <= v <= high else f"Value must be between {low} and {high}"


def _one_of(*allowed: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        values = v if isinstance(v, list) else [v]
        bad = [x for x in values if x not in allowed]
        return f"String must be one of: {', '.join(allowed)}" if bad else None

    return check


def _d(name: str, type_: str, default: Any, synonym: str | None, validator, doc: str) -> ConfigDef:
    return ConfigDef(name, type_, default, synonym, validator, doc)


TOPIC_CONFIGS: dict[str, ConfigDef] = {
    c.name: c
    for c in [
        _d("cleanup.policy", "list", ["delete"], "log.cleanup.policy", _one_of("delete", "compact"),
           "Retention policy for old segments: delete, compact, or both."),
        _d("compression.type", "string", "producer", "compression.type",
           _one_of("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
           "Final compression of the topic's data; 'producer' keeps the producer's codec."),
        _d("compression.gzip.level", "int", -1, "compression.gzip.level", _between(-1, 9),
           "gzip level used when compression.type is gzip."),
        _d("compression.lz4.level", "int", 9, "compression.lz4.level", _between(1, 17),
           "lz4 level used when compression.type is lz4."),
        _d("compression.zstd.level", "int", 3, "compression.zstd.level", _between(-131072, 22),
           "zstd level used when compression.type is zstd."),
        _d("delete.retention.ms", "long", 86_400_000, "log.cleaner.delete.retention.ms", _at_least(0),
           "How long tombstones are kept in compacted topics."),
        _d("file.delete.delay.ms", "long", 60_000, "log.segment.delete.delay.ms", _at_least(0),
           "Delay before a deleted segment's files are removed."),
        _d("flush.messages", "long", LONG_MAX, "log.flush.interval.messages", _at_least(1),
           "fsync the log after this many messages (default: leave it to the OS)."),
        _d("flush.ms", "long", LONG_MAX, "log.flush.interval.ms", _at_least(0),
           "fsync the log when its oldest unflushed message is this old (default: the OS decides)."),
        _d("follower.replication.throttled.replicas", "list", [], "follower.replication.throttled.replicas",
           None, "Replicas whose follower replication is throttled."),
        _d("index.interval.bytes", "int", 4096, "log.index.interval.bytes", _at_least(0),
           "Bytes of data between two offset index entries."),
        _d("leader.replication.throttled.replicas", "list", [], "leader.replication.throttled.replicas",
           None, "Replicas whose leader replication is throttled."),
        _d("local.retention.bytes", "long", -2, "log.local.retention.bytes", _at_least(-2),
           "Local retention with tiered storage (-2: use retention.bytes)."),
        _d("local.retention.ms", "long", -2, "log.local.retention.ms", _at_least(-2),
           "Local retention with tiered storage (-2: use retention.ms)."),
        _d("max.compaction.lag.ms", "long", LONG_MAX, "log.cleaner.max.compaction.lag.ms", _at_least(1),
           "Longest time a message stays ineligible for compaction."),
        _d("max.message.bytes", "int", 1_048_588, "message.max.bytes", _at_least(0),
           "Largest record batch size allowed (including the 12-byte log overhead)."),
        _d("message.downconversion.enable", "boolean", True, "log.message.downconversion.enable", None,
           "Whether down-conversion for old consumers is enabled."),
        _d("message.format.version", "string", "3.0-IV1", "log.message.format.version", None,
           "Deprecated; ignored for inter-broker protocol 3.0 and later."),
        _d("message.timestamp.after.max.ms", "long", LONG_MAX, "log.message.timestamp.after.max.ms",
           _at_least(0), "How far in the future a CreateTime timestamp may be."),
        _d("message.timestamp.before.max.ms", "long", LONG_MAX, "log.message.timestamp.before.max.ms",
           _at_least(0), "How far in the past a CreateTime timestamp may be."),
        _d("message.timestamp.difference.max.ms", "long", LONG_MAX,
           "log.message.timestamp.difference.max.ms", _at_least(0),
           "Deprecated: largest difference between a CreateTime timestamp and the broker's clock."),
        _d("message.timestamp.type", "string", "CreateTime", "log.message.timestamp.type",
           _one_of("CreateTime", "LogAppendTime"), "CreateTime or LogAppendTime."),
        _d("min.cleanable.dirty.ratio", "double", 0.5, "log.cleaner.min.cleanable.ratio", _between(0, 1),
           "Dirty ratio above which the log is eligible for cleaning."),
        _d("min.compaction.lag.ms", "long", 0, "log.cleaner.min.compaction.lag.ms", _at_least(0),
           "Shortest time a message stays uncompacted."),
        _d("min.insync.replicas", "int", 1, "min.insync.replicas", _at_least(1),
           "Minimum in-sync replicas for acks=all."),
        _d("preallocate", "boolean", False, "log.preallocate", None,
           "Preallocate segment files (accepted, not used by kbroker)."),
        _d("remote.storage.enable", "boolean", False, None, None, "Tiered storage (not supported)."),
        _d("remote.log.copy.disable", "boolean", False, None, None, "Tiered storage (not supported)."),
        _d("remote.log.delete.on.disable", "boolean", False, None, None, "Tiered storage (not supported)."),
        _d("retention.bytes", "long", -1, "log.retention.bytes", None,
           "Largest size of the log before old segments are deleted (-1: no limit)."),
        _d("retention.ms", "long", 604_800_000, "log.retention.ms", _at_least(-1),
           "Longest time a segment is kept (-1: no limit)."),
        _d("segment.bytes", "int", 1_073_741_824, "log.segment.bytes", _at_least(14),
           "Segment file size at which the log rolls."),
        _d("segment.index.bytes", "int", 10_485_760, "log.index.size.max.bytes", _at_least(4),
           "Maximum size of a segment's offset index; a full index rolls the segment."),
        _d("segment.jitter.ms", "long", 0, "log.roll.jitter.ms", _at_least(0),
           "Maximum random jitter subtracted from segment.ms."),
        _d("segment.ms", "long", 604_800_000, "log.roll.ms", _at_least(1),
           "Time after which the log rolls even when the segment is not full."),
        _d("unclean.leader.election.enable", "boolean", False, "unclean.leader.election.enable", None,
           "Whether out-of-sync replicas may become leader."),
    ]
}

# Broker keys with a coarser unit than the topic key, used when the fine one is absent
# (Kafka: log.roll.ms overrides log.roll.hours, log.retention.ms overrides minutes and hours).
_BROKER_UNIT_SYNONYMS: dict[str, list[tuple[str, int]]] = {
    "segment.ms": [("log.roll.hours", 3_600_000)],
    "segment.jitter.ms": [("log.roll.jitter.hours", 3_600_000)],
    "retention.ms": [("log.retention.minutes", 60_000), ("log.retention.hours", 3_600_000)],
}


def parse_value(definition: ConfigDef, value: Any) -> Any:
    """Convert a string (or already typed) value to the config's type; raises ValueError."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    kind = definition.type
    if kind in ("int", "long"):
        number = int(text)
        limit = INT_MAX if kind == "int" else LONG_MAX
        if not -limit - 1 <= number <= limit:
            raise ValueError(f"Value {number} is out of range for an {kind}")
        return number
    if kind == "double":
        return float(text)
    if kind == "boolean":
        lowered = text.lower()
        if lowered not in ("true", "false"):
            raise ValueError("Expected value to be either true or false")
        return lowered == "true"
    if kind == "list":
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


def validate_topic_config(name: str, value: str | None) -> None:
    """Check one topic config; raises KafkaError(INVALID_CONFIG) naming the key and the value."""
    definition = TOPIC_CONFIGS.get(name)
    if definition is None:
        raise KafkaError(INVALID_CONFIG, f"Unknown topic config name: {name}")
    if value is None:
        return  # null means "use the default" (a DELETE)
    try:
        parsed = parse_value(definition, value)
    except ValueError as exc:
        raise KafkaError(INVALID_CONFIG, f"Invalid value {value} for configuration {name}: {exc}") from None
    if definition.validator is not None:
        problem = definition.validator(parsed)
        if problem:
            raise KafkaError(INVALID_CONFIG, f"Invalid value {value} for configuration {name}: {problem}")
    if name == "cleanup.policy" and not parsed:
        raise KafkaError(INVALID_CONFIG, f"Invalid value {value} for configuration {name}: empty list")


def topic_defaults_from_broker(broker_props: Mapping[str, str]) -> dict[str, str]:
    """Topic-level defaults from broker keys (``log.segment.bytes`` -> ``segment.bytes``, ...)."""
    result: dict[str, str] = {}
    for name, definition in TOPIC_CONFIGS.items():
        if definition.synonym and definition.synonym in broker_props:
            result[name] = str(broker_props[definition.synonym])
            continue
        for key, unit_ms in _BROKER_UNIT_SYNONYMS.get(name, []):
            if key in broker_props:
                try:
                    result[name] = str(int(str(broker_props[key]).strip()) * unit_ms)
                except ValueError:
                    result[name] = str(broker_props[key])
                break
    return result


@dataclass(frozen=True)
class LogConfig:
    """Typed log configuration of one partition (Kafka's LogConfig); defaults are Kafka's."""

    segment_bytes: int = 1_073_741_824
    segment_ms: int = 604_800_000
    segment_jitter_ms: int = 0
    segment_index_bytes: int = 10_485_760
    index_interval_bytes: int = 4096
    max_message_bytes: int = 1_048_588
    message_timestamp_type: str = "CreateTime"
    message_timestamp_before_max_ms: int = LONG_MAX
    message_timestamp_after_max_ms: int = LONG_MAX
    retention_ms: int = 604_800_000
    retention_bytes: int = -1
    cleanup_policy: tuple[str, ...] = ("delete",)
    compression_type: str = "producer"
    delete_retention_ms: int = 86_400_000
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = LONG_MAX
    min_cleanable_dirty_ratio: float = 0.5
    file_delete_delay_ms: int = 60_000
    flush_messages: int = LONG_MAX
    flush_ms: int = LONG_MAX
    min_insync_replicas: int = 1
    # kbroker-specific (broker key log.flush.on.ack): fsync before acknowledging an append.
    flush_on_ack: bool = False

    @property
    def log_append_time(self) -> bool:
        """True when the broker stamps batches with LogAppendTime."""
        return self.message_timestamp_type == "LogAppendTime"

    @classmethod
    def from_props(
        cls, props: Mapping[str, str], broker_props: Mapping[str, str] | None = None
    ) -> "LogConfig":
        """Build from topic-level keys (unknown keys ignored); `broker_props` supply defaults.

        Broker-level keys found directly in `props` (e.g. ``log.segment.bytes``) are accepted
        too, so a LogManager can be given one mapping of either kind. Raises KafkaError
        (INVALID_CONFIG) for a bad value.
        """
        merged: dict[str, Any] = {}
        for source in (broker_props or {}, props):
            merged.update(topic_defaults_from_broker(source))
            merged.update({k: v for k, v in source.items() if k in TOPIC_CONFIGS and v is not None})
        values: dict[str, Any] = {}
        for name, raw in merged.items():
            validate_topic_config(name, raw)
            values[name] = parse_value(TOPIC_CONFIGS[name], raw)
        kwargs: dict[str, Any] = {}
        fields = {f.name for f in dataclasses.fields(cls)}
        for name, value in values.items():
            attr = name.replace(".", "_")
            if attr in fields:
                kwargs[attr] = tuple(value) if isinstance(value, list) else value
        # The deprecated difference key bounds both directions when the new keys are unset.
        if "message.timestamp.difference.max.ms" in values:
            diff = values["message.timestamp.difference.max.ms"]
            kwargs.setdefault("message_timestamp_before_max_ms", diff)
            kwargs.setdefault("message_timestamp_after_max_ms", diff)
        for source in (broker_props or {}, props):
            if FLUSH_ON_ACK in source:
                kwargs["flush_on_ack"] = str(source[FLUSH_ON_ACK]).strip().lower() == "true"
        return cls(**kwargs)

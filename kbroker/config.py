"""Broker configuration: Kafka's key names and defaults, validated once into a frozen object.

`load_config(path, overrides)` reads a Kafka-style properties file plus `key=value`
overrides (as `kafka-server-start.sh --override`), validates every known key against the
table below and returns a `BrokerConfig`: one snake_case attribute per key
(`log.segment.bytes` -> `log_segment_bytes`), a few resolved attributes (`log_dirs`,
`log_roll_ms`, `log_retention_ms`, `listener_endpoints`, ...) and `raw`, everything given.

Unknown keys produce one warning each (as Kafka's "was supplied but isn't a known config");
an invalid value raises `ConfigError` naming the key, and the CLI refuses to start.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

logger = logging.getLogger(__name__)

LONG_MAX = 2**63 - 1
INT_MAX = 2**31 - 1

DEFAULT_LISTENERS = "PLAINTEXT://127.0.0.1:9092"
DEFAULT_LOG_DIR = "./kbroker-data"


class ConfigError(ValueError):
    """An invalid configuration value; `key` names the offending key."""

    def __init__(self, key: str, value: object, reason: str) -> None:
        super().__init__(f"Invalid value {value!r} for configuration {key}: {reason}")
        self.key = key
        self.value = value
        self.reason = reason


# ---------------------------------------------------------------------------------------
# Types and validators

def _parse_int(text: str, lo: int, hi: int) -> int:
    value = int(text.strip())
    if not lo <= value <= hi:
        raise ValueError(f"not in the range [{lo}, {hi}] of its type")
    return value


def _to_int(text: str) -> int:
    return _parse_int(text, -(2**31), INT_MAX)


def _to_long(text: str) -> int:
    return _parse_int(text, -(2**63), LONG_MAX)


def _to_short(text: str) -> int:
    return _parse_int(text, -(2**15), 2**15 - 1)


def _to_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError("expected true or false")
    return lowered == "true"


def _to_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _to_double(text: str) -> float:
    return float(text.strip())


def _to_string(text: str) -> str:
    return text.strip()


PARSERS: dict[str, Callable[[str], Any]] = {
    "int": _to_int,
    "long": _to_long,
    "short": _to_short,
    "boolean": _to_bool,
    "list": _to_list,
    "double": _to_double,
    "string": _to_string,
    "password": _to_string,
    "class": _to_string,
}

Validator = Callable[[Any], str | None]  # returns a reason when invalid, None when fine


def at_least(minimum: int | float) -> Validator:
    """Value must be >= minimum."""
    return lambda value: None if value >= minimum else f"Value must be at least {minimum}"


def between(lo: int | float, hi: int | float) -> Validator:
    """Value must be within [lo, hi]."""
    return lambda value: None if lo <= value <= hi else f"Value must be no less than {lo} and no more than {hi}"


def one_of(*choices: str, case_sensitive: bool = True) -> Validator:
    """Value must be one of `choices`."""
    folded = choices if case_sensitive else tuple(c.lower() for c in choices)

    def check(value: str) -> str | None:
        probe = value if case_sensitive else value.lower()
        return None if probe in folded else f"String must be one of: {', '.join(choices)}"

    return check


def each_of(*choices: str) -> Validator:
    """Every list item must be one of `choices` (case-insensitive)."""

    def check(values: list[str]) -> str | None:
        bad = [v for v in values if v.lower() not in choices]
        return f"Invalid items {bad}; allowed: {', '.join(choices)}" if bad else None

    return check


def _listeners_valid(values: list[str]) -> str | None:
    try:
        parse_listeners(values)
    except ValueError as exc:
        return str(exc)
    return None


def _voters_valid(values: list[str]) -> str | None:
    try:
        parse_quorum_voters(values)
    except ValueError as exc:
        return str(exc)
    return None


def _non_empty(value: Any) -> str | None:
    return None if value else "must not be empty"


@dataclass(frozen=True, slots=True)
class ConfigDef:
    """One broker key: Kafka's name, type, default (as Kafka spells it), validator, doc."""

    name: str
    type: str
    default: str | None
    validator: Validator | None = None
    doc: str = ""
    used: bool = True  # False: accepted for compatibility, has no effect here

    @property
    def attribute(self) -> str:
        """The snake_case BrokerConfig attribute name."""
        return self.name.replace(".", "_").replace("-", "_")


def _d(name: str, type_: str, default: str | None, validator: Validator | None = None,
       doc: str = "", used: bool = True) -> ConfigDef:
    return ConfigDef(name, type_, default, validator, doc, used)


LM = str(LONG_MAX)
IM = str(INT_MAX)

CONFIG_DEFS: tuple[ConfigDef, ...] = (
    # --- server basics
    _d("listeners", "list", DEFAULT_LISTENERS, _listeners_valid,
       "Comma-separated listener URIs NAME://host:port the broker binds; port 0 takes a free port."),
    _d("advertised.listeners", "list", None, _listeners_valid,
       "Listener URIs given to clients in Metadata; defaults to `listeners` (with the bound port)."),
    _d("listener.security.protocol.map", "string",
       "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
       None, "Listener name to security protocol. Only PLAINTEXT is served."),
    _d("inter.broker.listener.name", "string", None, None, "Listener used between brokers.", used=False),
    _d("controller.listener.names", "list", None, None,
       "Listeners used by the controller quorum (single node: not bound separately).", used=False),
    _d("node.id", "int", "1", at_least(0), "This node's id (Kafka's default is -1; kbroker defaults to 1)."),
    _d("broker.id", "int", "-1", at_least(-1), "Synonym of node.id (ZooKeeper era); node.id wins when both are set."),
    _d("process.roles", "list", "broker,controller", each_of("broker", "controller"),
       "Roles of this node; a single node is both broker and controller."),
    _d("controller.quorum.voters", "list", "", _voters_valid,
       "id@host:port of each voter; empty means a single-voter quorum made of this node."),
    _d("controller.quorum.bootstrap.servers", "list", "", None, "Bootstrap servers of the quorum.", used=False),
    _d("broker.rack", "string", None, None, "Rack of this broker, reported in Metadata."),
    _d("log.dirs", "list", None, None, "Directories holding the partition logs (overrides log.dir)."),
    _d("log.dir", "string", DEFAULT_LOG_DIR, _non_empty,
       "Data directory when log.dirs is not set (Kafka's default is /tmp/kafka-logs)."),
    _d("metadata.log.dir", "string", None, None,
       "Directory of the metadata log; defaults to the first of log.dirs."),
    _d("message.max.bytes", "int", "1048588", at_least(0),
       "Largest record batch a topic accepts (topic config max.message.bytes)."),
    _d("socket.request.max.bytes", "int", "104857600", at_least(1),
       "Largest request frame; a larger size prefix closes the connection before reading."),
    _d("socket.send.buffer.bytes", "int", "102400", None, "SO_SNDBUF (-1: OS default).", used=False),
    _d("socket.receive.buffer.bytes", "int", "102400", None, "SO_RCVBUF (-1: OS default).", used=False),
    _d("socket.listen.backlog.size", "int", "50", at_least(1), "Listen backlog of each listener."),
    _d("connections.max.idle.ms", "long", "600000", at_least(1),
       "A connection with no request for this long is closed."),
    _d("queued.max.requests", "int", "500", at_least(1),
       "Bound on responses queued per connection before the reader waits."),
    _d("num.network.threads", "int", "3", at_least(1), "Thread pool sizes: no meaning in one trio loop.", used=False),
    _d("num.io.threads", "int", "8", at_least(1), "", used=False),
    _d("num.recovery.threads.per.data.dir", "int", "2", at_least(1), "", used=False),
    _d("num.replica.fetchers", "int", "1", None, "", used=False),
    _d("background.threads", "int", "10", at_least(1), "", used=False),
    _d("auto.leader.rebalance.enable", "boolean", "true", None, "", used=False),
    _d("controlled.shutdown.enable", "boolean", "true", None, "", used=False),
    _d("delete.topic.enable", "boolean", "true", None, "Allow DeleteTopics."),
    _d("fetch.max.bytes", "int", "57671680", at_least(1024), "Upper bound on the bytes of one Fetch response."),
    _d("max.incremental.fetch.session.cache.slots", "int", "1000", at_least(0),
       "Number of incremental fetch sessions (KIP-227) kept; 0 disables sessions."),
    _d("replica.lag.time.max.ms", "long", "30000", None, "", used=False),
    _d("replica.fetch.max.bytes", "int", "1048576", None, "", used=False),
    _d("unclean.leader.election.enable", "boolean", "false", None, "Topic default unclean.leader.election.enable."),
    _d("min.insync.replicas", "int", "1", at_least(1), "Topic default min.insync.replicas."),
    # --- topics
    _d("num.partitions", "int", "1", at_least(1), "Partitions of auto-created topics and CreateTopics with -1."),
    _d("default.replication.factor", "int", "1", at_least(1), "Replication factor of auto-created topics."),
    _d("auto.create.topics.enable", "boolean", "true", None,
       "Create a topic on Metadata and Produce requests naming an unknown topic."),
    _d("compression.type", "string", "producer",
       one_of("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
       "Topic default compression.type (producer: keep the producer's codec)."),
    _d("compression.gzip.level", "int", "-1", None, "Topic default compression.gzip.level."),
    _d("compression.lz4.level", "int", "9", between(1, 17), "Topic default compression.lz4.level."),
    _d("compression.zstd.level", "int", "3", between(-131072, 22), "Topic default compression.zstd.level."),
    # --- log
    _d("log.segment.bytes", "int", "1073741824", at_least(14), "Roll a segment at this size."),
    _d("log.roll.ms", "long", None, at_least(1), "Roll a segment after this age (overrides log.roll.hours)."),
    _d("log.roll.hours", "int", "168", at_least(1), "Roll a segment after this many hours."),
    _d("log.roll.jitter.ms", "long", None, at_least(0), "Random jitter subtracted from the roll time."),
    _d("log.roll.jitter.hours", "int", "0", at_least(0), "Roll jitter in hours if log.roll.jitter.ms is unset."),
    _d("log.retention.ms", "long", None, None, "Delete segments older than this (-1: no limit)."),
    _d("log.retention.minutes", "int", None, None, "Retention in minutes if log.retention.ms is unset."),
    _d("log.retention.hours", "int", "168", None, "Retention in hours if the two above are unset."),
    _d("log.retention.bytes", "long", "-1", None, "Delete old segments beyond this partition size (-1: no limit)."),
    _d("log.retention.check.interval.ms", "long", "300000", at_least(1), "How often retention runs."),
    _d("log.flush.interval.messages", "long", LM, at_least(1), "fsync after this many records."),
    _d("log.flush.on.ack", "boolean", "false", None,
       "kbroker only: fsync every append before acknowledging it (power-loss safety without replicas)."),
    _d("log.cleaner.backoff.ms", "long", "15000", at_least(0), "Pause between log cleaner rounds."),
    _d("log.flush.interval.ms", "long", None, None, "fsync a log after this many ms (default: scheduler interval)."),
    _d("log.flush.scheduler.interval.ms", "long", LM, None, "How often the flusher checks logs."),
    _d("log.flush.offset.checkpoint.interval.ms", "int", "60000", at_least(0),
       "How often the recovery-point checkpoint is written."),
    _d("log.flush.start.offset.checkpoint.interval.ms", "int", "60000", at_least(0),
       "How often the log-start-offset checkpoint is written."),
    _d("log.index.interval.bytes", "int", "4096", at_least(0), "Bytes between offset-index entries."),
    _d("log.index.size.max.bytes", "int", "10485760", at_least(4), "Maximum size of an index file."),
    _d("log.message.timestamp.type", "string", "CreateTime", one_of("CreateTime", "LogAppendTime"),
       "Topic default message.timestamp.type."),
    _d("log.message.timestamp.difference.max.ms", "long", LM, at_least(0), "Deprecated.", used=False),
    _d("log.message.timestamp.before.max.ms", "long", LM, at_least(0), "Topic default message.timestamp.before.max.ms."),
    _d("log.message.timestamp.after.max.ms", "long", LM, at_least(0), "Topic default message.timestamp.after.max.ms."),
    _d("log.message.downconversion.enable", "boolean", "true", None, "", used=False),
    _d("log.cleanup.policy", "list", "delete", each_of("delete", "compact"), "Topic default cleanup.policy."),
    _d("log.cleaner.enable", "boolean", "true", None, "", used=False),
    _d("log.cleaner.threads", "int", "1", at_least(0), "", used=False),
    _d("log.cleaner.delete.retention.ms", "long", "86400000", at_least(0), "Topic default delete.retention.ms."),
    _d("log.cleaner.min.compaction.lag.ms", "long", "0", at_least(0), "Topic default min.compaction.lag.ms."),
    _d("log.cleaner.max.compaction.lag.ms", "long", LM, at_least(1), "Topic default max.compaction.lag.ms."),
    _d("log.cleaner.min.cleanable.ratio", "double", "0.5", between(0, 1), "Topic default min.cleanable.dirty.ratio."),
    _d("log.segment.delete.delay.ms", "long", "60000", at_least(0), "Topic default file.delete.delay.ms."),
    _d("log.preallocate", "boolean", "false", None, "Topic default preallocate.", used=False),
    # --- metadata log
    _d("metadata.log.segment.bytes", "int", "1073741824", at_least(12), "Segment size of __cluster_metadata."),
    _d("metadata.log.segment.ms", "long", "604800000", None, "Roll time of __cluster_metadata segments."),
    _d("metadata.max.retention.bytes", "long", "104857600", None, "", used=False),
    _d("metadata.max.retention.ms", "long", "604800000", None, "", used=False),
    # --- group coordinator
    _d("offsets.topic.num.partitions", "int", "50", at_least(1), "Partitions of __consumer_offsets."),
    _d("offsets.topic.replication.factor", "short", "1", at_least(1),
       "Replication factor of __consumer_offsets (Kafka's code default is 3; 1 as in its shipped server.properties)."),
    _d("offsets.topic.segment.bytes", "int", "104857600", at_least(1), "Segment size of __consumer_offsets."),
    _d("offsets.topic.compression.codec", "int", "0", None, "Codec of offset commit records.", used=False),
    _d("offsets.retention.minutes", "int", "10080", at_least(1), "How long committed offsets of empty groups live."),
    _d("offsets.retention.check.interval.ms", "long", "600000", at_least(1), "How often stale offsets are expired."),
    _d("offsets.commit.timeout.ms", "int", "5000", at_least(1), "Offset commit timeout."),
    _d("offsets.load.buffer.size", "int", "5242880", at_least(1), "", used=False),
    _d("offset.metadata.max.bytes", "int", "4096", None, "Largest commit metadata string."),
    _d("group.initial.rebalance.delay.ms", "int", "3000", None, "Delay of the first rebalance of an empty group."),
    _d("group.min.session.timeout.ms", "int", "6000", None, "Smallest session timeout a member may ask for."),
    _d("group.max.session.timeout.ms", "int", "1800000", None, "Largest session timeout a member may ask for."),
    _d("group.max.size", "int", IM, at_least(1), "Largest number of members in a classic group."),
    _d("group.coordinator.rebalance.protocols", "list", "classic,consumer", each_of("classic", "consumer", "share"),
       "Group protocols served."),
    _d("group.consumer.session.timeout.ms", "int", "45000", at_least(1), "KIP-848 session timeout."),
    _d("group.consumer.heartbeat.interval.ms", "int", "5000", at_least(1), "KIP-848 heartbeat interval."),
    _d("group.consumer.max.size", "int", IM, at_least(1), "Largest KIP-848 group."),
    # --- transactions
    _d("transaction.state.log.num.partitions", "int", "50", at_least(1), "Partitions of __transaction_state."),
    _d("transaction.state.log.replication.factor", "short", "1", at_least(1),
       "Replication factor of __transaction_state (1 as in Kafka's shipped server.properties)."),
    _d("transaction.state.log.min.isr", "int", "1", at_least(1), "min.insync.replicas of __transaction_state."),
    _d("transaction.state.log.segment.bytes", "int", "104857600", at_least(1), "Segment size of __transaction_state."),
    _d("transaction.max.timeout.ms", "int", "900000", at_least(1), "Largest transaction timeout a producer may ask for."),
    _d("transactional.id.expiration.ms", "int", "604800000", at_least(1), "Expiry of idle transactional ids."),
    _d("transaction.abort.timed.out.transaction.cleanup.interval.ms", "int", "10000", at_least(1),
       "How often timed-out transactions are aborted."),
    _d("transaction.remove.expired.transaction.cleanup.interval.ms", "int", "3600000", at_least(1),
       "How often expired transactional ids are removed."),
    _d("producer.id.expiration.ms", "int", "86400000", at_least(1), "Expiry of idle producer ids."),
    _d("producer.id.expiration.check.interval.ms", "int", "600000", at_least(1),
       "How often idle producer ids are expired."),
)

DEFS_BY_NAME: dict[str, ConfigDef] = {d.name: d for d in CONFIG_DEFS}

# Prefixes of per-listener / security settings Kafka accepts; silently ignored here.
IGNORED_PREFIXES = ("listener.name.", "ssl.", "sasl.", "security.", "authorizer.", "super.users",
                    "zookeeper.", "remote.log.", "log.cleaner.", "replica.", "quota.", "metric.",
                    "metrics.", "kafka.metrics.", "confluent.")

# Topic-level key -> broker key that gives its default (Kafka's ServerTopicConfigSynonyms).
TOPIC_SYNONYMS: dict[str, str] = {
    "segment.bytes": "log.segment.bytes",
    "segment.ms": "log.roll.ms",
    "segment.jitter.ms": "log.roll.jitter.ms",
    "segment.index.bytes": "log.index.size.max.bytes",
    "flush.messages": "log.flush.interval.messages",
    "flush.ms": "log.flush.interval.ms",
    "retention.bytes": "log.retention.bytes",
    "retention.ms": "log.retention.ms",
    "max.message.bytes": "message.max.bytes",
    "index.interval.bytes": "log.index.interval.bytes",
    "delete.retention.ms": "log.cleaner.delete.retention.ms",
    "min.compaction.lag.ms": "log.cleaner.min.compaction.lag.ms",
    "max.compaction.lag.ms": "log.cleaner.max.compaction.lag.ms",
    "file.delete.delay.ms": "log.segment.delete.delay.ms",
    "min.cleanable.dirty.ratio": "log.cleaner.min.cleanable.ratio",
    "cleanup.policy": "log.cleanup.policy",
    "unclean.leader.election.enable": "unclean.leader.election.enable",
    "min.insync.replicas": "min.insync.replicas",
    "compression.type": "compression.type",
    "compression.gzip.level": "compression.gzip.level",
    "compression.lz4.level": "compression.lz4.level",
    "compression.zstd.level": "compression.zstd.level",
    "preallocate": "log.preallocate",
    "message.timestamp.type": "log.message.timestamp.type",
    "message.timestamp.before.max.ms": "log.message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms": "log.message.timestamp.after.max.ms",
    "message.downconversion.enable": "log.message.downconversion.enable",
}


# ---------------------------------------------------------------------------------------
# Listeners and voters

@dataclass(frozen=True, slots=True)
class Endpoint:
    """One listener: name (PLAINTEXT, ...), host ('' = all interfaces) and port."""

    name: str
    host: str
    port: int

    def uri(self) -> str:
        """NAME://host:port."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.name}://{host}:{self.port}"


def parse_listeners(values: Iterable[str]) -> list[Endpoint]:
    """Parse NAME://host:port items; raises ValueError on a malformed one."""
    endpoints: list[Endpoint] = []
    for item in values:
        name, sep, rest = item.partition("://")
        if not sep or not name:
            raise ValueError(f"listener {item!r} is not of the form NAME://host:port")
        host, colon, port_text = rest.rpartition(":")
        if not colon:
            raise ValueError(f"listener {item!r} has no port")
        host = host.strip("[]")
        try:
            port = int(port_text)
        except ValueError:
            raise ValueError(f"listener {item!r} has a bad port") from None
        if not 0 <= port <= 65535:
            raise ValueError(f"listener {item!r} port out of range")
        if any(e.name == name.upper() for e in endpoints):
            raise ValueError(f"listener name {name} appears twice")
        endpoints.append(Endpoint(name.upper(), host, port))
    return endpoints


def parse_quorum_voters(values: Iterable[str]) -> dict[int, tuple[str, int]]:
    """Parse id@host:port items into {id: (host, port)}; raises ValueError."""
    voters: dict[int, tuple[str, int]] = {}
    for item in values:
        node, at, address = item.partition("@")
        host, colon, port = address.rpartition(":")
        if not at or not colon:
            raise ValueError(f"voter {item!r} is not of the form id@host:port")
        try:
            voters[int(node)] = (host.strip("[]"), int(port))
        except ValueError:
            raise ValueError(f"voter {item!r} has a bad id or port") from None
    return voters


# ---------------------------------------------------------------------------------------
# The frozen config object

_EXTRA_FIELDS: tuple[tuple[str, Any], ...] = (
    ("raw", dict),                   # every key given (file + overrides), as strings
    ("listener_endpoints", list),    # parsed `listeners`
    ("advertised_endpoints", list),  # parsed `advertised.listeners` (or listeners)
    ("quorum_voters", dict),         # parsed voters {id: (host, port)}; self when empty
)


class _FrozenConfig:
    """Base of BrokerConfig: slotted, immutable after __init__, compared by value.

    Built with `type()` rather than `dataclasses.make_dataclass`: for ~110 fields the
    dataclass machinery costs ~15 ms of start-up (it compiles generated methods), and
    start-up time is a feature of a broker for tests.
    """

    __slots__ = ()
    _names: tuple[str, ...] = ()

    def __init__(self, **values: Any) -> None:
        for name in self._names:
            object.__setattr__(self, name, values.pop(name, None))
        if values:
            raise TypeError(f"unknown BrokerConfig fields: {sorted(values)}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._names)

    __hash__ = None  # type: ignore[assignment]  (mutable members such as lists)

    def __repr__(self) -> str:
        return (f"BrokerConfig(listeners={self.listeners!r}, log_dirs={self.log_dirs!r}, "  # type: ignore[attr-defined]
                f"node_id={self.node_id!r}, raw={self.raw!r})")  # type: ignore[attr-defined]

    def replace(self, **changes: Any) -> "_FrozenConfig":
        """A copy with some attributes changed (no re-validation: for tests)."""
        values = {n: getattr(self, n) for n in self._names}
        values.update(changes)
        return type(self)(**values)


def _make_config_class() -> type:
    names = tuple(d.attribute for d in CONFIG_DEFS) + tuple(name for name, _ in _EXTRA_FIELDS)
    return type("BrokerConfig", (_FrozenConfig,), {
        "__slots__": names, "_names": names, "__module__": __name__,
        "__doc__": ("The validated broker configuration: one snake_case attribute per Kafka key "
                    "plus `raw` (everything given) and parsed listeners/voters/endpoints."),
    })


BrokerConfig = _make_config_class()


def _parse_value(definition: ConfigDef, text: str | None) -> Any:
    if text is None:
        return None
    try:
        value = PARSERS[definition.type](text)
    except ValueError as exc:
        raise ConfigError(definition.name, text, f"expected type {definition.type} ({exc})") from None
    if definition.validator is not None:
        reason = definition.validator(value)
        if reason:
            raise ConfigError(definition.name, text, reason)
    return value


def build_config(props: Mapping[str, str]) -> Any:
    """Validate `props` (Kafka keys -> string values) into a BrokerConfig.

    Raises ConfigError naming the first invalid key. Unknown keys are logged once each.
    """
    for key in props:
        if key not in DEFS_BY_NAME and not key.startswith(IGNORED_PREFIXES):
            logger.warning("The configuration '%s' was supplied but isn't a known config.", key)
    values: dict[str, Any] = {}
    for definition in CONFIG_DEFS:
        text = props.get(definition.name, definition.default)
        values[definition.attribute] = _parse_value(definition, text)
    _resolve(values, props)
    values["raw"] = dict(props)
    return BrokerConfig(**values)


def _resolve(values: dict[str, Any], props: Mapping[str, str]) -> None:
    """Fill derived attributes the way Kafka resolves its synonyms."""
    if "node.id" not in props and values["broker_id"] >= 0:
        values["node_id"] = values["broker_id"]
    values["log_dirs"] = values["log_dirs"] or [values["log_dir"]]
    if not values["log_dirs"]:
        raise ConfigError("log.dirs", props.get("log.dirs"), "must name at least one directory")
    if values["log_roll_ms"] is None:
        values["log_roll_ms"] = values["log_roll_hours"] * 3_600_000
    if values["log_roll_jitter_ms"] is None:
        values["log_roll_jitter_ms"] = values["log_roll_jitter_hours"] * 3_600_000
    if values["log_retention_ms"] is None:
        if values["log_retention_minutes"] is not None:
            values["log_retention_ms"] = values["log_retention_minutes"] * 60_000
        else:
            values["log_retention_ms"] = values["log_retention_hours"] * 3_600_000
    if values["log_retention_ms"] < -1:
        raise ConfigError("log.retention.ms", values["log_retention_ms"], "Value must be at least -1")
    if values["log_flush_interval_ms"] is None:
        values["log_flush_interval_ms"] = values["log_flush_scheduler_interval_ms"]
    if not values["listeners"]:
        raise ConfigError("listeners", props.get("listeners"), "at least one listener is required")
    values["listener_endpoints"] = parse_listeners(values["listeners"])
    values["advertised_endpoints"] = parse_listeners(values["advertised_listeners"] or values["listeners"])
    voters = parse_quorum_voters(values["controller_quorum_voters"])
    if not voters:
        first = values["listener_endpoints"][0]
        voters = {values["node_id"]: (first.host or "127.0.0.1", first.port)}
    elif values["node_id"] not in voters and "controller" in values["process_roles"]:
        raise ConfigError("controller.quorum.voters", props.get("controller.quorum.voters"),
                          f"node.id {values['node_id']} with the controller role must be a voter")
    values["quorum_voters"] = voters
    if values["group_min_session_timeout_ms"] > values["group_max_session_timeout_ms"]:
        raise ConfigError("group.min.session.timeout.ms", values["group_min_session_timeout_ms"],
                          "must not exceed group.max.session.timeout.ms")


def topic_defaults(config: Any) -> dict[str, str]:
    """Topic-level keys (segment.bytes, retention.ms, ...) with the broker's values as strings.

    The broker-level default of each topic config, as Kafka resolves topic -> broker -> default.
    """
    result: dict[str, str] = {}
    for topic_key, broker_key in TOPIC_SYNONYMS.items():
        value = getattr(config, DEFS_BY_NAME[broker_key].attribute)
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list):
            text = ",".join(value)
        else:
            text = str(value)
        result[topic_key] = text
    return result


# ---------------------------------------------------------------------------------------
# Properties files and the CLI's overrides

def parse_properties(text: str) -> dict[str, str]:
    """Parse Java-style properties: `key=value` or `key: value`, # and ! comments,
    backslash line continuations. Enough of java.util.Properties for server.properties files."""
    props: dict[str, str] = {}
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not logical and (not stripped or stripped[0] in "#!"):
            continue
        if stripped.endswith("\\") and not stripped.endswith("\\\\"):
            logical += stripped[:-1]
            continue
        logical += stripped
        key, value = _split_property(logical)
        props[key] = value
        logical = ""
    if logical:
        key, value = _split_property(logical)
        props[key] = value
    return props


def _split_property(line: str) -> tuple[str, str]:
    for index, char in enumerate(line):
        if char in "=:":
            return line[:index].strip(), line[index + 1:].strip()
        if char.isspace():
            return line[:index], line[index:].strip().lstrip("=:").strip()
    return line, ""


def parse_override(text: str) -> tuple[str, str]:
    """`key=value` from the command line; raises ValueError when there is no '='."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {text!r} is not key=value")
    return key.strip(), value.strip()


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Any:
    """Read a properties file (optional) and apply `key=value` overrides, then validate."""
    props: dict[str, str] = {}
    if path is not None:
        props.update(parse_properties(Path(path).read_text(encoding="utf-8")))
    for item in overrides:
        key, value = parse_override(item)
        props[key] = value
    return build_config(props)

"""Effective configs of a topic or of the broker, with sources and synonyms (DescribeConfigs).

Resolution follows Kafka: a topic key comes from the topic override, else the per-broker
dynamic config of its broker synonym, else the cluster-wide dynamic default, else the
static broker config (server.properties / overrides), else the built-in default. The
synonyms list names each level that has a value, highest precedence first.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Iterable

from kbroker.config import CONFIG_DEFS, TOPIC_SYNONYMS
from kbroker.metadata.image import MetadataImage, TopicImage


class ConfigSource(IntEnum):
    """DescribeConfigs ConfigSource ids."""

    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5


class ConfigType(IntEnum):
    """DescribeConfigs ConfigType ids (v3+)."""

    UNKNOWN = 0
    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


_TYPES = {"boolean": ConfigType.BOOLEAN, "string": ConfigType.STRING, "int": ConfigType.INT,
          "short": ConfigType.SHORT, "long": ConfigType.LONG, "double": ConfigType.DOUBLE,
          "list": ConfigType.LIST, "password": ConfigType.PASSWORD, "class": ConfigType.CLASS}

# Broker keys that can be changed at run time (Kafka's DynamicConfig); others are read-only.
_DYNAMIC_BROKER_KEYS = frozenset(TOPIC_SYNONYMS.values()) | {"log.retention.minutes", "log.retention.hours",
                                                             "log.roll.hours", "num.partitions"}


@dataclass(frozen=True, slots=True)
class Synonym:
    """One level a config value could come from."""

    name: str
    value: str | None
    source: ConfigSource


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """A described config."""

    name: str
    value: str | None
    source: ConfigSource
    read_only: bool
    is_sensitive: bool
    config_type: ConfigType
    documentation: str | None
    synonyms: tuple[Synonym, ...]

    @property
    def is_default(self) -> bool:
        """Whether the value is the built-in default (DescribeConfigs v0's is_default)."""
        return self.source == ConfigSource.DEFAULT_CONFIG


def render(value: Any) -> str | None:
    """A typed config value as Kafka prints it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def describe_topic(topic: TopicImage, image: MetadataImage, config: Any, node_id: int,
                   keys: Iterable[str] | None = None) -> list[ConfigEntry]:
    """Every topic config of `topic` (or those in `keys`), resolved."""
    from kbroker.log.log_config import TOPIC_CONFIGS, topic_defaults_from_broker

    raw = getattr(config, "raw", {}) or {}
    static = topic_defaults_from_broker(raw)
    per_broker = image.per_broker_configs.get(node_id, {})
    wanted = set(keys) if keys is not None else None
    out: list[ConfigEntry] = []
    for name, definition in sorted(TOPIC_CONFIGS.items()):
        if wanted is not None and name not in wanted:
            continue
        synonym = definition.synonym
        levels: list[Synonym] = []
        if name in topic.configs:
            levels.append(Synonym(name, topic.configs[name], ConfigSource.DYNAMIC_TOPIC_CONFIG))
        if synonym and synonym in per_broker:
            levels.append(Synonym(synonym, per_broker[synonym], ConfigSource.DYNAMIC_BROKER_CONFIG))
        if synonym and synonym in image.broker_configs:
            levels.append(Synonym(synonym, image.broker_configs[synonym], ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG))
        if name in static:
            unit_key = None if synonym and synonym in raw else _unit_key(raw, name)
            if unit_key is not None:  # e.g. log.retention.hours: the synonym shows the broker's own value
                levels.append(Synonym(unit_key, str(raw[unit_key]), ConfigSource.STATIC_BROKER_CONFIG))
            else:
                levels.append(Synonym(synonym or name, static[name], ConfigSource.STATIC_BROKER_CONFIG))
        levels.append(Synonym(synonym or name, render(definition.default), ConfigSource.DEFAULT_CONFIG))
        top = levels[0]
        value = static[name] if top.source == ConfigSource.STATIC_BROKER_CONFIG else top.value
        out.append(ConfigEntry(name, value, top.source, False, False,
                               _TYPES.get(definition.type, ConfigType.UNKNOWN), definition.doc, tuple(levels)))
    return out


def _unit_key(raw: dict, topic_key: str) -> str | None:
    for key in {"segment.ms": ("log.roll.hours",), "retention.ms": ("log.retention.minutes", "log.retention.hours"),
                "segment.jitter.ms": ("log.roll.jitter.hours",)}.get(topic_key, ()):
        if key in raw:
            return key
    return None


def describe_broker(image: MetadataImage, config: Any, node_id: int, resource_name: str,
                    keys: Iterable[str] | None = None) -> list[ConfigEntry]:
    """The broker's configs; resource name "" describes only the cluster-wide dynamic defaults."""
    raw = getattr(config, "raw", {}) or {}
    wanted = set(keys) if keys is not None else None
    out: list[ConfigEntry] = []
    if resource_name == "":
        for name, value in sorted(image.broker_configs.items()):
            if wanted is None or name in wanted:
                out.append(_broker_entry(name, [Synonym(name, value, ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG)],
                                         None))
        return out
    per_broker = image.per_broker_configs.get(node_id, {})
    for definition in sorted(CONFIG_DEFS, key=lambda d: d.name):
        name = definition.name
        if wanted is not None and name not in wanted:
            continue
        levels: list[Synonym] = []
        if name in per_broker:
            levels.append(Synonym(name, per_broker[name], ConfigSource.DYNAMIC_BROKER_CONFIG))
        if name in image.broker_configs:
            levels.append(Synonym(name, image.broker_configs[name], ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG))
        if name in raw:
            levels.append(Synonym(name, render(getattr(config, definition.attribute, raw[name])),
                                  ConfigSource.STATIC_BROKER_CONFIG))
        if definition.default is not None:
            levels.append(Synonym(name, definition.default, ConfigSource.DEFAULT_CONFIG))
        if not levels:  # no value anywhere (e.g. log.retention.ms unset): Kafka shows null, default
            levels.append(Synonym(name, None, ConfigSource.DEFAULT_CONFIG))
        out.append(_broker_entry(name, levels, definition))
    return out


def _broker_entry(name: str, levels: list[Synonym], definition: Any) -> ConfigEntry:
    top = levels[0]
    kind = _TYPES.get(definition.type, ConfigType.UNKNOWN) if definition is not None else ConfigType.UNKNOWN
    doc = getattr(definition, "doc", None) or None
    return ConfigEntry(name, top.value, top.source, name not in _DYNAMIC_BROKER_KEYS, False, kind, doc,
                       tuple(levels))

"""BrokerConfig: Kafka's keys and defaults, synonyms, unknown keys, invalid values, the CLI."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from kbroker.config import ConfigError, build_config, load_config, parse_properties, topic_defaults


def test_defaults_are_kafkas():
    config = build_config({})
    assert config.listeners == ["PLAINTEXT://127.0.0.1:9092"]
    assert config.log_dirs == ["./kbroker-data"]
    assert config.node_id == 1
    assert config.num_partitions == 1
    assert config.default_replication_factor == 1
    assert config.auto_create_topics_enable is True
    assert config.message_max_bytes == 1048588
    assert config.socket_request_max_bytes == 104857600
    assert config.log_segment_bytes == 1073741824
    assert config.log_roll_ms == 168 * 3_600_000
    assert config.log_retention_ms == 168 * 3_600_000
    assert config.offsets_topic_num_partitions == 50
    assert config.max_incremental_fetch_session_cache_slots == 1000
    assert config.quorum_voters == {1: ("127.0.0.1", 9092)}
    assert config.raw == {}


def test_synonyms_resolve_as_kafka():
    config = build_config({"log.retention.minutes": "5", "log.roll.hours": "2", "log.dir": "/x"})
    assert config.log_retention_ms == 300_000
    assert config.log_roll_ms == 7_200_000
    assert config.log_dirs == ["/x"]
    config = build_config({"log.retention.ms": "42", "log.retention.hours": "1", "log.dirs": "/a,/b"})
    assert config.log_retention_ms == 42
    assert config.log_dirs == ["/a", "/b"]


def test_topic_defaults_follow_broker_keys():
    config = build_config({"log.segment.bytes": "123456", "log.message.timestamp.type": "LogAppendTime"})
    defaults = topic_defaults(config)
    assert defaults["segment.bytes"] == "123456"
    assert defaults["message.timestamp.type"] == "LogAppendTime"
    assert defaults["max.message.bytes"] == "1048588"


def test_config_is_frozen():
    config = build_config({})
    with pytest.raises(AttributeError):
        config.num_partitions = 3


def test_unknown_key_warns_once(caplog):
    with caplog.at_level(logging.WARNING, logger="kbroker.config"):
        config = build_config({"no.such.key": "1", "num.partitions": "2"})
    warnings = [r for r in caplog.records if "no.such.key" in r.getMessage()]
    assert len(warnings) == 1
    assert config.num_partitions == 2
    assert config.raw["no.such.key"] == "1"


@pytest.mark.parametrize("key,value", [
    ("num.partitions", "0"), ("num.partitions", "many"), ("auto.create.topics.enable", "yes"),
    ("log.message.timestamp.type", "WallTime"), ("listeners", "nonsense"), ("message.max.bytes", "-5"),
    ("log.segment.bytes", "99999999999"),
])
def test_invalid_value_names_the_key(key, value):
    with pytest.raises(ConfigError) as info:
        build_config({key: value})
    assert info.value.key == key
    assert key in str(info.value)


def test_properties_file_and_overrides(tmp_path):
    path = tmp_path / "server.properties"
    path.write_text("# comment\nnum.partitions=3\nlog.dirs = /data/a,\\\n   /data/b\n! other\nnode.id: 7\n")
    assert parse_properties(path.read_text())["log.dirs"] == "/data/a,/data/b"
    config = load_config(path, ["num.partitions=5"])
    assert config.num_partitions == 5
    assert config.node_id == 7
    assert config.log_dirs == ["/data/a", "/data/b"]


def test_cli_refuses_invalid_value(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "kbroker", "--override", f"log.dirs={tmp_path}",
         "--override", "num.partitions=-1"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "num.partitions" in result.stderr


def test_every_key_is_documented():
    from pathlib import Path

    from kbroker.config import CONFIG_DEFS

    text = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    missing = [d.name for d in CONFIG_DEFS if f"`{d.name}`" not in text]
    assert not missing, f"undocumented keys: {missing}"

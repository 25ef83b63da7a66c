"""Consumer groups with the Java client (3.9): classic and KIP-848 (group.protocol=consumer)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kbroker.testing import KafkaBroker
from tests.integration.java_client import compile_driver
from tests.integration.groups_support import (GROUP_BROKER_OVERRIDES, create_topic, produce,
                                              unique)

pytestmark = pytest.mark.timeout(180)
SOURCE = Path(__file__).with_name("java") / "GroupMembers.java"


@pytest.fixture(scope="module")
def classpath(tmp_path_factory) -> str:
    return compile_driver(SOURCE, tmp_path_factory.mktemp("java"))


@pytest.fixture(scope="module")
def broker():
    # KIP-848 heartbeats every 500 ms so that reconciliation is quick
    with KafkaBroker({**GROUP_BROKER_OVERRIDES,
                      "group.consumer.heartbeat.interval.ms": 500}) as running:
        yield running


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_java_consumers_share_partitions_and_consume_everything_once(broker, classpath,
                                                                    protocol):
    topic, group = unique("t"), unique("g")
    create_topic(broker.bootstrap_servers, topic, 4)
    values = [f"v{i}".encode() for i in range(80)]
    produce(broker.bootstrap_servers, topic, values, 4)
    run = subprocess.run(
        ["java", "-cp", classpath, "GroupMembers", broker.bootstrap_servers, topic, group,
         protocol, "4", str(len(values))],
        capture_output=True, text=True, timeout=150)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [line.split() for line in run.stdout.splitlines() if line.startswith("member ")]
    assert len(lines) == 2, run.stdout
    assignments, got = [], []
    for words in lines:
        at = words.index("committed")
        assignments.append(" ".join(words[3:at]))
        got += words[at + 1:]
    assert sorted(got) == sorted(v.decode() for v in values), "every record exactly once"
    held = [set(int(p) for p in a.strip("[]").replace(",", " ").split()) for a in assignments]
    assert all(held) and sorted(held[0] | held[1]) == [0, 1, 2, 3] and not held[0] & held[1]

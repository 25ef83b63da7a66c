"""The transactional scenario with the official Java client (kafka-clients 3.9)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from kbroker.testing import KafkaBroker
from tests.integration.java_client import compile_driver
from tests.integration.clients import create_topic, unique_topic

pytestmark = pytest.mark.timeout(240)
REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "tests" / "txn" / "java" / "TxnScenario.java"


@pytest.fixture(scope="module")
def classpath(tmp_path_factory) -> str:
    return compile_driver(SOURCE, tmp_path_factory.mktemp("java"))


def test_java_transactions_commit_abort_and_fencing(classpath):
    with KafkaBroker({"transaction.state.log.num.partitions": 5}) as broker:
        topic = unique_topic("java-txn")
        create_topic(broker.bootstrap_servers, topic, 1)
        run = subprocess.run(
            ["java", "-cp", classpath, "TxnScenario", broker.bootstrap_servers, topic,
             f"java-{uuid.uuid4().hex[:8]}"],
            capture_output=True, text=True, timeout=200)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = {line.split(" ", 1)[0]: line.split()[1:] for line in run.stdout.splitlines()}
    assert lines["fenced"] == ["ProducerFencedException"]
    assert lines["committed"] == ["committed-0", "committed-1", "committed-2", "winner"]
    assert sorted(lines["uncommitted"]) == sorted(
        [f"aborted-{i}" for i in range(3)] + [f"committed-{i}" for i in range(3)]
        + ["zombie", "winner"])

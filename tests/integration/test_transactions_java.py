"""The transactional scenario with the official Java client (kafka-clients 3.9)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from kbroker.testing import KafkaBroker
from tests.integration.clients import create_topic, unique_topic

pytestmark = pytest.mark.timeout(240)
REPO = Path(__file__).resolve().parents[2]
JARS = sorted((REPO / "compat" / "clients" / "java" / "lib").glob("*.jar"))
SOURCE = REPO / "tests" / "txn" / "java" / "TxnScenario.java"


@pytest.fixture(scope="module")
def classpath(tmp_path_factory) -> str:
    if not JARS or shutil.which("javac") is None:
        # .ci/run installs them; in CI their absence is a failure, by hand a skip with the reason
        missing = "the Java client jars (compat/clients/java/lib) or javac are missing"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    out = tmp_path_factory.mktemp("java")
    cp = ":".join(str(j) for j in JARS)
    subprocess.run(["javac", "-cp", cp, "-d", str(out), str(SOURCE)], check=True, timeout=120)
    return f"{cp}:{out}"


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

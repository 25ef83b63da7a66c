"""Driver for kcat (Debian package): runs the command-line tool.

kcat cannot create topics, so scenario set-up (create_topic) goes through kafka-python's admin
client; everything the scenario checks is done by kcat itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from compat.clients.base import Client
from compat.clients.features import FEATURES


class KcatClient(Client):
    """kcat -b BOOTSTRAP ..."""

    name = "kcat"
    features = FEATURES["kcat"]

    def __init__(self) -> None:
        self._admin = None
        self._version = "unknown"

    def start(self, bootstrap: str) -> None:
        super().start(bootstrap)
        if shutil.which("kcat") is None:
            raise RuntimeError("kcat not found on PATH (apt-get install -y kcat)")
        out = subprocess.run(["kcat", "-V"], capture_output=True, text=True, timeout=30).stdout
        match = re.search(r"Version ([\w.\-]+) .*?librdkafka ([\w.\-]+)", out, re.S)
        self._version = f"{match.group(1)} (librdkafka {match.group(2)})" if match else out.splitlines()[0]
        from kafka import KafkaAdminClient
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap)

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()

    def version(self) -> str:
        return self._version

    def create_topic(self, topic: str, partitions: int = 1, configs: dict | None = None) -> None:
        assert self._admin is not None
        self._admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1,
                                           "configs": configs or {}}}, wait_for_metadata=True)

    def cli(self, args: list[str], stdin: bytes | None = None, timeout_s: float = 30.0) -> tuple[int, bytes, bytes]:
        proc = subprocess.run(["kcat", "-b", self.bootstrap, *args], input=stdin if stdin is not None else b"",
                              capture_output=True, timeout=timeout_s)
        return proc.returncode, proc.stdout, proc.stderr

"""Driver for kafkajs through compat/clients/kafkajs/driver.js (installed with `npm ci`)."""

from __future__ import annotations

import shutil
from pathlib import Path

from compat.clients.features import FEATURES
from compat.clients.remote import RemoteClient

KAFKAJS_DIR = Path(__file__).with_name("kafkajs")


class KafkaJsClient(RemoteClient):
    """One node process for the whole run, fed JSON lines."""

    name = "kafkajs"
    features = FEATURES["kafkajs"]
    cwd = KAFKAJS_DIR
    command = ["node", str(KAFKAJS_DIR / "driver.js")]

    def start(self, bootstrap: str) -> None:
        """Check node and the npm packages are there, then start the driver."""
        if shutil.which("node") is None:
            raise RuntimeError("node not found on PATH")
        if not (KAFKAJS_DIR / "node_modules" / "kafkajs").is_dir():
            raise RuntimeError(f"kafkajs not installed: run `npm ci` in {KAFKAJS_DIR}")
        super().start(bootstrap)

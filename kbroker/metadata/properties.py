"""meta.properties: the cluster id and node id stamped into every log directory.

Kafka writes it when a directory is formatted (version=1, cluster.id, node.id, directory.id)
and refuses to start when a directory belongs to another node or cluster. kbroker formats
on first start: one cluster id (a random UUID in Kafka's 22-character URL-safe base64) is
generated, or taken from the directories already formatted, and written where missing.
"""

from __future__ import annotations

import base64
import logging
import os
import uuid
from pathlib import Path


logger = logging.getLogger(__name__)

META_PROPERTIES = "meta.properties"


class MetaPropertiesError(RuntimeError):
    """A log directory belongs to another node or cluster; the broker must not start."""


def random_kafka_uuid() -> str:
    """A random UUID rendered as Kafka does (URL-safe base64, no padding, 22 chars)."""
    while True:
        raw = uuid.uuid4().bytes
        text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka avoids ids that look like command-line flags
            return text


def read_meta_properties(directory: Path) -> dict[str, str] | None:
    """The key/values of `directory`/meta.properties, or None when absent."""
    path = directory / META_PROPERTIES
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    props: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "!")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        props[key.strip()] = value.strip()
    return props


def write_meta_properties(directory: Path, cluster_id: str, node_id: int) -> None:
    """Write meta.properties atomically (tmp, fsync, rename)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / META_PROPERTIES
    tmp = path.with_name(path.name + ".tmp")
    body = (f"#\n#kbroker\ncluster.id={cluster_id}\ndirectory.id={random_kafka_uuid()}\n"
            f"node.id={node_id}\nversion=1\n")
    with open(tmp, "w") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def ensure_meta_properties(log_dirs: list[Path], node_id: int) -> str:
    """Check or create meta.properties in every directory; returns the cluster id.

    Raises MetaPropertiesError when a directory names another node id or another cluster
    than the others.
    """
    cluster_id: str | None = None
    missing: list[Path] = []
    for directory in log_dirs:
        props = read_meta_properties(directory)
        if props is None:
            missing.append(directory)
            continue
        found_node = props.get("node.id")
        if found_node is None or int(found_node) != node_id:
            raise MetaPropertiesError(
                f"Stored node id {found_node} in {directory / META_PROPERTIES} doesn't match "
                f"the configured node.id {node_id}")
        found_cluster = props.get("cluster.id")
        if not found_cluster:
            raise MetaPropertiesError(f"{directory / META_PROPERTIES} has no cluster.id")
        if cluster_id is not None and found_cluster != cluster_id:
            raise MetaPropertiesError(
                f"Log directories disagree on the cluster id: {cluster_id} and {found_cluster}")
        cluster_id = found_cluster
    if cluster_id is None:
        cluster_id = random_kafka_uuid()
        logger.info("formatting log directories cluster_id=%s node_id=%d", cluster_id, node_id)
    for directory in missing:
        write_meta_properties(directory, cluster_id, node_id)
    return cluster_id



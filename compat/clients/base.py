"""The operations every client driver offers to scenarios.

Scenarios check the broker's behaviour in Python; drivers only translate each operation into
the client library's own API. A record is a dict with keys ``partition``, ``offset``, ``key``,
``value`` (bytes or None), ``headers`` (list of (str, bytes | None)) and ``timestamp`` (ms).
Drivers raise ``ClientError`` when the library reports an error and ``Unsupported`` for an
operation the library lacks.
"""

from __future__ import annotations

from typing import Any

from compat.errors import Unsupported

Record = dict[str, Any]
# start positions for consume(): "earliest", "latest", {"timestamp": ms} or {partition: offset}
Start = Any


class Client:
    """Base class: one instance per client library per run; handles are per scenario."""

    name: str = ""
    # feature tags a scenario may require; see compat/scenarios/__init__.py for the list
    features: frozenset[str] = frozenset()

    def start(self, bootstrap: str) -> None:
        """Prepare the client (start helper processes) for ``bootstrap``."""
        self.bootstrap = bootstrap

    def stop(self) -> None:
        """Release everything, including helper processes."""

    def reset(self) -> None:
        """Forget a scenario that hung: drop its handles (and restart helpers)."""
        self.cleanup()

    def cleanup(self) -> None:
        """Close every producer/consumer handle opened by the last scenario."""

    def version(self) -> str:
        """The client library's version, for the report."""
        return "unknown"

    # -- cluster and admin ------------------------------------------------------------------
    def metadata(self) -> dict:
        """{"cluster_id", "controller_id", "brokers": [{"id","host","port"}]}."""
        raise Unsupported("metadata")

    def create_topic(self, topic: str, partitions: int = 1, configs: dict | None = None) -> None:
        """Create a topic (replication factor 1)."""
        raise Unsupported("create_topic")

    def delete_topic(self, topic: str) -> None:
        """Delete a topic."""
        raise Unsupported("delete_topic")

    def list_topics(self) -> dict[str, int]:
        """Topic name -> partition count."""
        raise Unsupported("list_topics")

    def create_partitions(self, topic: str, total: int) -> None:
        """Grow a topic to ``total`` partitions."""
        raise Unsupported("create_partitions")

    def describe_topic_config(self, topic: str) -> dict[str, str]:
        """All configs of a topic, name -> value."""
        raise Unsupported("describe_topic_config")

    def alter_topic_config(self, topic: str, updates: dict[str, str | None]) -> None:
        """Incrementally set (value) or delete (None) topic configs."""
        raise Unsupported("alter_topic_config")

    def delete_records(self, topic: str, partition: int, before: int) -> int:
        """Delete records before ``before``; returns the new low watermark."""
        raise Unsupported("delete_records")

    def list_offsets(self, topic: str, partition: int, spec: str | int) -> int:
        """Offset for "earliest", "latest" or a timestamp (ms); -1 when none."""
        raise Unsupported("list_offsets")

    def list_groups(self) -> list[str]:
        """Ids of the groups the cluster knows."""
        raise Unsupported("list_groups")

    def describe_group(self, group: str) -> dict:
        """{"state": str, "members": int}."""
        raise Unsupported("describe_group")

    def delete_group(self, group: str) -> None:
        """Delete an (empty) group."""
        raise Unsupported("delete_group")

    def committed(self, group: str, topic: str, partitions: int) -> dict[int, int]:
        """Committed offsets of a group: partition -> offset (-1 when none)."""
        raise Unsupported("committed")

    # -- data --------------------------------------------------------------------------------
    def produce(self, topic: str, records: list[Record], *, compression: str = "none",
                acks: str = "all", idempotent: bool = False) -> list[tuple[int, int]]:
        """Send records and wait for delivery; returns (partition, offset) per record
        (offset -1 when acks=0)."""
        raise Unsupported("produce")

    def consume(self, topic: str, *, count: int, partitions: list[int], start: Start = "earliest",
                isolation: str = "read_uncommitted", timeout_s: float = 30.0) -> list[Record]:
        """Read with manual assignment (no group) until ``count`` records or the timeout."""
        raise Unsupported("consume")

    # -- consumer groups -----------------------------------------------------------------------
    def group_open(self, handle: str, group: str, topics: list[str], *, assignor: str = "range",
                   instance_id: str | None = None, protocol: str = "classic") -> None:
        """Create a subscribed group member, auto-commit off, offset reset earliest."""
        raise Unsupported("group_open")

    def group_poll(self, handle: str, timeout_s: float) -> list[Record]:
        """Poll once; returns records (possibly none)."""
        raise Unsupported("group_poll")

    def group_poll_many(self, handles: list[str], timeout_s: float) -> dict[str, list[Record]]:
        """Poll each member once; drivers whose members must poll at the same time override it."""
        return {h: self.group_poll(h, timeout_s) for h in handles}

    def group_assignment(self, handle: str) -> list[tuple[str, int]]:
        """Current assignment of the member."""
        raise Unsupported("group_assignment")

    def group_commit(self, handle: str) -> None:
        """Synchronously commit the consumed positions."""
        raise Unsupported("group_commit")

    def group_close(self, handle: str) -> None:
        """Leave the group and close."""
        raise Unsupported("group_close")

    # -- transactions --------------------------------------------------------------------------
    def txn_open(self, handle: str, transactional_id: str) -> None:
        """Create a transactional producer and init transactions."""
        raise Unsupported("txn_open")

    def txn_begin(self, handle: str) -> None:
        """Begin a transaction."""
        raise Unsupported("txn_begin")

    def txn_produce(self, handle: str, topic: str, records: list[Record]) -> None:
        """Send records inside the transaction (and flush)."""
        raise Unsupported("txn_produce")

    def txn_send_offsets(self, handle: str, group_handle: str, offsets: dict[tuple[str, int], int]) -> None:
        """Add the group member's offsets to the transaction."""
        raise Unsupported("txn_send_offsets")

    def txn_commit(self, handle: str) -> None:
        """Commit; raises ClientError(kind="fenced") when fenced."""
        raise Unsupported("txn_commit")

    def txn_abort(self, handle: str) -> None:
        """Abort the transaction."""
        raise Unsupported("txn_abort")

    # -- command-line tools ----------------------------------------------------------------
    def cli(self, args: list[str], stdin: bytes | None = None, timeout_s: float = 30.0) -> tuple[int, bytes, bytes]:
        """Run the client's command-line tool (kcat) with ``args``."""
        raise Unsupported("cli")

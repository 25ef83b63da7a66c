"""Drivers that live in another process (Java, kafkajs) speak JSON lines on stdin/stdout.

Request:  {"id": 1, "op": "produce", "args": {...}}
Response: {"id": 1, "ok": true, "result": ...} or {"id": 1, "ok": false, "kind": "...", "error": "..."}
Bytes travel base64-encoded (keys, values, header values); a process lives for the whole run
because JVM and node start-up is slow, and is restarted only after a hung scenario.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from compat.clients.base import Client, Record
from compat.errors import ClientError, Mismatch, Unsupported

logger = logging.getLogger(__name__)

# time allowed for the helper process to answer its "hello"
START_TIMEOUT_S = 60.0
# extra time on top of an operation's own timeout before the helper is declared hung
CALL_SLACK_S = 60.0


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def encode_records(records: list[Record]) -> list[dict]:
    """Records -> JSON-safe dicts."""
    out = []
    for r in records:
        item = {k: v for k, v in r.items() if k not in ("key", "value", "headers")}
        item["key"] = _b64(r.get("key"))
        item["value"] = _b64(r.get("value"))
        item["headers"] = [[k, _b64(v)] for k, v in r.get("headers", [])]
        out.append(item)
    return out


def decode_records(items: list[dict]) -> list[Record]:
    """JSON dicts from a helper -> records."""
    out = []
    for item in items:
        r = dict(item)
        r["key"] = _unb64(item.get("key"))
        r["value"] = _unb64(item.get("value"))
        r["headers"] = [(k, _unb64(v)) for k, v in item.get("headers", [])]
        out.append(r)
    return out


class RemoteClient(Client):
    """Client whose operations are executed by a helper process."""

    command: list[str] = []
    cwd: Path | None = None

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._next_id = 0
        self._version = "unknown"
        self._stderr = tempfile.TemporaryFile()

    # -- process lifecycle -----------------------------------------------------------------
    def start(self, bootstrap: str) -> None:
        """Start the helper process and wait for its hello line."""
        super().start(bootstrap)
        self._spawn()

    def _spawn(self) -> None:
        self._lines = queue.Queue()
        self._proc = subprocess.Popen(
            self.command + [self.bootstrap], cwd=self.cwd, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1)
        threading.Thread(target=self._pump, args=(self._proc, self._lines), daemon=True).start()
        hello = self._read(START_TIMEOUT_S)
        self._version = hello.get("version", "unknown")

    @staticmethod
    def _pump(proc: subprocess.Popen, lines: queue.Queue) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def _read(self, timeout_s: float) -> dict:
        while True:
            try:
                line = self._lines.get(timeout=timeout_s)
            except queue.Empty:
                raise TimeoutError(f"{self.name} helper did not answer within {timeout_s:.0f}s") from None
            if line is None:
                raise ClientError("crashed", f"{self.name} helper exited: {self._stderr_tail()}")
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)
            logger.debug("%s helper: %s", self.name, line)

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-800:].decode("utf-8", "replace")

    def stop(self) -> None:
        """Ask the helper to exit; kill it if it does not."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()

    def reset(self) -> None:
        """A scenario hung: kill the helper and start a fresh one."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
        self._spawn()

    def version(self) -> str:
        """Version reported by the helper."""
        return self._version

    def cleanup(self) -> None:
        """Close the helper's handles of the last scenario."""
        if self._proc is not None and self._proc.poll() is None:
            self.call("cleanup", timeout_s=30)

    def call(self, op: str, timeout_s: float = 30.0, **args: Any) -> Any:
        """Run one operation in the helper and return its result."""
        if self._proc is None or self._proc.poll() is not None:
            raise ClientError("crashed", f"{self.name} helper is not running: {self._stderr_tail()}")
        self._next_id += 1
        request = {"id": self._next_id, "op": op, "args": args}
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        try:
            response = self._read(timeout_s + CALL_SLACK_S)
        except TimeoutError as exc:
            # the helper is stuck inside the client library: its next answer would be stale
            self.reset()
            raise Mismatch(f"hang: {op} did not return ({exc})") from exc
        if response.get("id") != self._next_id:
            raise ClientError("protocol", f"answer to request {response.get('id')}, expected {self._next_id}")
        if response.get("ok"):
            return response.get("result")
        kind = response.get("kind", "error")
        if kind == "unsupported":
            raise Unsupported(response.get("error", op))
        raise ClientError(kind, response.get("error", ""))

    # -- operations ------------------------------------------------------------------------
    def metadata(self) -> dict:
        return self.call("metadata")

    def create_topic(self, topic: str, partitions: int = 1, configs: dict | None = None) -> None:
        self.call("create_topic", topic=topic, partitions=partitions, configs=configs or {})

    def delete_topic(self, topic: str) -> None:
        self.call("delete_topic", topic=topic)

    def list_topics(self) -> dict[str, int]:
        return self.call("list_topics")

    def create_partitions(self, topic: str, total: int) -> None:
        self.call("create_partitions", topic=topic, total=total)

    def describe_topic_config(self, topic: str) -> dict[str, str]:
        return self.call("describe_topic_config", topic=topic)

    def alter_topic_config(self, topic: str, updates: dict[str, str | None]) -> None:
        self.call("alter_topic_config", topic=topic, updates=updates)

    def delete_records(self, topic: str, partition: int, before: int) -> int:
        return self.call("delete_records", topic=topic, partition=partition, before=before)

    def list_offsets(self, topic: str, partition: int, spec: str | int) -> int:
        return self.call("list_offsets", topic=topic, partition=partition, spec=spec)

    def list_groups(self) -> list[str]:
        return self.call("list_groups")

    def describe_group(self, group: str) -> dict:
        return self.call("describe_group", group=group)

    def delete_group(self, group: str) -> None:
        self.call("delete_group", group=group)

    def committed(self, group: str, topic: str, partitions: int) -> dict[int, int]:
        result = self.call("committed", group=group, topic=topic, partitions=partitions)
        return {int(k): v for k, v in result.items()}

    def produce(self, topic: str, records: list[Record], *, compression: str = "none",
                acks: str = "all", idempotent: bool = False) -> list[tuple[int, int]]:
        result = self.call("produce", timeout_s=120, topic=topic, records=encode_records(records),
                           compression=compression, acks=acks, idempotent=idempotent)
        return [tuple(x) for x in result]

    def consume(self, topic: str, *, count: int, partitions: list[int], start: Any = "earliest",
                isolation: str = "read_uncommitted", timeout_s: float = 30.0) -> list[Record]:
        if isinstance(start, dict) and "timestamp" not in start:
            start = {"offsets": {str(k): v for k, v in start.items()}}
        result = self.call("consume", timeout_s=timeout_s, topic=topic, count=count,
                           partitions=partitions, start=start, isolation=isolation,
                           timeout_ms=int(timeout_s * 1000))
        return decode_records(result)

    def group_open(self, handle: str, group: str, topics: list[str], *, assignor: str = "range",
                   instance_id: str | None = None, protocol: str = "classic") -> None:
        self.call("group_open", handle=handle, group=group, topics=topics, assignor=assignor,
                  instance_id=instance_id, protocol=protocol)

    def group_poll(self, handle: str, timeout_s: float) -> list[Record]:
        return decode_records(self.call("group_poll", timeout_s=timeout_s, handle=handle,
                                        timeout_ms=int(timeout_s * 1000)))

    def group_assignment(self, handle: str) -> list[tuple[str, int]]:
        return [tuple(x) for x in self.call("group_assignment", handle=handle)]

    def group_commit(self, handle: str) -> None:
        self.call("group_commit", handle=handle)

    def group_close(self, handle: str) -> None:
        self.call("group_close", handle=handle)

    def txn_open(self, handle: str, transactional_id: str) -> None:
        self.call("txn_open", handle=handle, transactional_id=transactional_id)

    def txn_begin(self, handle: str) -> None:
        self.call("txn_begin", handle=handle)

    def txn_produce(self, handle: str, topic: str, records: list[Record]) -> None:
        self.call("txn_produce", handle=handle, topic=topic, records=encode_records(records))

    def txn_send_offsets(self, handle: str, group_handle: str, offsets: dict[tuple[str, int], int]) -> None:
        self.call("txn_send_offsets", handle=handle, group_handle=group_handle,
                  offsets=[[t, p, o] for (t, p), o in offsets.items()])

    def txn_commit(self, handle: str) -> None:
        self.call("txn_commit", handle=handle)

    def txn_abort(self, handle: str) -> None:
        self.call("txn_abort", handle=handle)

"""The Broker: builds the services of one process and runs them in one nursery.

Start order (docs/contracts.md, "Services started by the Broker"): LogManager, Controller
(metadata), GroupCoordinatorRuntime, then the listeners (`Server`). Once the listeners are
bound the broker registers itself with the controller (so Metadata names the real port),
logs one ready line and reports the bound endpoints through `task_status.started`.

The broker keeps partition logs in step with the metadata image: a listener on the
Controller creates the logs of new topics/partitions, deletes those of deleted topics and
pushes changed topic configs to the open logs.

`log_appended(topic, partition)` is how anything that appends wakes Fetch long polls: the
`AppendNotifier` keeps, per partition, the events of the fetches waiting on it.

Stop: `request_stop()` (signals, tests) -> Server.shutdown (stop accepting, finish requests
in hand) -> cancel the services -> LogManager.close(clean=True), which flushes, closes the
segments and writes the clean-shutdown marker.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterable

import trio

from kbroker.clock import Clock
from kbroker.config import Endpoint, topic_defaults
from kbroker.fetch_session import FetchSessionCache

logger = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 2.0  # in-flight requests get this long; the whole stop stays within 5 s

TopicPartition = tuple[str, int]


class AppendNotifier:
    """Wakes fetches waiting on partitions when records are appended to them."""

    def __init__(self) -> None:
        self._waiters: dict[TopicPartition, set[trio.Event]] = {}
        self._all: set[trio.Event] = set()

    def notify(self, topic: str, partition: int) -> None:
        """Records were appended to `topic`-`partition`: wake its waiters."""
        waiters = self._waiters.pop((topic, partition), None)
        if waiters:
            for event in waiters:
                event.set()

    def notify_all(self) -> None:
        """Wake every waiter (broker stopping)."""
        for event in list(self._all):
            event.set()

    async def wait(self, partitions: Iterable[TopicPartition], timeout_s: float) -> bool:
        """Wait until one of `partitions` is appended to, or `timeout_s`; True if woken.

        Callers check the logs and then call this without an await in between, so no
        append can slip between the check and the registration (trio is cooperative).
        """
        if timeout_s <= 0:
            return False
        event = trio.Event()
        keys = list(partitions)
        for key in keys:
            self._waiters.setdefault(key, set()).add(event)
        self._all.add(event)
        try:
            with trio.move_on_after(timeout_s):
                await event.wait()
        finally:
            self._all.discard(event)
            for key in keys:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(event)
                    if not waiters:
                        del self._waiters[key]
        return event.is_set()


def _dynamic_broker_configs(image: Any, node_id: int) -> tuple[dict, dict]:
    """(cluster-wide, this node's) dynamic broker configs of a metadata image."""
    per_broker = getattr(image, "per_broker_configs", {}) or {}
    return dict(getattr(image, "broker_configs", {}) or {}), dict(per_broker.get(node_id, {}))


class Broker:
    """Wiring of one kbroker process: config, clock, logs, controller, groups, server."""

    def __init__(self, config: Any, *, clock: Clock | None = None) -> None:
        import kbroker.handlers  # noqa: F401  (registers every API handler)
        from kbroker.coordinator.runtime import GroupCoordinatorRuntime
        from kbroker.log.log_scheduler import LogScheduler
        from kbroker.log.manager import LogManager
        from kbroker.metadata.controller import Controller
        from kbroker.server import Server

        self.config = config
        self.clock = clock or Clock()
        self.node_id: int = config.node_id
        self.topic_defaults: dict[str, str] = topic_defaults(config)
        self.logs = LogManager([Path(d) for d in config.log_dirs], self._log_props(config), self.clock)
        self.log_scheduler = LogScheduler(self.logs.all_logs, self.clock, config.raw)
        self.logs.retention_enabled = False  # the scheduler runs retention (with file.delete.delay.ms)
        self.controller = Controller(config, self.clock)
        self.groups = GroupCoordinatorRuntime(self)
        # issue 7: per-partition producer state and the transaction coordinator
        from kbroker.log.producer_state import ProducerStates
        from kbroker.txn.runtime import TransactionCoordinatorRuntime

        self.producers = ProducerStates(producer_id_expiration_ms=getattr(
            config, "producer_id_expiration_ms", 86_400_000))
        self.txn = TransactionCoordinatorRuntime(self)
        self.server = Server(self)
        self.fetch_sessions = FetchSessionCache(config.max_incremental_fetch_session_cache_slots,
                                                self.clock)
        self.appends = AppendNotifier()
        self.bound_endpoints: list[Endpoint] = []
        self.advertised_endpoints: list[Endpoint] = []
        self.stopping = False
        self._stop_requested = trio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Start every service in order, serve until `request_stop()`, then stop cleanly."""
        clean = False
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.logs.run)
                await nursery.start(self.log_scheduler.run)
                await nursery.start(self.controller.run)
                self.controller.add_listener(self._on_metadata)
                self._on_metadata(None, self.controller.image)
                await nursery.start(self.groups.run)
                await nursery.start(self.txn.run)
                self.bound_endpoints = await nursery.start(self.server.run)
                self.advertised_endpoints = self._advertised(self.bound_endpoints)
                await self._register()
                logger.info("kbroker ready: listening on %s, cluster.id=%s, node.id=%d",
                            ", ".join(e.uri() for e in self.bound_endpoints),
                            self.controller.image.cluster_id, self.node_id)
                task_status.started(self.bound_endpoints)
                await self._stop_requested.wait()
                logger.info("stopping node.id=%d", self.node_id)
                self.stopping = True
                self.appends.notify_all()
                await self.server.shutdown(SHUTDOWN_GRACE_S)
                nursery.cancel_scope.cancel()
            clean = True
        finally:
            with trio.CancelScope(shield=True):
                self._close_services(clean)
        stats = self.server.statistics()
        logger.info("stopped node.id=%d (clean=%s) connections=%d requests=%d", self.node_id, clean,
                    stats.connections_accepted, stats.requests_handled)

    def request_stop(self) -> None:
        """Begin a graceful stop (idempotent; safe from any task of this trio run)."""
        self._stop_requested.set()

    def _close_services(self, clean: bool) -> None:
        # The controller and the coordinator may hold logs of their own; close them first so
        # that the LogManager's clean-shutdown marker is written last.
        for service in (self.txn, self.groups, self.controller):
            close = getattr(service, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    logger.exception("closing %s failed", type(service).__name__)
                    clean = False
        self.log_scheduler.close()
        self.logs.close(clean=clean)

    def _advertised(self, bound: list[Endpoint]) -> list[Endpoint]:
        from kbroker.server import advertised_host

        by_name = {e.name: e for e in bound}
        result = []
        for endpoint in self.config.advertised_endpoints:
            listener = by_name.get(endpoint.name)
            port = endpoint.port or (listener.port if listener else 0)
            host = endpoint.host
            if not host or host in ("0.0.0.0", "::"):
                host = advertised_host(listener or endpoint)
            result.append(Endpoint(endpoint.name, host, port))
        return result

    async def _register(self) -> None:
        """Record this broker (with its advertised endpoints) in the metadata log."""
        register = getattr(self.controller, "register_broker", None)
        if register is None:
            return
        endpoint = self.advertised_endpoints[0]
        await register(node_id=self.node_id, host=endpoint.host, port=endpoint.port,
                       listener_name=endpoint.name, rack=self.config.broker_rack)

    # ------------------------------------------------------------------ data path helpers

    def log_appended(self, topic: str, partition: int) -> None:
        """Called after every append to a partition log: wakes Fetch long polls on it."""
        self.appends.notify(topic, partition)

    async def wait_for_append(self, partitions: Iterable[TopicPartition], timeout_s: float) -> bool:
        """Wait (at most `timeout_s`) until one of `partitions` gets records; True if it did."""
        if self.stopping:
            return False
        return await self.appends.wait(partitions, timeout_s)

    def partition_log(self, topic: Any, partition: int) -> Any:
        """The PartitionLog of a partition of `topic` (a TopicImage), opening it if needed.

        None when the image does not have the partition.
        """
        if partition not in topic.partitions:
            return None
        log = self.logs.get(topic.name, partition)
        if log is None:
            log = self.logs.get_or_create(topic.name, partition, topic.configs)
        return log

    # ------------------------------------------------------------------ metadata listener

    def _on_metadata(self, old: Any, new: Any) -> None:
        """Keep the partition logs in step with the image (called after each apply).

        Deletions first: a topic deleted and re-created under the same name in one batch
        of records must end up with a fresh, empty log.
        """
        if old is None or _dynamic_broker_configs(old, self.node_id) != _dynamic_broker_configs(new, self.node_id):
            # Dynamic broker configs are topic defaults too: new logs get them, open ones now.
            self.logs.default_props = self._log_props(self.config, new)
            if old is not None:
                for topic in new.topics_by_id.values():
                    self._update_topic_config(topic)
        old_topics = old.topics_by_id if old is not None else {}
        for topic_id, topic in old_topics.items():
            if topic_id not in new.topics_by_id:
                for partition in topic.partitions:
                    log = self.logs.get(topic.name, partition)
                    if log is not None:
                        self.log_scheduler.forget(log)
                    self.logs.delete_partition(topic.name, partition)
                    self.producers.forget(topic.name, partition)
                    self.appends.notify(topic.name, partition)
                self.fetch_sessions.forget_topic(topic.name)
                self.fetch_sessions.forget_topic(topic_id)
        for topic_id, topic in new.topics_by_id.items():
            before = old_topics.get(topic_id)
            if before is not None and before.partitions.keys() == topic.partitions.keys() \
                    and before.configs == topic.configs:
                continue
            for partition in topic.partitions:
                if before is None or partition not in before.partitions:
                    self.logs.get_or_create(topic.name, partition, topic.configs)
            if before is not None and before.configs != topic.configs:
                self._update_topic_config(topic)

    def _log_props(self, config: Any, image: Any = None) -> dict[str, str]:
        """Topic-level defaults for the logs: static broker config, then dynamic broker
        configs (cluster-wide, then this node's), each layer converted from broker keys; plus
        the kbroker-only log.flush.on.ack."""
        from kbroker.log.log_config import FLUSH_ON_ACK, topic_defaults_from_broker

        props = dict(self.topic_defaults)
        if image is not None:
            cluster, per_node = _dynamic_broker_configs(image, self.node_id)
            props.update(topic_defaults_from_broker(cluster))
            props.update(topic_defaults_from_broker(per_node))
        raw = getattr(config, "raw", {}) or {}
        if FLUSH_ON_ACK in raw:
            props[FLUSH_ON_ACK] = str(raw[FLUSH_ON_ACK])
        return props

    def _update_topic_config(self, topic: Any) -> None:
        config = self.logs.config_for(topic.configs)
        for partition in topic.partitions:
            log = self.logs.get(topic.name, partition)
            if log is not None:
                log.update_config(config)

    def add_metadata_listener(self, fn: Callable[[Any, Any], None]) -> None:
        """Convenience for other services: forward to Controller.add_listener."""
        self.controller.add_listener(fn)

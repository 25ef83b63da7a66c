"""Listeners, the connection nursery, signals and graceful stop.

Nursery tree (STYLE.md convention 6, hypercorn's shape):

    Broker.run nursery
      +- LogManager.run, Controller.run, GroupCoordinatorRuntime.run
      +- Server.run
           +- handler nursery: one Connection.run per client
                +- accept nursery: one accept loop per listener socket

Graceful stop (`Server.shutdown`): cancel the accept loops (no new clients), ask every
connection to close once its request in hand is answered (idle ones close at once), give
them `grace_s`, then cancel what is left. Appends are synchronous file writes between
awaits, so an append is never cut in half by the cancellation.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from kbroker.config import Endpoint
from kbroker.connection import Connection

if TYPE_CHECKING:
    from kbroker.broker import Broker

logger = logging.getLogger(__name__)

IDLE_SWEEPS = 10      # idle-connection sweeps per connections.max.idle.ms
ACCEPT_RETRY_S = 0.1  # back-off after EMFILE/ENFILE so the accept loop does not spin
RESOURCE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


@dataclass(frozen=True, slots=True)
class ServerStatistics:
    """A snapshot of the server's counters."""

    connections_open: int
    connections_accepted: int
    requests_handled: int  # by connections already closed plus those still open


class ListenerError(OSError):
    """A configured listener could not be bound (address in use, unknown host, ...)."""


class Server:
    """Binds the configured listeners and serves a Connection per accepted client."""

    def __init__(self, broker: "Broker") -> None:
        self.broker = broker
        self.connections: set[Connection] = set()
        self._accept_scope: trio.CancelScope | None = None
        self._handler_scope: trio.CancelScope | None = None
        self._finished = trio.Event()
        self._accepted = 0
        self._requests_closed = 0  # requests handled by connections that have closed

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Bind every listener, report the bound endpoints, then accept until shutdown."""
        bound: list[Endpoint] = []
        listeners: list[trio.SocketListener] = []
        backlog = self.broker.config.socket_listen_backlog_size
        try:
            for endpoint in self.broker.config.listener_endpoints:
                try:
                    sockets = await trio.open_tcp_listeners(endpoint.port, host=endpoint.host or None,
                                                            backlog=backlog)
                except OSError as exc:
                    raise ListenerError(f"cannot listen on {endpoint.uri()}: {exc.strerror or exc}") from exc
                listeners.extend(sockets)
                port = sockets[0].socket.getsockname()[1]
                bound.append(Endpoint(endpoint.name, endpoint.host, port))
        except BaseException:
            for listener in listeners:
                await listener.aclose()
            raise
        try:
            async with trio.open_nursery() as handler_nursery:
                self._handler_scope = handler_nursery.cancel_scope
                async with trio.open_nursery() as accept_nursery:
                    self._accept_scope = accept_nursery.cancel_scope
                    for listener in listeners:
                        accept_nursery.start_soon(self._accept_loop, listener, handler_nursery)
                    accept_nursery.start_soon(self._reap_idle_connections)
                    task_status.started(bound)
        finally:
            self._finished.set()

    async def _accept_loop(self, listener: trio.SocketListener, handlers: trio.Nursery) -> None:
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in RESOURCE_ERRNOS:
                        raise
                    logger.warning("accept failed (%s); retrying in %.1fs", exc, ACCEPT_RETRY_S)
                    await trio.sleep(ACCEPT_RETRY_S)
                    continue
                handlers.start_soon(self._serve, stream)

    async def _reap_idle_connections(self) -> None:
        """connections.max.idle.ms: close connections without a request for that long.

        One periodic sweep instead of a deadline per connection, which would cost every
        request a cancel-scope update; a connection is closed between idle_ms and
        idle_ms * (1 + 1/IDLE_SWEEPS) after its last request.
        """
        idle_s = self.broker.config.connections_max_idle_ms / 1000
        while True:
            await trio.sleep(idle_s / IDLE_SWEEPS)
            cutoff = trio.current_time() - idle_s
            for connection in list(self.connections):
                if connection.close_if_idle_since(cutoff):
                    logger.debug("idle connection reaped peer=%s", connection.peer)

    async def _serve(self, stream: trio.SocketStream) -> None:
        try:
            host, port = stream.socket.getpeername()[:2]
            peer = f"{host}:{port}"
        except OSError:
            peer = "?"
        connection = Connection(self.broker, stream, peer)
        self.connections.add(connection)
        self._accepted += 1
        logger.debug("connection opened peer=%s", peer)
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)
            self._requests_closed += connection.requests_handled
            logger.debug("connection closed peer=%s requests=%d", peer, connection.requests_handled)

    def statistics(self) -> ServerStatistics:
        """Connections open and accepted so far, requests handled."""
        return ServerStatistics(len(self.connections), self._accepted,
                                self._requests_closed + sum(c.requests_handled for c in self.connections))

    def stop_accepting(self) -> None:
        """Close the listening sockets: new clients are refused from now on."""
        if self._accept_scope is not None:
            self._accept_scope.cancel()

    async def shutdown(self, grace_s: float) -> None:
        """Stop accepting, let in-flight requests finish for up to `grace_s`, then cancel."""
        self.stop_accepting()
        for connection in list(self.connections):
            connection.close_when_idle()
        with trio.move_on_after(grace_s):
            await self._finished.wait()
        if not self._finished.is_set():
            logger.warning("%d connections still busy after %.1fs; cancelling them",
                           len(self.connections), grace_s)
            if self._handler_scope is not None:
                self._handler_scope.cancel()
            await self._finished.wait()


def advertised_host(endpoint: Endpoint) -> str:
    """The host to give clients for a listener bound to `endpoint.host`."""
    if endpoint.host in ("", "0.0.0.0", "::"):
        return socket.getfqdn()
    return endpoint.host


async def run_until_signalled(broker: "Broker", *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run `broker` until SIGINT/SIGTERM, then stop it gracefully (CLI entry point)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def run_broker() -> None:
                try:
                    await broker.run()
                finally:
                    nursery.cancel_scope.cancel()  # broker ended on its own: stop listening for signals

            nursery.start_soon(run_broker)
            task_status.started()
            stopping = False
            async for signum in signals:
                name = signal.Signals(signum).name
                if not stopping:
                    logger.info("received %s; stopping", name)
                    broker.request_stop()
                    stopping = True
                else:  # a second signal: stop now, without waiting for clients
                    logger.warning("received %s again; stopping at once", name)
                    nursery.cancel_scope.cancel()

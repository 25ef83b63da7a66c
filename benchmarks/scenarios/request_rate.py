"""request-rate: hand-built Produce v8 requests, each one 100-byte record, acks=1, over raw
sockets: 1 connection x 1 in flight, 1 x 5, and 4 connections x 5 in flight.

The request bytes are encoded once with ``protocol.encode_request`` (the batch by
``protocol.record_codec.build_batch``); only the correlation id is patched per send, so the
client spends its time on the socket, not on encoding. Responses are kept raw during the
timed window and decoded afterwards to count errors.
"""

from __future__ import annotations

import logging
import selectors
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass, field

from benchmarks.measurement import Measurement
from benchmarks.procstat import self_cpu_seconds
from benchmarks.scenarios.common import Context, create_topic, fresh_topic
from benchmarks.wire import CLIENT_ID, SIZE
from protocol import ApiKey, decode_response, encode_request
from protocol.record_codec import build_batch

logger = logging.getLogger(__name__)

PRODUCE_VERSION = 8
VALUE_SIZE = 100
CASES = ((1, 1), (1, 5), (4, 5))      # (connections, requests in flight per connection)
CORRELATION_ID_AT = 4 + 2 + 2         # size prefix, api key, api version
CORRELATION = struct.Struct(">i")
WARMUP_S = 0.2
DURATION_S = 5.0   # per case; 25k+ requests even at kbroker's 1x1 rate


def produce_request(topic: str) -> bytearray:
    """One framed Produce v8 request (acks=1) carrying one 100-byte record in partition 0."""
    batch = build_batch([(None, bytes(VALUE_SIZE))])
    body = {"transactional_id": None, "acks": 1, "timeout_ms": 30_000,
            "topic_data": [{"name": topic,
                            "partition_data": [{"index": 0, "records": batch}]}]}
    payload = encode_request(ApiKey.PRODUCE, PRODUCE_VERSION, 0, CLIENT_ID, body)
    return bytearray(SIZE.pack(len(payload)) + payload)


@dataclass
class _Conn:
    sock: socket.socket
    template: bytearray
    next_id: int = 0
    sent_at: deque = field(default_factory=deque)    # (correlation id, perf_counter) in order
    buffer: bytearray = field(default_factory=bytearray)

    def send_one(self) -> None:
        self.next_id += 1
        CORRELATION.pack_into(self.template, CORRELATION_ID_AT, self.next_id)
        self.sent_at.append((self.next_id, time.perf_counter()))
        self.sock.sendall(self.template)


def drive(host: str, port: int, topic: str, connections: int, in_flight: int,
          duration_s: float, keep_responses: bool = True
          ) -> tuple[int, float, list[float], list[bytes]]:
    """Keep ``in_flight`` requests outstanding on each connection for ``duration_s``.

    Returns (answered by the deadline, seconds, latencies_ms, raw responses). Responses
    must come back in order on each connection (Kafka's guarantee); a mismatch raises.
    """
    template = produce_request(topic)
    conns = []
    selector = selectors.DefaultSelector()
    for _ in range(connections):
        sock = socket.create_connection((host, port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Conn(sock, bytearray(template))
        conns.append(conn)
        selector.register(sock, selectors.EVENT_READ, conn)
    latencies_ms: list[float] = []
    responses: list[bytes] = []
    answered = 0
    try:
        for conn in conns:
            for _ in range(in_flight):
                conn.send_one()
        start = time.perf_counter()
        deadline = start + duration_s
        stopping = False
        while any(conn.sent_at for conn in conns):
            for key, _ in selector.select(timeout=30):
                conn = key.data
                chunk = conn.sock.recv(1 << 20)
                if not chunk:
                    raise ConnectionError("broker closed the connection")
                conn.buffer += chunk
                while len(conn.buffer) >= 4:
                    size = SIZE.unpack_from(conn.buffer)[0]
                    if len(conn.buffer) < 4 + size:
                        break
                    received_id = CORRELATION.unpack_from(conn.buffer, 4)[0]
                    expected_id, sent_at = conn.sent_at.popleft()
                    if received_id != expected_id:
                        raise ConnectionError(
                            f"response {received_id} arrived when {expected_id} was due")
                    now = time.perf_counter()
                    latencies_ms.append((now - sent_at) * 1000.0)
                    if keep_responses:
                        responses.append(bytes(conn.buffer[4:4 + size]))
                    del conn.buffer[:4 + size]
                    answered += 1
                    if not stopping and now >= deadline:
                        # Requests still in flight are drained but not counted.
                        stopping = True
                        end, counted = now, answered
                    if not stopping:
                        conn.send_one()
        if not stopping:
            end, counted = time.perf_counter(), answered
        return counted, end - start, latencies_ms, responses
    finally:
        selector.close()
        for conn in conns:
            conn.sock.close()


def count_errors(responses: list[bytes]) -> int:
    """Produce responses whose partition carries a non-zero error code."""
    errors = 0
    for raw in responses:
        _, body = decode_response(ApiKey.PRODUCE, PRODUCE_VERSION, raw)
        for topic in body["responses"]:
            for partition in topic["partition_responses"]:
                if partition["error_code"] != 0:
                    errors += 1
    return errors


def run(ctx: Context) -> list[Measurement]:
    """One row per (connections, in flight) case, each on its own fresh broker."""
    rows = []
    for connections, in_flight in CASES:
        row = Measurement(f"request-rate {connections}x{in_flight}", ctx.spec.name, ctx.run)
        with ctx.broker() as broker:
            topic = fresh_topic("rate")
            create_topic(broker.bootstrap, topic, 1)
            warm = drive(broker.host, broker.port, topic, 1, 1, WARMUP_S,
                         keep_responses=False)[0]
            logger.debug("warm-up answered %d requests", warm)
            cpu_start = self_cpu_seconds()
            with ctx.monitor(broker, row.scenario) as monitor:
                answered, seconds, latencies, responses = drive(
                    broker.host, broker.port, topic, connections, in_flight,
                    ctx.seconds(DURATION_S, 0.5))
            cpu = self_cpu_seconds() - cpu_start
            row.metrics.update(records=answered, seconds=seconds, rate=answered / seconds,
                               client_cpu_pct=100.0 * cpu / seconds)
            row.add_latencies(latencies)
            row.add_usage(monitor.usage, answered)
            errors = count_errors(responses)
            row.metrics["errors"] = errors
            if errors:
                row.error = f"{errors} of {answered} produce responses carried an error code"
        rows.append(row)
    return rows

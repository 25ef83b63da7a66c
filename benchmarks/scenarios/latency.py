"""e2e-latency: one record per millisecond for 10 s (linger.ms=0, acks=all), a consumer with
librdkafka's default fetch.wait.max.ms=500, latency from send to receive."""

from __future__ import annotations

import logging
import struct
import threading
import time

from benchmarks.measurement import Measurement
from benchmarks.procstat import self_cpu_seconds
from benchmarks.scenarios.common import CLIENT_LOG_LEVEL, Context, close_producer, create_topic, \
    fresh_topic

logger = logging.getLogger(__name__)

STAMP = struct.Struct(">q")   # perf_counter_ns at send, in the first 8 bytes of the value
VALUE_SIZE = 100
INTERVAL_S = 0.001
DRAIN_S = 5.0                 # after the last send, how long to wait for the tail


def run(ctx: Context) -> list[Measurement]:
    """Measure send -> receive latency percentiles for a steady 1,000 records/s."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    row = Measurement("e2e-latency", ctx.spec.name, ctx.run)
    duration_s = ctx.seconds(10, 1)
    with ctx.broker() as broker:
        topic = fresh_topic("e2e")
        create_topic(broker.bootstrap, topic, 1)
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0,
                             "acks": "all", "log_level": CLIENT_LOG_LEVEL})
        consumer = Consumer({"bootstrap.servers": broker.bootstrap,
                             "group.id": f"{topic}-reader", "enable.auto.commit": False,
                             "log_level": CLIENT_LOG_LEVEL})
        consumer.assign([TopicPartition(topic, 0, 0)])
        producer.list_topics(topic, timeout=10)
        latencies_ms: list[float] = []
        stop = threading.Event()
        consumer_errors: list[str] = []

        def receive() -> None:
            # librdkafka releases the GIL while it waits, so this thread costs the sender little.
            # poll(), not consume(n): consume waits for n messages or its timeout, which
            # would add up to the timeout to every latency.
            while not stop.is_set():
                message = consumer.poll(0.1)
                if message is None:
                    continue
                now = time.perf_counter_ns()
                if message.error() is not None:
                    consumer_errors.append(str(message.error()))
                    continue
                sent_ns = STAMP.unpack_from(message.value())[0]
                latencies_ms.append((now - sent_ns) / 1e6)

        receiver = threading.Thread(target=receive, daemon=True)
        receiver.start()
        padding = bytes(VALUE_SIZE - STAMP.size)
        sent = 0
        try:
            cpu_start = self_cpu_seconds()
            with ctx.monitor(broker, row.scenario) as monitor:
                start = time.perf_counter()
                # Absolute schedule: a late send does not delay the following ones.
                total = int(duration_s / INTERVAL_S)
                for index in range(total):
                    due = start + index * INTERVAL_S
                    delay = due - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    producer.produce(topic, STAMP.pack(time.perf_counter_ns()) + padding)
                    producer.poll(0)
                    sent += 1
                producer.flush(30)
                deadline = time.monotonic() + DRAIN_S
                while len(latencies_ms) < sent and time.monotonic() < deadline:
                    time.sleep(0.01)
            cpu = self_cpu_seconds() - cpu_start
        finally:
            stop.set()
            receiver.join()
            consumer.close()
            close_producer(producer)
        seconds = monitor.usage.wall_seconds if monitor.usage else duration_s
        row.metrics.update(records=len(latencies_ms), sent=sent, seconds=seconds,
                           rate=len(latencies_ms) / seconds,
                           client_cpu_pct=100.0 * cpu / seconds)
        row.add_latencies(latencies_ms)
        if latencies_ms:
            row.metrics["max_ms"] = max(latencies_ms)
        row.add_usage(monitor.usage, len(latencies_ms))
        if len(latencies_ms) < sent or consumer_errors:
            row.error = f"received {len(latencies_ms)} of {sent}; errors {consumer_errors[:3]}"
    return [row]

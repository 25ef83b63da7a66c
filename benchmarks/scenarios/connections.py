"""connections: 1,000 idle connections, each answered one ApiVersions; RSS growth per
connection."""

from __future__ import annotations

import logging
import resource
import time

from benchmarks.measurement import Measurement
from benchmarks.procstat import rss_bytes
from benchmarks.scenarios.common import Context
from benchmarks.wire import WireConnection
from protocol import ApiKey

logger = logging.getLogger(__name__)

API_VERSIONS_VERSION = 3
API_VERSIONS_BODY = {"client_software_name": "kbroker-bench", "client_software_version": "1"}


def raise_fd_limit(needed: int) -> None:
    """Lift this process's soft open-files limit towards the hard one (brokers inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def run(ctx: Context) -> list[Measurement]:
    """Open the connections one after another, each answered before the next opens."""
    count = ctx.size(1000, 100)
    raise_fd_limit(2 * count + 256)
    row = Measurement("connections", ctx.spec.name, ctx.run)
    with ctx.broker() as broker:
        with WireConnection(broker.host, broker.port) as warm:
            warm.request(ApiKey.API_VERSIONS, API_VERSIONS_VERSION, API_VERSIONS_BODY)
        open_conns: list[WireConnection] = []
        answered = 0
        try:
            with ctx.monitor(broker, row.scenario) as monitor:
                start = time.perf_counter()
                for _ in range(count):
                    conn = WireConnection(broker.host, broker.port)
                    open_conns.append(conn)
                    response = conn.request(ApiKey.API_VERSIONS, API_VERSIONS_VERSION,
                                            API_VERSIONS_BODY)
                    if response["error_code"] == 0:
                        answered += 1
                seconds = time.perf_counter() - start
                rss_after = rss_bytes(broker.pid) if broker.pid is not None else 0
        finally:
            for conn in open_conns:
                conn.close()
        row.metrics.update(records=answered, connections=count, seconds=seconds,
                           rate=answered / seconds)
        usage = monitor.usage
        row.add_usage(usage, answered)
        if usage is not None:
            row.metrics["rss_kb_per_conn"] = (rss_after - usage.rss_start_bytes) / 1024 / count
        if answered < count:
            row.error = f"{answered} of {count} connections answered"
    return [row]

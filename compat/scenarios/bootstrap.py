"""Bootstrap: ApiVersions (every client negotiates it first), metadata, cluster id, controller."""

from __future__ import annotations

from compat.clients.base import Client
from compat.scenarios import Context, scenario
from compat.scenarios.checks import expect


@scenario("bootstrap", requires=("admin",), timeout_s=60)
def bootstrap(client: Client, ctx: Context) -> None:
    """Negotiate versions, read brokers, cluster id and controller."""
    md = client.metadata()
    brokers = md.get("brokers") or []
    expect(len(brokers) >= 1, f"no brokers in metadata: {md!r}")
    ids = {b["id"] for b in brokers}
    expect(all(isinstance(b["port"], int) and 0 < b["port"] < 65536 for b in brokers),
           f"bad broker ports: {brokers!r}")
    port = int(ctx.bootstrap.rsplit(":", 1)[1])
    expect(any(b["port"] == port for b in brokers),
           f"bootstrap port {port} not among advertised brokers {brokers!r}")
    cluster_id = md.get("cluster_id")
    expect(isinstance(cluster_id, str) and cluster_id != "", f"missing cluster id: {cluster_id!r}")
    controller = md.get("controller_id")
    # librdkafka and kafkajs do not expose the controller; when they do it must be a broker
    if controller is not None:
        expect(controller in ids, f"controller {controller} is not one of the brokers {sorted(ids)}")

"""Compression codecs: the broker stores and serves compressed batches intact."""

from __future__ import annotations

from compat.clients.base import Client
from compat.scenarios import Context, scenario
from compat.scenarios.checks import check_exactly_once_in_order, numbered

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


def _make(codec: str):
    def run(client: Client, ctx: Context) -> None:
        topic = ctx.topic()
        client.create_topic(topic, 2)
        # repetitive values so that every codec really compresses
        records = numbered(400, partitions=2, prefix=f"{codec}-compressible-", value_size=300)
        client.produce(topic, records, compression=codec)
        got = client.consume(topic, count=len(records), partitions=[0, 1])
        check_exactly_once_in_order(records, got)
    run.__doc__ = f"400 records produced with {codec} compression come back intact."
    return run


for _codec in CODECS:
    scenario(f"compression_{_codec}", requires=(f"compression:{_codec}",), timeout_s=60)(_make(_codec))

"""Registry from API key to handler; ApiVersions is derived from it.

Each handler module declares the versions it serves beside its code:

    @handler(ApiKey.METADATA, 0, 12)
    async def handle_metadata(ctx: RequestContext, request: dict) -> dict: ...

A handler returns the response body (a mapping) or None when no response is sent
(Produce with acks=0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

if TYPE_CHECKING:
    from kbroker.broker import Broker

Handler = Callable[["RequestContext", dict], Awaitable[dict | None]]


@dataclass(frozen=True, slots=True)
class HandlerEntry:
    """A registered handler and the version range it serves."""

    api_key: int
    min_version: int
    max_version: int
    fn: Handler


@dataclass(slots=True)
class RequestContext:
    """What a handler knows about the request beyond its body."""

    broker: "Broker"
    header: dict
    api_version: int
    client_id: str | None
    peer: str
    connection: dict[str, Any] = field(default_factory=dict)  # per-connection state


class CloseConnection(Exception):
    """Raised by a handler to close the client's connection without answering.

    Kafka does this for Produce with acks=0 when a partition fails: the producer learns of
    the failure only through the disconnect.
    """


HANDLERS: dict[int, HandlerEntry] = {}


def handler(api_key: int, min_version: int, max_version: int) -> Callable[[Handler], Handler]:
    """Register `fn` as the handler of `api_key` for versions min..max."""

    def register(fn: Handler) -> Handler:
        if api_key in HANDLERS:
            raise RuntimeError(f"api key {api_key} registered twice")
        HANDLERS[int(api_key)] = HandlerEntry(int(api_key), min_version, max_version, fn)
        return fn

    return register


def supported_versions() -> dict[int, tuple[int, int]]:
    """The (min, max) version of every served API key, as ApiVersions advertises them."""
    return {key: (e.min_version, e.max_version) for key, e in sorted(HANDLERS.items())}

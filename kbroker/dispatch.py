"""Registry from API key to handler; ApiVersions is derived from it.

Each handler module declares the versions it serves beside its code:

    @handler(ApiKey.METADATA, 0, 12)
    async def handle_metadata(ctx: RequestContext, request: dict) -> dict: ...

A handler returns the response body (a mapping) or None when no response is sent
(Produce with acks=0).

Handler modules are imported on first use, not at start-up (most of a broker's import time
went to handlers a client may never call). `register_lazy` puts a stand-in entry with the
advertised version range under each key; its first call imports the module, whose
`@handler` replaces the stand-in, and from then on HANDLERS holds the real function, so
the request path pays nothing after the first call.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

if TYPE_CHECKING:
    from kbroker.broker import Broker

logger = logging.getLogger(__name__)

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

# api key -> module of the stand-in entries still in HANDLERS (not imported yet)
_LAZY: dict[int, str] = {}


def handler(api_key: int, min_version: int, max_version: int) -> Callable[[Handler], Handler]:
    """Register `fn` as the handler of `api_key` for versions min..max."""

    def register(fn: Handler) -> Handler:
        key = int(api_key)
        existing = HANDLERS.get(key)
        if existing is not None:
            if _LAZY.get(key) != fn.__module__:
                raise RuntimeError(f"api key {key} registered twice")
            if (existing.min_version, existing.max_version) != (min_version, max_version):
                # ApiVersions has advertised the table's range: it must be what is served
                raise RuntimeError(
                    f"api key {key}: {fn.__module__} serves v{min_version}-{max_version} but "
                    f"kbroker.handlers.REGISTRY advertises v{existing.min_version}-"
                    f"{existing.max_version}; update REGISTRY")
            del _LAZY[key]
        HANDLERS[key] = HandlerEntry(key, min_version, max_version, fn)
        return fn

    return register


def register_lazy(api_key: int, min_version: int, max_version: int, module: str) -> None:
    """Advertise `api_key` v min..max now; import `module` (which registers it) on first call.

    A key whose module is already imported keeps its real entry.
    """
    key = int(api_key)
    if key in HANDLERS:
        return

    async def load_and_call(ctx: "RequestContext", request: dict) -> dict | None:
        return await _load(key).fn(ctx, request)

    load_and_call.__qualname__ = f"lazy_{module.rsplit('.', 1)[-1]}_{key}"
    HANDLERS[key] = HandlerEntry(key, min_version, max_version, load_and_call)
    _LAZY[key] = module


def _load(api_key: int) -> HandlerEntry:
    """Import the module behind a stand-in entry; returns the real entry it registered."""
    module = _LAZY.get(api_key)
    if module is not None:
        logger.debug("loading handler module %s for api key %d", module, api_key)
        importlib.import_module(module)  # synchronous: no other request runs meanwhile
        if api_key in _LAZY:
            raise RuntimeError(f"{module} did not register api key {api_key}")
    return HANDLERS[api_key]


def is_loaded(api_key: int) -> bool:
    """True once the real handler of `api_key` is registered (not a stand-in)."""
    return api_key in HANDLERS and api_key not in _LAZY


def supported_versions() -> dict[int, tuple[int, int]]:
    """The (min, max) version of every served API key, as ApiVersions advertises them."""
    return {key: (e.min_version, e.max_version) for key, e in sorted(HANDLERS.items())}

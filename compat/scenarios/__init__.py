"""Scenario registry: each scenario is a function of (client, context) that raises
``Mismatch`` when the broker misbehaves.

Feature tags a scenario can require (a client lists the ones it has); all but the
command-line scenarios also require "data" (produce/consume API):
admin, configs, incremental_alter, delete_records, committed, groups_admin, list_offsets, headers, timestamps,
compression:<codec>, acks0, idempotent, groups, static_membership, cooperative,
consumer_protocol, txn, cli.
"""

from __future__ import annotations

import importlib
import uuid
from dataclasses import dataclass, field
from typing import Callable

from compat.clients.base import Client

MODULES = ("bootstrap", "produce_consume", "compression", "acks", "replay", "admin", "groups",
           "txn", "kcat_cli")


@dataclass
class Context:
    """Per-scenario state: fresh topic/group names and the broker address."""

    client: Client
    bootstrap: str
    scenario: str
    _token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def topic(self, tag: str = "t") -> str:
        """A topic name nobody used before."""
        return f"compat-{self.client.name}-{self.scenario}-{tag}-{self._token}".replace("_", "-")

    def group(self, tag: str = "g") -> str:
        """A group id nobody used before."""
        return f"compat-{self.client.name}-{self.scenario}-{tag}-{self._token}"


@dataclass(frozen=True)
class Scenario:
    """A named check with the client features it needs and a time limit."""

    name: str
    func: Callable[[Client, Context], None]
    requires: frozenset[str]
    timeout_s: float
    doc: str


REGISTRY: dict[str, Scenario] = {}


def scenario(name: str, *, requires: tuple[str, ...] = (), timeout_s: float = 60.0
             ) -> Callable[[Callable[[Client, Context], None]], Callable[[Client, Context], None]]:
    """Register a scenario function."""
    def register(func: Callable[[Client, Context], None]) -> Callable[[Client, Context], None]:
        assert name not in REGISTRY, f"duplicate scenario {name}"
        # every scenario but the command-line ones drives the producer/consumer API ("data")
        needs = frozenset(requires) | (frozenset() if "cli" in requires else {"data"})
        REGISTRY[name] = Scenario(name, func, needs, timeout_s,
                                  (func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else "")
        return func
    return register


def load_all() -> dict[str, Scenario]:
    """Import every scenario module and return the registry."""
    for module in MODULES:
        importlib.import_module(f"compat.scenarios.{module}")
    return REGISTRY

"""API handlers, one module per API family; importing this package advertises them all.

Handler modules load on first use: importing the package only puts a stand-in entry for
every key of `REGISTRY` into `kbroker.dispatch.HANDLERS` (`dispatch.register_lazy`), so
ApiVersions advertises every API with its exact version range from the first request,
while the modules (and the coordinators, config views and codecs they pull in) are imported
when a client first calls one of their APIs. Each module's own `@handler` decorators stay
the source of truth: a module that registers a range other than REGISTRY's fails loudly,
and tests/server/test_startup_registry.py checks the table against every module.

A module on disk that REGISTRY does not name is imported at once (it still works, only
not lazily); the same test fails until the table lists it. `load_all()` imports every
module, as tests and tools need.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil

from kbroker.dispatch import register_lazy

logger = logging.getLogger(__name__)

#: api key -> (handler module, min version, max version): what ApiVersions advertises
#: before the module is imported. Must match each module's @handler registrations.
REGISTRY: dict[int, tuple[str, int, int]] = {
    0: ("produce", 0, 11),
    1: ("fetch", 0, 17),
    2: ("list_offsets", 0, 9),
    3: ("metadata", 0, 12),
    8: ("groups", 0, 9),             # OffsetCommit
    9: ("groups", 0, 9),             # OffsetFetch
    10: ("groups", 0, 6),            # FindCoordinator
    11: ("groups", 0, 9),            # JoinGroup
    12: ("groups", 0, 4),            # Heartbeat
    13: ("groups", 0, 5),            # LeaveGroup
    14: ("groups", 0, 5),            # SyncGroup
    15: ("groups", 0, 5),            # DescribeGroups
    16: ("groups", 0, 5),            # ListGroups
    18: ("api_versions", 0, 4),
    19: ("topics", 0, 7),            # CreateTopics
    20: ("topics", 0, 6),            # DeleteTopics
    21: ("delete_records", 0, 2),
    22: ("transactions", 0, 5),      # InitProducerId
    23: ("offset_for_leader_epoch", 0, 4),
    24: ("transactions", 0, 5),      # AddPartitionsToTxn
    25: ("transactions", 0, 4),      # AddOffsetsToTxn
    26: ("transactions", 0, 4),      # EndTxn
    27: ("transactions", 0, 1),      # WriteTxnMarkers
    28: ("transactions", 0, 4),      # TxnOffsetCommit
    32: ("configs", 0, 4),           # DescribeConfigs
    33: ("configs", 0, 2),           # AlterConfigs
    35: ("describe_log_dirs", 0, 4),
    37: ("topics", 0, 3),            # CreatePartitions
    42: ("groups", 0, 2),            # DeleteGroups
    44: ("configs", 0, 1),           # IncrementalAlterConfigs
    47: ("groups", 0, 0),            # OffsetDelete
    60: ("metadata", 0, 1),          # DescribeCluster
    61: ("transactions", 0, 0),      # DescribeProducers
    65: ("transactions", 0, 0),      # DescribeTransactions
    66: ("transactions", 0, 1),      # ListTransactions
    68: ("groups", 0, 1),            # ConsumerGroupHeartbeat (v1: Kafka 4.0 overlay)
    69: ("groups", 0, 1),            # ConsumerGroupDescribe (v1: Kafka 4.0 overlay)
}


def module_names() -> list[str]:
    """The handler modules on disk, sorted."""
    return sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))


def load_all() -> list[str]:
    """Import every handler module of the package; returns their names, sorted."""
    names = module_names()
    for name in names:
        importlib.import_module(f"{__name__}.{name}")
    return names


def install() -> None:
    """Advertise every REGISTRY key lazily; import at once any module the table misses."""
    for api_key, (module, low, high) in REGISTRY.items():
        register_lazy(api_key, low, high, f"{__name__}.{module}")
    known = {module for module, _, _ in REGISTRY.values()}
    for name in module_names():
        if name not in known:
            # correctness first: an unlisted module's APIs must still be served
            logger.warning("handler module %s is not in kbroker.handlers.REGISTRY; importing it now",
                           name)
            importlib.import_module(f"{__name__}.{name}")


install()

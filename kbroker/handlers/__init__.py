"""API handlers, one module per API family; importing this package registers them all.

`load_all()` imports every handler module so that its `@handler` decorators fill
`kbroker.dispatch.HANDLERS`. Modules another engineer has not written yet are skipped
(only a missing module itself is tolerated; an error inside a module still raises).
"""

from __future__ import annotations

import importlib

HANDLER_MODULES = (
    "api_versions",
    "produce",
    "fetch",
    "list_offsets",
    "offset_for_leader_epoch",
    "describe_log_dirs",
    "metadata",
    "topics",
    "configs",
    "groups",
    "offsets",
    "txn",
    "quorum",
)


def load_all() -> list[str]:
    """Import every handler module present; returns the names imported."""
    loaded = []
    for name in HANDLER_MODULES:
        qualified = f"{__name__}.{name}"
        try:
            importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name != qualified:
                raise
            continue
        loaded.append(name)
    return loaded


load_all()

"""API handlers, one module per API family; importing this package registers them all.

`load_all()` imports every module of this package (found on disk, so a new handler module
registers itself without being listed anywhere), and their `@handler` decorators fill
`kbroker.dispatch.HANDLERS`, from which ApiVersions is computed.
"""

from __future__ import annotations

import importlib
import pkgutil


def load_all() -> list[str]:
    """Import every handler module of the package; returns their names, sorted."""
    names = sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))
    for name in names:
        importlib.import_module(f"{__name__}.{name}")
    return names


load_all()

"""CRC-32C (Castagnoli), the record batch checksum: the `crc32c` package's C function.

`import crc32c` runs the package's `__init__`, which looks up its own version through
importlib.metadata: about 10 ms of imports (email, zipfile, csv, ...) at every broker
start for a string nobody reads. This module loads the package's extension module
directly instead (found through the import system, nothing executed but the extension's
own init), and falls back to the ordinary package import if the package is laid out
differently. Either way `crc32c` below is the same C function, hardware-accelerated where
the CPU allows.

Use it as the package: `from protocol import crc32c` then `crc32c.crc32c(data)`.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from typing import Callable

__all__ = ["crc32c"]


def _load() -> Callable[..., int]:
    package = sys.modules.get("crc32c")
    if package is not None:  # already imported by someone: nothing to save
        return package.crc32c
    try:
        spec = importlib.util.find_spec("crc32c")  # locates the package, does not run it
        locations = spec.submodule_search_locations if spec is not None else None
        ext_spec = importlib.machinery.PathFinder.find_spec("crc32c._crc32c", list(locations or ()))
        if ext_spec is None or not isinstance(ext_spec.loader, importlib.machinery.ExtensionFileLoader):
            raise ImportError("crc32c._crc32c extension not found")
        module = importlib.util.module_from_spec(ext_spec)
        ext_spec.loader.exec_module(module)
        return module.crc32c
    except (ImportError, AttributeError, OSError):
        import crc32c as package_module  # the documented way; slower to import

        return package_module.crc32c


crc32c: Callable[..., int] = _load()

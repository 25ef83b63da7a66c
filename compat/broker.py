"""Starts a throwaway kbroker when no --bootstrap is given."""

from __future__ import annotations

import contextlib
from typing import Iterator


@contextlib.contextmanager
def local_kbroker() -> Iterator[str]:
    """A kbroker on a free port with a temporary data dir; yields its bootstrap address."""
    from kbroker.testing import KafkaBroker  # imported late: --bootstrap runs need no kbroker

    with KafkaBroker() as broker:
        yield broker.bootstrap_servers

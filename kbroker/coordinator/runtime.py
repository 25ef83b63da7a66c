"""The trio side of the group coordinator (skeleton; the state machine lives in group.py).

The Broker constructs `GroupCoordinatorRuntime(broker)` and starts
`await runtime.run(task_status=...)` in its nursery (docs/contracts.md).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from kbroker.broker import Broker

logger = logging.getLogger(__name__)


class GroupCoordinatorRuntime:
    """Loads __consumer_offsets, appends coordinator records, runs group timers."""

    def __init__(self, broker: "Broker") -> None:
        self.broker = broker

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Start the coordinator; report readiness through `task_status`, then run timers."""
        task_status.started()
        await trio.sleep_forever()

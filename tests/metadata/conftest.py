"""Fixtures: a started Controller on a temporary data directory."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import pytest
import trio

from kbroker.clock import Clock
from kbroker.config import build_config
from kbroker.metadata.controller import Controller


def make_config(data_dir: Path, **overrides: str):
    """A BrokerConfig writing under `data_dir`."""
    props = {"log.dirs": str(data_dir), "node.id": "1"}
    props.update(overrides)
    return build_config(props)


@asynccontextmanager
async def running_controller(data_dir: Path, **overrides: str) -> AsyncIterator[Controller]:
    """Start a controller, yield it, stop it (closing the metadata log)."""
    controller = Controller(make_config(data_dir, **overrides), Clock())
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        try:
            yield controller
        finally:
            nursery.cancel_scope.cancel()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"

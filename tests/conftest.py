"""Shared fixtures for every test package.

The `kafka_broker` / `kafka_broker_factory` fixtures come from the kbroker.testing plugin
(pytest11 entry point); pytest-trio provides `mock_clock` / `autojump_clock`.
"""

from __future__ import annotations

import socket

import pytest

from kbroker.clock import ManualClock


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (prefer port 0 where possible)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def manual_clock() -> ManualClock:
    """A clock that only moves with `advance(seconds)`, for synchronous time-based logic."""
    return ManualClock()

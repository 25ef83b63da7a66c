"""Integration fixtures: one real broker process per test module (kbroker.testing)."""

from __future__ import annotations

import pytest

from kbroker.testing import KafkaBroker


@pytest.fixture(scope="module")
def broker():
    """A broker shared by the tests of one module (tests use unique topic names)."""
    with KafkaBroker() as running:
        yield running

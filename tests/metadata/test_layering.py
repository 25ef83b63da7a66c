"""Layering rules: metadata state code stays free of trio (STYLE section 4, convention 1), and a
failing image listener does not stop the metadata log."""

from __future__ import annotations

import ast
from pathlib import Path

import kbroker.metadata

from .conftest import running_controller

METADATA_DIR = Path(kbroker.metadata.__file__).parent


def test_metadata_package_does_not_import_trio():
    for path in sorted(METADATA_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n == "trio" or n.startswith("trio.") for n in names), f"{path.name} imports trio"


async def test_failing_listener_is_isolated(data_dir):
    async with running_controller(data_dir) as c:
        seen = []

        def broken(old, new):
            raise RuntimeError("listener bug")

        c.add_listener(broken)
        c.add_listener(lambda old, new: seen.append(new.offset))
        await c.create_topic("still-works", 1, 1, None, {})
        assert "still-works" in c.image.topics_by_name and seen == [c.image.offset]

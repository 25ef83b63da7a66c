"""Applies committed metadata records to the image and tells listeners about the change.

Start-up replay (snapshot, then the log tail) and live commits take the same path, so the
image is always `apply(...)` of the committed records in offset order. A listener is called
with (old_image, new_image) after each applied batch; a failing listener is logged and does
not stop the others or the metadata log.
"""

from __future__ import annotations

import logging
from typing import Callable

from kbroker.metadata import serde
from kbroker.metadata.image import MetadataImage, apply, to_records

logger = logging.getLogger(__name__)

ImageListener = Callable[[MetadataImage, MetadataImage], None]


class MetadataPublisher:
    """Holds the committed image; see the module docstring."""

    def __init__(self, image: MetadataImage) -> None:
        self.image = image
        self._listeners: list[ImageListener] = []
        self.bytes_since_snapshot = 0

    def add_listener(self, fn: ImageListener) -> None:
        """Call `fn(old, new)` after every batch applied from now on."""
        self._listeners.append(fn)

    def load(self, base_offset: int, values: list[bytes]) -> None:
        """Apply a batch without notifying (start-up replay)."""
        self.image = self._apply(base_offset, values)

    def load_snapshot(self, end_offset: int, values: list[bytes]) -> None:
        """Replace the image by the state a snapshot holds (start-up, before the log tail)."""
        records = [serde.decode_record(v) for v in values]
        self.image = apply(self.image, [(name, fields) for name, _v, fields in records], end_offset - 1)

    def publish(self, base_offset: int, values: list[bytes]) -> None:
        """Apply a committed batch and notify listeners (the quorum's commit callback)."""
        old = self.image
        self.image = self._apply(base_offset, values)
        self.notify(old, self.image)

    def notify(self, old: MetadataImage, new: MetadataImage) -> None:
        """Call every listener with (old, new)."""
        for fn in self._listeners:
            try:
                fn(old, new)
            except Exception:  # a listener bug must not wedge the metadata log
                logger.exception("metadata listener %r failed at offset %d", fn, new.offset)

    def _apply(self, base_offset: int, values: list[bytes]) -> MetadataImage:
        records = []
        for value in values:
            name, _version, fields = serde.decode_record(value)
            records.append((name, fields))
        self.bytes_since_snapshot += sum(len(v) for v in values)
        assert base_offset > self.image.offset, "metadata offsets must increase"
        return apply(self.image, records, base_offset + len(values) - 1)

    def snapshot_values(self) -> tuple[int, list[bytes]]:
        """(end offset, encoded records) of a snapshot of the current image."""
        values = [serde.encode_record(name, fields, record_version(name)) for name, fields in to_records(self.image)]
        return self.image.offset + 1, values


# The version each record is written at: the oldest that carries every field kbroker sets.
_VERSIONS = {"RegisterBrokerRecord": 1}


def record_version(name: str) -> int:
    """Version `name` is encoded at."""
    return _VERSIONS.get(name, 0)

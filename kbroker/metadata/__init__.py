"""KRaft-style metadata: records, image, controller (see docs/metadata.md)."""

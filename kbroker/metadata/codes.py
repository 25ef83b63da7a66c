"""Kafka error codes for metadata code (re-exported from the codec, one import site)."""

from __future__ import annotations

from protocol import ErrorCode

__all__ = ["ErrorCode"]

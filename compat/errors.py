"""Exceptions shared by the runner, the scenarios and the client drivers."""

from __future__ import annotations


class Mismatch(AssertionError):
    """The broker misbehaved: wrong data, order, count or error. Reported as FAIL."""


class ClientError(Exception):
    """A client operation failed; ``kind`` classifies it (e.g. ``fenced``, ``error``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class Unsupported(Exception):
    """The client library has no such feature; the scenario is not listed for it."""

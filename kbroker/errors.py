"""Domain errors: raised by storage, metadata and coordinators, turned into error codes by handlers."""

from __future__ import annotations


class KafkaError(Exception):
    """A failure that maps onto one Kafka error code (`protocol.ErrorCode`)."""

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else str(code))
        self.code = code
        self.message = message

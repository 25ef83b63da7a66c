"""The codec's exceptions: everything malformed surfaces as DecodeError, nothing else."""

from __future__ import annotations


class DecodeError(ValueError):
    """Input bytes are not a valid encoding; `reason` says briefly why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnsupportedVersionError(DecodeError):
    """A request whose API key is unknown or whose version the spec does not define.

    `header` holds what could be read of the request header (at least request_api_key,
    request_api_version and correlation_id) so that the broker can answer as Kafka does.
    """

    def __init__(self, reason: str, header: dict) -> None:
        super().__init__(reason)
        self.header = header


class InvalidRecordError(DecodeError):
    """A produced record batch that fails validation; `error_code` is the Kafka code to answer."""

    def __init__(self, reason: str, error_code: int) -> None:
        super().__init__(reason)
        self.error_code = error_code


class EncodeError(ValueError):
    """A value cannot be encoded at the requested version (e.g. a field the version lacks)."""

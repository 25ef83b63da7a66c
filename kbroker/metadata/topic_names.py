"""Kafka's topic name rules (Topic.validate) and the internal topics."""

from __future__ import annotations

import re

from kbroker.errors import KafkaError
from kbroker.metadata.codes import ErrorCode

MAX_NAME_LENGTH = 249
_LEGAL = re.compile(r"[a-zA-Z0-9._-]+")
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


def validate_topic_name(name: str | None) -> None:
    """Raise KafkaError(INVALID_TOPIC_EXCEPTION) unless `name` is a legal topic name."""
    if not name:
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, "Topic name is illegal, it can't be empty")
    if name in (".", ".."):
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, "Topic name cannot be \".\" or \"..\"")
    if len(name) > MAX_NAME_LENGTH:
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION,
                         f"Topic name is illegal, it can't be longer than {MAX_NAME_LENGTH} characters, "
                         f"topic name: {name}")
    if not _LEGAL.fullmatch(name):
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION,
                         f"Topic name \"{name}\" is illegal, it contains a character other than "
                         "ASCII alphanumerics, '.', '_' and '-'")


def unify_collision_chars(name: str) -> str:
    """'.' and '_' collide in metric names, so Kafka treats names differing only there as equal."""
    return name.replace(".", "_")


def is_internal(name: str) -> bool:
    """Whether `name` is one of Kafka's internal topics."""
    return name in INTERNAL_TOPICS

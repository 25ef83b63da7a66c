"""KIP-848 regex subscriptions (ConsumerGroupHeartbeat v1 SubscribedTopicRegex).

Kafka compiles the pattern with RE2/J and matches whole topic names. Python's `re` accepts
constructs RE2 refuses (backreferences, lookaround, atomic groups, possessive quantifiers,
conditionals); a pattern using them is refused here too, so that a subscription that kbroker
accepts is one Apache Kafka accepts. Internal topics (`__consumer_offsets`,
`__transaction_state`) are never matched: a consumer group does not read them.
"""

from __future__ import annotations

import functools
import re
from typing import Iterable

INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})

# constructs RE2 (and so RE2/J) does not implement; checked outside character classes
_UNSUPPORTED = (
    (re.compile(r"\\[1-9]"), "backreferences"),
    (re.compile(r"\(\?P="), "named backreferences"),
    (re.compile(r"\(\?<?[=!]"), "lookaround"),
    (re.compile(r"\(\?>"), "atomic groups"),
    (re.compile(r"\(\?\("), "conditionals"),
    (re.compile(r"[*+?}]\+"), "possessive quantifiers"),
)


class InvalidRegex(ValueError):
    """The pattern does not compile, or uses what RE2/J would refuse."""


def _outside_classes(pattern: str) -> str:
    """The pattern with escaped characters and [...] classes blanked out (for the checks)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            # keep a backreference visible, blank any other escape
            out.append(pattern[i:i + 2] if pattern[i + 1].isdigit() else "  ")
            i += 2
            continue
        if c == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            out.append(" " * (min(j, n - 1) - i + 1))
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=256)
def compile_topic_regex(pattern: str) -> re.Pattern[str]:
    """Compile a SubscribedTopicRegex; InvalidRegex when RE2/J would refuse it."""
    bare = _outside_classes(pattern)
    for check, what in _UNSUPPORTED:
        if check.search(bare):
            raise InvalidRegex(f"{what} are not supported")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise InvalidRegex(str(exc)) from None


def matching_topics(pattern: str, topic_names: Iterable[str]) -> frozenset[str]:
    """The topic names the (valid) pattern matches as a whole, internal topics excluded."""
    compiled = compile_topic_regex(pattern)
    return frozenset(name for name in topic_names
                     if name not in INTERNAL_TOPICS and compiled.fullmatch(name))

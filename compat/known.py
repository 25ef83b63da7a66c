"""compat/known_gaps: scenarios kbroker does not support yet, reported XFAIL."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

KNOWN_GAPS_FILE = Path(__file__).with_name("known_gaps")


@dataclass(frozen=True)
class KnownGaps:
    """Scenario ids (``client:scenario``, shell patterns allowed) with their reasons."""

    entries: dict[str, str]

    @classmethod
    def load(cls, path: Path = KNOWN_GAPS_FILE) -> "KnownGaps":
        """Parse lines ``client:scenario  reason``; ``#`` starts a comment line."""
        entries: dict[str, str] = {}
        if path.exists():
            for raw in path.read_text().splitlines():
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                ident, _, reason = line.partition(" ")
                if ":" not in ident:
                    raise ValueError(f"{path}: entry {ident!r} is not client:scenario")
                entries[ident] = reason.strip() or "no reason given"
        return cls(entries)

    def reason(self, client: str, scenario: str) -> str | None:
        """The reason a scenario is a known gap, or None."""
        ident = f"{client}:{scenario}"
        if ident in self.entries:
            return self.entries[ident]
        for pattern, reason in self.entries.items():
            if fnmatch.fnmatchcase(ident, pattern):
                return reason
        return None

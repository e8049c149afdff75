"""The Clock seam: tests may swap time; everything else uses ``SystemClock``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC wall-clock time."""

    def monotonic(self) -> float:
        """Seconds for measuring durations."""


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


def utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes: treat them as the UTC they were written as."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def new_id(prefix: str) -> str:
    """A short random id with a readable prefix, e.g. ``job-3f9c1a2b7d``."""
    import secrets

    return f"{prefix}-{secrets.token_hex(5)}"

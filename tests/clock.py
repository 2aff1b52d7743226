"""The tests' one clock: every date a test makes is relative to the machine's "now".

Nothing here is a calendar date, so the suite passes on any day; ``OZON_TEST_CLOCK`` in
``scripts/test.sh`` moves the machine's clock itself (every process, PostgreSQL included) to prove it.
``NOW`` is read once, when the session starts, so the dates of one test session stay consistent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

NOW = datetime.now(UTC).replace(microsecond=0)
# Midnight a few weeks back: tests that need several days of runs count days from it, so every run
# is in the past and younger than the 30-day staging retention.
BASE = NOW.replace(hour=0, minute=0, second=0) - timedelta(days=25)


def day(number: int, hour: int = 0, minute: int = 0) -> datetime:
    """The moment ``hour:minute`` on day ``number`` (1-24) of the tests' calendar, BASE + number days."""
    if not 0 <= number <= 24:
        raise ValueError(f"day {number} is outside the tests' calendar of 24 days")
    return BASE + timedelta(days=number, hours=hour, minutes=minute)


def run_key(moment: datetime) -> str:
    """The run key the pipeline derives from a logical date (``YYYYmmddTHHMMSSZ``, UTC)."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def iso(moment: datetime) -> str:
    """``moment`` as the ISO text the pipeline writes (``2026-11-22T10:00:00+00:00``)."""
    return moment.astimezone(UTC).isoformat()

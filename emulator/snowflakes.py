"""Discord snowflake math: the one place where ids and times are converted (Discord developer
docs, Reference: Snowflakes, https://discord.com/developers/docs/reference#snowflakes).

A snowflake is 42 bits of milliseconds since the Discord epoch, 5 bits worker, 5 bits process and a
12-bit increment. The emulator gives every message stream its own worker/process pair, so ids are
globally unique across channels and threads and still sort by time.
"""

from __future__ import annotations

from datetime import UTC, datetime

DISCORD_EPOCH_MS = 1_420_070_400_000
MAX_STREAMS = 31 * 32  # worker/process pairs for message streams; (31, 31) is kept for static objects


def make(unix_ms: int, worker: int = 0, process: int = 0, increment: int = 0) -> int:
    """The snowflake created at `unix_ms` by (worker, process) with this increment."""
    if not (0 <= worker < 32 and 0 <= process < 32 and 0 <= increment < 4096):
        raise ValueError("worker/process/increment out of range")
    return ((unix_ms - DISCORD_EPOCH_MS) << 22) | (worker << 17) | (process << 12) | increment


def unix_ms(snowflake: int) -> int:
    return (snowflake >> 22) + DISCORD_EPOCH_MS


def worker_process(snowflake: int) -> tuple[int, int]:
    return (snowflake >> 17) & 0x1F, (snowflake >> 12) & 0x1F


def iso(unix_ms_value: int) -> str:
    """Discord's timestamp format: ISO 8601 with microseconds and an explicit +00:00 offset."""
    return datetime.fromtimestamp(unix_ms_value / 1000, tz=UTC).isoformat(timespec="microseconds")


def parse_iso_ms(text: str) -> int:
    """Inverse of `iso` (accepts any ISO 8601 form with an offset or `Z`)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def date_ms(year: int, month: int, day: int) -> int:
    return round(datetime(year, month, day, tzinfo=UTC).timestamp() * 1000)

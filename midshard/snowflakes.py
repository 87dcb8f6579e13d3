"""Discord ids ("snowflakes"): the one place where they are validated and turned into times.

A snowflake is an unsigned 64-bit integer whose top 42 bits are milliseconds since the Discord epoch
(the first second of 2015, 1420070400000 ms after the Unix epoch); the HTTP API sends it as a
decimal string. Source: Discord developer documentation, Reference, "Snowflakes"
(https://discord.com/developers/docs/reference#snowflakes).

Every id that enters midshard (a message, channel, attachment or reference id from the API, an
export, the settings or the command line) goes through `snowflake` once, where it enters. Valid
means: a decimal ASCII number without sign, spaces or leading zeros, 0 < id < 2**64, and a
timestamp no later than now plus `CLOCK_SKEW`. A later one cannot be real, and taken as a channel
cursor it would silently stop that channel's collection for good.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from midshard.errors import MidshardError

DISCORD_EPOCH_MS = 1_420_070_400_000
DISCORD_EPOCH = datetime(2015, 1, 1, tzinfo=UTC)
LIMIT = 1 << 64  # snowflakes are unsigned 64-bit integers
TIMESTAMP_SHIFT = 22  # the low 22 bits are worker, process and increment
# How far ahead of the local clock an id's time may be (Discord's clock and ours differ).
CLOCK_SKEW = timedelta(minutes=10)


class SnowflakeError(MidshardError, ValueError):
    """A value that is not a usable Discord id; the message says what it is and why."""


def snowflake_time(snowflake: int) -> datetime:
    """The UTC moment encoded in a snowflake."""
    return DISCORD_EPOCH + timedelta(milliseconds=snowflake >> TIMESTAMP_SHIFT)


def snowflake_at(moment: date | datetime) -> int:
    """The lowest snowflake at `moment` (a date means its midnight UTC; naive times are UTC)."""
    if not isinstance(moment, datetime):
        moment = datetime.combine(moment, time(), tzinfo=UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0, (int(moment.timestamp() * 1000) - DISCORD_EPOCH_MS) << TIMESTAMP_SHIFT)


def latest_valid(now: datetime | None = None) -> int:
    """The largest id that may exist now (ids of this millisecond plus the clock skew included)."""
    moment = (now or datetime.now(UTC)) + CLOCK_SKEW
    return min(LIMIT - 1, snowflake_at(moment) | ((1 << TIMESTAMP_SHIFT) - 1))


def snowflake(value: object, what: str = "id", *, latest: int | None = None) -> int:
    """`value` (a decimal string, or an int) as a valid snowflake; else `SnowflakeError` naming `what`.

    `latest` is the largest acceptable id (default `latest_valid()`, computed per call); a caller
    checking many ids passes it once.
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise SnowflakeError(f"{what} {_shown(value)} is not a snowflake (a decimal id string)")
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            raise SnowflakeError(f"{what} {_shown(value)} is not a snowflake (ASCII digits 0-9 only)")
        if value.startswith("0") and value != "0":
            raise SnowflakeError(f"{what} {_shown(value)} is not a snowflake (a leading zero)")
        if len(value) > 20:
            raise SnowflakeError(f"{what} {_shown(value)} is not a snowflake (above 2**64)")
        value = int(value)
    if not 0 < value < LIMIT:
        raise SnowflakeError(f"{what} {_shown(value)} is not a snowflake (0 < id < 2**64)")
    if value > (latest if latest is not None else latest_valid()):
        when = snowflake_time(value).isoformat(timespec="seconds")
        raise SnowflakeError(f"{what} {value} is not a snowflake (its time, {when}, is in the future)")
    return value


def snowflake_or_none(value: object, *, latest: int | None = None) -> int | None:
    """`snowflake(value)`, or None for anything that is not a valid id."""
    try:
        return snowflake(value, latest=latest)
    except SnowflakeError:
        return None


def _shown(value: object) -> str:
    """A bounded, printable rendering of a rejected value (never a huge or control-laden string)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."

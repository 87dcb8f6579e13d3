"""The one base class of midshard's own errors.

A `MidshardError` is a user-facing failure whose text is safe to print as it is: it names what went
wrong and where, and never contains the bot token (errors from discord.py and aiohttp carry the
request, and with it the `Authorization` header, so the collectors replace them by one of these,
raised `from None`). The CLI prints these as one line and exits 2; the flows do not retry them.
"""

from __future__ import annotations


class MidshardError(RuntimeError):
    """An error whose message is safe to print: it never contains the token."""


class MediaMismatchError(MidshardError):
    """A stored media file whose bytes no longer hash to the sha256 it is stored (and known) under."""

    def __init__(self, where: str, expected: str, found: str) -> None:
        super().__init__(f"{where}: the bytes hash to {found}, not to the recorded {expected}")
        self.expected = expected
        self.found = found

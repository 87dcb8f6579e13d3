"""The one base class of midshard's own errors.

A `MidshardError` is a user-facing failure whose text is safe to print as it is: it names what went
wrong and where, and never contains the bot token (errors from discord.py and aiohttp carry the
request, and with it the `Authorization` header, so the collectors replace them by one of these,
raised `from None`). The CLI prints these as one line and exits 2; the flows do not retry them.
"""

from __future__ import annotations


class MidshardError(RuntimeError):
    """An error whose message is safe to print: it never contains the token."""

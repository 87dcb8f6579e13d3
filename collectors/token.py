"""Where the bot token comes from, and how it is kept out of every text midshard produces.

The token is read from `DISCORD_BOT_TOKEN` (already a `SecretStr` in `Settings`) or from a Prefect
Secret block named by `Settings.token_block`. It only ever travels as a `SecretStr`; the one place it
is unwrapped is `discord.Client.login`. Errors from discord.py and aiohttp carry the request (and
with it the `Authorization` header) in their attributes, so the collectors never let them escape:
they are replaced by a `MidshardError` whose text went through `redact`, raised `from None`.
"""

from __future__ import annotations

import os

from pydantic import SecretStr

from midshard.errors import MidshardError
from midshard.settings import Settings

REDACTED = "[token redacted]"
TOKEN_ENV = "DISCORD_BOT_TOKEN"


class TokenError(MidshardError):
    """No usable token (none configured, or the Secret block could not be read)."""


def resolve_token(settings: Settings) -> SecretStr | None:
    """The bot token from the environment, else from the Prefect Secret block; None if neither.

    `settings.token` is empty when the settings travelled as a Prefect flow parameter (the token
    is excluded from every dump), so the environment is read again here.
    """
    for candidate in (settings.token, SecretStr(os.environ.get(TOKEN_ENV, ""))):
        if candidate is not None and candidate.get_secret_value().strip():
            return candidate
    if not settings.token_block:
        return None
    from prefect.blocks.system import Secret  # heavy; only when a block is configured

    try:
        value = Secret.load(settings.token_block).get()
    except Exception as exc:  # any failure: name the block and the error type, never the value
        raise TokenError(
            f"could not read the bot token from Prefect Secret block {settings.token_block!r} "
            f"({type(exc).__name__})"
        ) from None
    text = str(value).strip()
    if not text:
        raise TokenError(f"Prefect Secret block {settings.token_block!r} is empty")
    return SecretStr(text)


def require_token(settings: Settings) -> SecretStr:
    """The bot token, or a `TokenError` saying where to put it."""
    token = resolve_token(settings)
    if token is None:
        raise TokenError(
            "no bot token: set DISCORD_BOT_TOKEN (or Settings.token_block, a Prefect Secret block name)"
        )
    return token


def redact(text: str, token: SecretStr | None) -> str:
    """`text` with every occurrence of the token replaced."""
    if token is None:
        return text
    secret = token.get_secret_value().strip()
    return text.replace(secret, REDACTED) if secret else text

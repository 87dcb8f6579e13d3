"""Channel history through discord.py's HTTP client: raw message pages, oldest to newest.

discord.py is used over HTTP only (no gateway): `login()` checks the token, and
`client.http.logs_from` returns the API's raw JSON with discord.py's per-route and global rate
limiting, 429 handling and 5xx retries, so payloads can be stored exactly as received. Every
discord.py / aiohttp error is turned into a `DiscordError` whose text is redacted and whose cause is
dropped: those exceptions hold the request, and the request holds the token.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import UTC, date, datetime, time
from typing import Any, TypeVar

import discord
from discord.http import Route
from pydantic import SecretStr

from midshard.collectors.media import AttachmentRef
from midshard.collectors.token import redact
from midshard.errors import MidshardError
from midshard.settings import Settings

log = logging.getLogger("midshard.collect")

DISCORD_EPOCH_MS = 1420070400000
PAGE_SIZE = 100  # the API maximum
REFRESH_BATCH = 50  # POST /attachments/refresh-urls takes at most 50 links
_T = TypeVar("_T")

MISSING_CONTENT_WARNING = (
    "Discord returned messages without content, attachments or components: the bot lacks the "
    "MESSAGE_CONTENT privileged intent. Enable 'Message Content Intent' for the application in the "
    "Developer Portal (Bot page); without it Midjourney prompts and images cannot be collected."
)


class LoginError(MidshardError):
    """The token was refused, or Discord could not be reached to check it."""


class DiscordError(MidshardError):
    """A failed API call (after discord.py's own retries), with its HTTP status and Discord code."""

    def __init__(self, message: str, status: int = 0, code: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    @property
    def transient(self) -> bool:
        """Worth asking again later: a rate limit, a server error or a lost connection."""
        return self.status == 0 or self.status == 429 or self.status >= 500


def snowflake_at(moment: date | datetime) -> int:
    """The lowest snowflake at `moment` (a date means its midnight UTC; naive times are UTC)."""
    if not isinstance(moment, datetime):
        moment = datetime.combine(moment, time(), tzinfo=UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0, (int(moment.timestamp() * 1000) - DISCORD_EPOCH_MS) << 22)


def lacks_message_content(page: list[dict], self_id: int) -> bool:
    """True when every ordinary message (type 0/19) by someone else is empty: the intent is missing.

    Join notices and other system messages are legitimately empty, so they do not count.
    """
    ordinary = [
        m for m in page if m.get("type") in (0, 19) and str((m.get("author") or {}).get("id")) != str(self_id)
    ]
    return bool(ordinary) and not any(
        m.get("content") or m.get("attachments") or m.get("components") or m.get("embeds") for m in ordinary
    )


class DiscordSession:
    """A logged-in discord.py client (HTTP only); use as `async with DiscordSession(settings, token)`."""

    def __init__(self, settings: Settings, token: SecretStr) -> None:
        self.settings = settings
        self._token = token
        self.client: discord.Client | None = None
        self.user_id = 0
        self.warnings: list[str] = []
        self._active_threads: dict[int, list[dict]] = {}

    async def __aenter__(self) -> DiscordSession:
        Route.BASE = self.settings.api_base  # process-global; must be set before login
        self.client = discord.Client(intents=discord.Intents.none())
        try:
            await self.client.login(self._token.get_secret_value())
        except discord.LoginFailure:
            await self.client.close()
            raise LoginError(
                f"Discord ({self.settings.api_base}) refused the bot token (401 Unauthorized): check "
                "DISCORD_BOT_TOKEN or the Prefect Secret block; it must be a bot token from the "
                "Developer Portal (user tokens are not supported)"
            ) from None
        except Exception as exc:  # anything else (unreachable host, a malformed answer): no raw exception
            await self.client.close()
            detail = redact(str(exc), self._token) or type(exc).__name__
            raise LoginError(
                f"could not log in to Discord at {self.settings.api_base}: {type(exc).__name__}: {detail}"
            ) from None
        assert self.client.user is not None
        self.user_id = self.client.user.id
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.client is not None:
            await self.client.close()

    @property
    def http(self) -> Any:
        assert self.client is not None, "use DiscordSession as an async context manager"
        return self.client.http

    async def _call(self, what: str, call: Awaitable[_T]) -> _T:
        """Await one API call; any failure becomes a token-free `DiscordError`."""
        try:
            return await call
        except discord.HTTPException as exc:
            text = redact(exc.text, self._token)
            raise DiscordError(
                f"{what}: HTTP {exc.status} (code {exc.code}) {text}".strip(), exc.status, exc.code
            ) from None
        except Exception as exc:  # connection errors, malformed answers: never the raw exception
            detail = redact(str(exc), self._token) or "no detail"
            raise DiscordError(f"{what}: {type(exc).__name__}: {detail}") from None

    # -- history ---------------------------------------------------------------------------------
    async def page_after(self, channel_id: int, after: int) -> list[dict]:
        """The (up to 100) messages just after `after`, oldest first, as raw dicts.

        Reading a page is idempotent, so when discord.py's own retries give up (a long 429 storm, a
        run of 5xx) the page is asked again after a pause instead of failing the channel."""
        for attempt in range(self.settings.history_retries + 1):
            try:
                data = await self._call(
                    f"reading channel {channel_id}", self.http.logs_from(channel_id, PAGE_SIZE, after=after)
                )
                break
            except DiscordError as error:
                if not error.transient or attempt == self.settings.history_retries:
                    raise
                log.warning("%s; asking again in %d s", error, 2**attempt)
                await asyncio.sleep(2**attempt)
        if not isinstance(data, list) or not all(isinstance(m, dict) and "id" in m for m in data):
            raise DiscordError(f"reading channel {channel_id}: the response is not a list of messages")
        page = list(reversed(data))  # the API answers newest first, even with `after`
        if lacks_message_content(page, self.user_id) and MISSING_CONTENT_WARNING not in self.warnings:
            self.warnings.append(MISSING_CONTENT_WARNING)
            log.warning(MISSING_CONTENT_WARNING)
        return page

    async def thread_ids(self, channel_id: int) -> list[int]:
        """Active threads (guild listing, by parent) and archived public threads of a channel."""
        channel = await self._call(f"reading channel {channel_id}", self.http.get_channel(channel_id))
        ids: set[int] = set()
        guild_id = int(channel.get("guild_id") or 0)
        if guild_id:
            if guild_id not in self._active_threads:
                active = await self._call(
                    f"listing active threads of guild {guild_id}", self.http.get_active_threads(guild_id)
                )
                self._active_threads[guild_id] = active.get("threads", [])
            ids |= {
                int(t["id"])
                for t in self._active_threads[guild_id]
                if str(t.get("parent_id")) == str(channel_id)
            }
        before: str | None = None
        while True:
            page = await self._call(
                f"listing archived threads of channel {channel_id}",
                self.http.get_public_archived_threads(channel_id, before=before, limit=100),
            )
            threads = page.get("threads", [])
            ids |= {int(t["id"]) for t in threads}
            if not page.get("has_more") or not threads:
                return sorted(ids)
            before = threads[-1]["thread_metadata"]["archive_timestamp"]  # an ISO time, not an id

    # -- fresh attachment links --------------------------------------------------------------------
    async def refresh_urls(self, urls: list[str]) -> dict[str, str]:
        """Re-signed links for up to 50 attachment URLs (original -> refreshed)."""
        data = await self._call(
            "refreshing attachment links",
            self.http.request(Route("POST", "/attachments/refresh-urls"), json={"attachment_urls": urls}),
        )
        pairs = data.get("refreshed_urls", []) if isinstance(data, dict) else []
        return {p["original"]: p["refreshed"] for p in pairs if p.get("original") and p.get("refreshed")}

    async def attachment_url(self, ref: AttachmentRef) -> str | None:
        """The attachment's current link from a re-fetched message; None if message or attachment is gone."""
        try:
            message = await self._call(
                f"re-fetching message {ref.message_id}", self.http.get_message(ref.channel_id, ref.message_id)
            )
        except DiscordError as exc:
            if exc.status == 404:
                return None
            raise
        for attachment in message.get("attachments") or []:
            if str(attachment.get("id")) == str(ref.attachment_id):
                return attachment.get("url") or None
        return None


class LinkRefresher:
    """Re-signs expired links for the downloader, coalescing concurrent requests into ≤50-link calls.

    A link the refresh call does not return falls back to re-fetching its message (the documented
    way to a fresh link). The answer is None only when the attachment is definitely gone.
    """

    def __init__(self, session: DiscordSession, gather_delay: float = 0.05) -> None:
        self.session = session
        self.gather_delay = gather_delay
        self._waiting: dict[str, list[tuple[AttachmentRef, asyncio.Future[str | None]]]] = {}
        self._flusher: asyncio.Task[None] | None = None

    async def __call__(self, ref: AttachmentRef) -> str | None:
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(ref.url, []).append((ref, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(self.gather_delay)  # let the 404s of the same moment join one call
        while self._waiting:
            urls = list(self._waiting)[:REFRESH_BATCH]
            batch = {url: self._waiting.pop(url) for url in urls}
            try:
                fresh = await self.session.refresh_urls(urls)
            except DiscordError as exc:
                log.info("refresh-urls failed (%s); re-fetching the messages instead", exc)
                fresh = {}
            try:
                for url, waiters in batch.items():
                    for ref, future in waiters:
                        try:
                            link = fresh.get(url) or await self.session.attachment_url(ref)
                        except MidshardError as exc:
                            _settle(future, exc)
                        else:
                            _settle(future, link)
            finally:  # whatever happens, no downloader waits forever
                for waiters in batch.values():
                    for _, future in waiters:
                        _settle(future, MidshardError("the link refresh was interrupted"))


def _settle(future: asyncio.Future[str | None], outcome: str | BaseException | None) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)

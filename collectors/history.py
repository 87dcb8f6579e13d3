"""Channel history through discord.py's HTTP client: raw message pages, oldest to newest.

discord.py is used over HTTP only (no gateway): `login()` checks the token, and
`client.http.logs_from` returns the API's raw JSON with discord.py's per-route and global rate
limiting, 429 handling and 5xx retries, so payloads can be stored exactly as received. Every
discord.py / aiohttp error is turned into a `DiscordError` whose text is redacted and whose cause is
dropped: those exceptions hold the request, and the request holds the token.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import Awaitable
from typing import Any, TypeVar

import discord
from discord.http import Route
from pydantic import SecretStr
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential

from midshard.collectors.media import AttachmentRef
from midshard.collectors.pacer import RequestPacer
from midshard.collectors.token import redact
from midshard.errors import MidshardError
from midshard.raw_fields import declared_attachments
from midshard.settings import Settings
from midshard.snowflakes import SnowflakeError, latest_valid, snowflake

log = logging.getLogger("midshard.collect")

PAGE_SIZE = 100  # the API maximum
REFRESH_BATCH = 50  # POST /attachments/refresh-urls takes at most 50 links
_API_REFERENCE = ("message_id", "channel_id", "guild_id")
_DCE_REFERENCE = ("messageId", "channelId", "guildId")
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


def id_problem(message: object, latest: int) -> str | None:
    """Why a message (API or DiscordChatExporter shape) must not enter the raw store, or None.

    Its id, the channel it names, every attachment's id and the ids of the message it replies to
    (`message_reference`, or DCE's `reference`) must be snowflakes no later than `latest`; the
    stages after the raw store rely on that."""
    if not isinstance(message, dict):
        return "a message is not a JSON object"
    try:
        message_id = snowflake_text(message.get("id"), "message id", latest)
    except SnowflakeError as error:
        return str(error)
    try:
        _check_other_ids(message, latest)
    except (SnowflakeError, TypeError) as error:
        return f"message {message_id}: {error}"
    return None


def _check_other_ids(message: dict, latest: int) -> None:
    optional = [("channel id", message.get("channel_id"))]
    for key, names in (("message_reference", _API_REFERENCE), ("reference", _DCE_REFERENCE)):
        reference = message.get(key)
        if reference is not None and not isinstance(reference, dict):
            raise TypeError(f"its {key} is not an object")
        optional += [(f"{key} {name}", (reference or {}).get(name)) for name in names]
    for what, value in optional:
        if value is not None:
            snowflake_text(value, what, latest)
    attachments = message.get("attachments") or []
    if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
        raise TypeError("its attachments are not a list of objects")
    for attachment in attachments:
        snowflake_text(attachment.get("id"), "attachment id", latest)


def snowflake_text(value: object, what: str, latest: int) -> int:
    """Discord and DiscordChatExporter write every id as a string; a number is already a bad sign
    (a large one has lost digits to a float somewhere)."""
    if not isinstance(value, str):
        raise SnowflakeError(f"{what} {value!r:.40} is not a snowflake string")
    return snowflake(value, what, latest=latest)


def checked_page(page: list[dict], channel_id: int, warnings: list[str]) -> list[dict]:
    """The messages of a history page whose ids are valid (`id_problem`); each other one is left out
    with a warning, so no made-up id can move the channel's cursor (into the future, for good)."""
    latest = latest_valid()
    valid = []
    for message in page:
        problem = id_problem(message, latest)
        if problem is None:
            valid.append(message)
        else:
            warning = f"channel {channel_id}: a message was not stored: {problem}"
            warnings.append(warning)
            log.warning(warning)
    return valid


def lacks_message_content(page: list[dict], self_id: int) -> bool:
    """True when every ordinary message (type 0/19) by someone else is empty: the intent is missing.

    Join notices and other system messages are legitimately empty, so they do not count. The first
    ordinary message with anything in it answers, so a normal page costs one look.
    """
    me, empty = str(self_id), False
    for m in page:
        if m.get("type") not in (0, 19) or str((m.get("author") or {}).get("id")) == me:
            continue
        if m.get("content") or m.get("attachments") or m.get("components") or m.get("embeds"):
            return False
        empty = True
    return empty


class _RareYoungCollections:
    """While history is read, young-generation GC passes every 50 000 allocations, not 700.

    A 100-message page parses into some 20 000 dicts and lists without a reference cycle (they go
    by reference counting), yet at the default threshold they set off a young collection every 700
    allocations: about a quarter of the collector's CPU per page. Sessions in several threads
    share the setting; the last one to end restores the threshold.
    """

    YOUNG = 50_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions = 0
        self._saved = gc.get_threshold()

    def __enter__(self) -> None:
        with self._lock:
            if self._sessions == 0:
                self._saved = gc.get_threshold()
                gc.set_threshold(max(self._saved[0], self.YOUNG), *self._saved[1:])
            self._sessions += 1

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            self._sessions -= 1
            if self._sessions == 0:
                gc.set_threshold(*self._saved)


_RARE_YOUNG_COLLECTIONS = _RareYoungCollections()


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
        self.client = discord.Client(intents=discord.Intents.none(), http_trace=RequestPacer().trace_config())
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
        _RARE_YOUNG_COLLECTIONS.__enter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        _RARE_YOUNG_COLLECTIONS.__exit__()
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
        run of 5xx, a reset connection) the page is asked again after 1, 2, 4... s, up to
        `history_retries` times, instead of failing the channel."""
        what = f"reading channel {channel_id}"

        async def read() -> Any:
            return await self._call(what, self.http.logs_from(channel_id, PAGE_SIZE, after=after))

        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda error: isinstance(error, DiscordError) and error.transient),
            stop=stop_after_attempt(self.settings.history_retries + 1),
            wait=wait_exponential(multiplier=1, exp_base=2),
            before_sleep=_log_retry,
            reraise=True,
        )
        data = await retrying(read)
        if not isinstance(data, list) or not all(isinstance(m, dict) and "id" in m for m in data):
            raise DiscordError(f"reading channel {channel_id}: the response is not a list of messages")
        page = list(reversed(data))  # the API answers newest first, even with `after`
        if MISSING_CONTENT_WARNING not in self.warnings and lacks_message_content(page, self.user_id):
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
        found = (a.url for a in declared_attachments(message) if a.id == ref.attachment_id)
        return next(found, "") or None


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    sleep = state.next_action.sleep if state.next_action is not None else 0
    log.warning("%s; asking again in %d s", error, sleep)


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

"""Attachment bytes into the content-addressed media store, and an index entry for every attachment.

aiohttp downloads with bounded concurrency, connect/read timeouts, an overall deadline per
attachment, retries with exponential backoff and jitter (5xx, resets, truncated bodies; through
tenacity), size checks against `Content-Length` and the declared `size`, a hard `max_file_size`,
and re-signing of expired links before retrying (a 404 on a freshly re-signed link means the
attachment is gone). Links are fetched only from the hosts `media_sources` allows, redirects
included. Bodies stream to a temporary file with a running sha256 and are renamed to their content
address (`RawStore.media_writer`); at most `download_memory` bytes are held in memory across the
run. Bytes are keyed by sha256, never by URL: links are re-signed, content is not.
DiscordChatExporter `--media` exports point at local files instead of URLs; those are copied from
disk the same way, through the same size checks.

Which attachments a batch needs is the caller's call (`select`): the collectors do not know the
cleaners' rules. A batch's media is committed like its messages: each finished attachment goes to
the batch journal, the results file is written atomically at the end (see `raw_store`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from yarl import URL

from midshard.collectors.media_sources import MAX_REDIRECTS, MediaSources, PrivateAddressError
from midshard.errors import MidshardError
from midshard.killpoints import kill_point
from midshard.media_writer import MediaWriter
from midshard.raw_fields import declared_attachments
from midshard.raw_store import AttachmentResult, BatchJournal, RawStore
from midshard.settings import Settings

CHUNK = 1 << 16
MAX_BACKOFF = 60.0
REDIRECTS = (301, 302, 303, 307, 308)
T = TypeVar("T")

# Attachment ids of a raw message worth downloading (`download = "filtered"`); the flows pass the
# cleaners' message-level filter.
Select = Callable[[dict], Iterable[int]]
# Asked for a fresh link when the current one is refused; answers None when the attachment is gone.
Refresh = Callable[["AttachmentRef"], Awaitable[str | None]]
# Told about every finished attachment, with the number of bytes stored for it.
OnResult = Callable[[AttachmentResult, int], None]


class MediaStoreError(MidshardError):
    """The media store cannot be written (a full or read-only disk): no download can succeed."""


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    """One attachment as a raw message declares it (API or DiscordChatExporter shape)."""

    attachment_id: int
    message_id: int
    channel_id: int
    url: str  # an http(s) link, or a DCE --media path relative to the export
    size: int | None  # declared bytes, if any


def attachment_refs(message: dict, channel_id: int) -> list[AttachmentRef]:
    """The attachments of a raw message (`raw_fields.declared_attachments`: entries without a
    snowflake id are skipped)."""
    message_id = int(message["id"])
    return [AttachmentRef(a.id, message_id, channel_id, a.url, a.size) for a in declared_attachments(message)]


def plan_downloads(
    messages: Iterable[dict], channel_id: int, select: Select | None
) -> tuple[list[AttachmentRef], list[AttachmentRef]]:
    """(attachments to fetch, attachments left out) of a batch; `select=None` fetches every one."""
    wanted: list[AttachmentRef] = []
    skipped: list[AttachmentRef] = []
    seen: set[int] = set()
    for message in messages:
        refs = [r for r in attachment_refs(message, channel_id) if r.attachment_id not in seen]
        seen.update(r.attachment_id for r in refs)
        chosen = None if select is None else set(select(message))
        wanted += [r for r in refs if chosen is None or r.attachment_id in chosen]
        skipped += [r for r in refs if chosen is not None and r.attachment_id not in chosen]
    return wanted, skipped


def is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def has_scheme(reference: str) -> bool:
    """True for a URL of any scheme (`file:`, `ftp:`, `data:`…); a Windows drive letter is a path."""
    return len(urlsplit(reference).scheme) > 1


def link_expired(url: str, now: float | None = None) -> bool:
    """True if a signed CDN link's `ex` (hex unix time) has passed; unsigned links never expire here."""
    expiry = parse_qs(urlsplit(url).query).get("ex")
    try:
        return expiry is not None and int(expiry[0], 16) <= (time.time() if now is None else now)
    except ValueError:
        return False


def local_media_path(reference: str, export_dir: Path | None) -> Path | None:
    """The file a DCE `--media` reference points at (Windows separators, maybe %-encoded), if present
    inside the export's folder: a hostile export cannot make us read files elsewhere."""
    if export_dir is None or not reference:
        return None
    relative = reference.replace("\\", "/")
    base = export_dir.resolve()
    for candidate in dict.fromkeys((relative, unquote(relative))):
        try:
            path = (base / candidate).resolve()
            found = path.is_relative_to(base) and path.is_file()
        except (OSError, ValueError):  # a NUL byte, a name too long: not a file of the export
            continue
        if found:
            return path
    return None


class _FailedError(Exception):
    """One attempt's outcome when it stored no bytes."""

    def __init__(self, reason: str, retryable: bool = False, status: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.status = status


def _retryable(error: BaseException) -> bool:
    return isinstance(error, _FailedError) and error.retryable


@dataclass(slots=True)
class _Link:
    """The link an attachment is fetched from, and whether it was re-signed in this run."""

    url: str
    fresh: bool = False


class MediaDownloader:
    """One aiohttp session, one concurrency bound and one memory bound, shared by every batch of a run.

    `async with MediaDownloader(settings, raw, refresh, select=...) as d: await d.download_batch(...)`
    Without `refresh` (no bot token), a refused signed link is recorded as "expired". With
    `download = "filtered"`, `select` says which attachments of a message to fetch.
    """

    def __init__(
        self,
        settings: Settings,
        raw: RawStore,
        refresh: Refresh | None = None,
        on_result: OnResult | None = None,
        select: Select | None = None,
    ) -> None:
        if settings.download == "filtered" and select is None:
            raise ValueError("download = 'filtered' needs a selector (the cleaners' message filter)")
        self.settings = settings
        self.raw = raw
        self.refresh = refresh
        self.on_result = on_result
        self.select = select if settings.download == "filtered" else None
        self.sources = MediaSources.from_settings(settings)
        # Each download holds at most this much before writing it out: download_memory in all.
        self._flush_at = max(CHUNK, settings.download_memory // settings.download_concurrency)
        self._slots = asyncio.Semaphore(settings.download_concurrency)
        self._session: aiohttp.ClientSession | None = None
        # Disk threads: one per download slot for writes, so a download never waits for a thread,
        # and as many for commits (fsync, rename), which happen after a download leaves its slot.
        self._writes: ThreadPoolExecutor | None = None
        self._commits: ThreadPoolExecutor | None = None

    async def __aenter__(self) -> MediaDownloader:
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.settings.connect_timeout, sock_read=self.settings.read_timeout
        )
        connector = aiohttp.TCPConnector(
            limit=self.settings.download_concurrency, resolver=self.sources.resolver()
        )
        # No cookies: a CDN needs none, and no state may pass from one host's answer to another.
        jar = aiohttp.DummyCookieJar()
        self._session = aiohttp.ClientSession(timeout=timeout, connector=connector, cookie_jar=jar)
        self._writes = ThreadPoolExecutor(self.settings.download_concurrency, "midshard-media-write")
        self._commits = ThreadPoolExecutor(self.settings.download_concurrency, "midshard-media-commit")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
        for pool in (self._writes, self._commits):
            if pool is not None:
                await asyncio.to_thread(pool.shutdown)  # lets disk work still in flight finish

    async def download_batch(
        self,
        channel_id: int,
        batch_path: str,
        messages: list[dict] | None = None,
        export_dir: Path | None = None,
    ) -> list[AttachmentResult]:
        """Fetch a batch's selected attachments (skipping journaled ones) and commit its results file."""
        if messages is None:
            messages = await asyncio.to_thread(self.raw.read_batch, batch_path)
        wanted, skipped = plan_downloads(messages, channel_id, self.select)
        with self.raw.open_journal(channel_id, batch_path) as journal:
            done = await asyncio.to_thread(self._resume, journal, channel_id, batch_path, wanted)

            async def one(ref: AttachmentRef) -> None:
                result, size = await self.fetch(ref, export_dir)
                if self.raw.store.local:
                    journal.append(result)  # one small write; see BatchJournal for why no fsync
                else:  # an object store republishes the journal
                    await asyncio.to_thread(journal.append, result)
                done[ref.attachment_id] = result
                if self.on_result is not None:
                    self.on_result(result, size)

            try:
                async with asyncio.TaskGroup() as group:
                    for ref in wanted:
                        if ref.attachment_id not in done:
                            group.create_task(one(ref))
            except* MidshardError as errors:  # e.g. a full disk: one clear error, not a group of them
                raise errors.exceptions[0] from None
        results = [*done.values()]
        for ref in skipped:
            results.append(AttachmentResult(ref.attachment_id, ref.message_id, error="not_selected"))
            if self.on_result is not None:
                self.on_result(results[-1], 0)
        await asyncio.to_thread(self.raw.finish_attachment_results, channel_id, batch_path, results)
        return sorted(results, key=lambda r: r.attachment_id)

    def _resume(
        self, journal: BatchJournal, channel_id: int, batch_path: str, wanted: list[AttachmentRef]
    ) -> dict[int, AttachmentResult]:
        """What an earlier run finished, after removing what it left half-written."""
        self.raw.sweep_batch_temp(channel_id, batch_path)
        self.raw.sweep_media_temp(str(ref.attachment_id) for ref in wanted)
        return journal.read()

    async def fetch(self, ref: AttachmentRef, export_dir: Path | None = None) -> tuple[AttachmentResult, int]:
        """Store one attachment; (its result, bytes stored). Never raises for bad links or servers."""
        try:
            if ref.size is not None and ref.size > self.settings.max_file_size:
                raise _FailedError("too_large")
            if is_http(ref.url):
                sha256, size = await self._download(ref)
            elif has_scheme(ref.url):
                raise _FailedError("scheme_not_allowed")
            else:
                sha256, size = await self._copy_local(ref, export_dir)
        except _FailedError as failure:
            return AttachmentResult(ref.attachment_id, ref.message_id, error=failure.reason), 0
        kill_point("media_stored")
        return AttachmentResult(ref.attachment_id, ref.message_id, sha256=sha256), size

    async def _download(self, ref: AttachmentRef) -> tuple[str, int]:
        """Every attempt at one link, within the deadline, holding one download slot; then the
        commit, which waits for the disk only (fsync), so the slot goes to the next download."""
        link, backoff = _Link(ref.url), self.settings.download_backoff
        retrying = AsyncRetrying(  # one per download: its state is not shared between tasks
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self.settings.download_retries + 1),
            wait=wait_exponential_jitter(multiplier=backoff, max=MAX_BACKOFF, jitter=backoff),
            reraise=True,
        )
        async with self._slots:
            try:
                async with asyncio.timeout(self.settings.download_deadline):
                    writer, size = await retrying(self._attempt, ref, link)
            except TimeoutError:  # the attempts turn their own timeouts into _FailedError
                raise _FailedError("deadline") from None
        with writer:
            return await self._on_disk(self._commits, writer.commit), size

    async def _attempt(self, ref: AttachmentRef, link: _Link) -> tuple[MediaWriter, int]:
        """One GET of the current link; a listed link that is refused is re-signed and tried at once."""
        while True:
            if self.refresh is not None and link_expired(link.url):
                link.url, link.fresh = await self._fresh_link(ref), True
            try:
                return await self._get(link.url, ref)
            except _FailedError as failure:
                if failure.status != 404:
                    raise
                if self.refresh is None:
                    raise _FailedError("expired") from None
                if link.fresh and not link_expired(link.url):
                    raise _FailedError("gone") from None  # refused although freshly signed
                if link.fresh:  # expired again meanwhile: re-signed on the next attempt
                    raise _FailedError(failure.reason, retryable=True, status=404) from None
            link.url, link.fresh = await self._fresh_link(ref), True

    async def _fresh_link(self, ref: AttachmentRef) -> str:
        assert self.refresh is not None
        try:
            link = await self.refresh(ref)
        except MidshardError:
            raise _FailedError("refresh_failed") from None
        if link is None:
            raise _FailedError("gone")
        return link

    async def _get(self, url: str, ref: AttachmentRef) -> tuple[MediaWriter, int]:
        """One GET, following redirects within the allowed hosts; the body, finished on disk."""
        assert self._session is not None, "use MediaDownloader as an async context manager"
        target = URL(url)
        for hop in range(MAX_REDIRECTS + 1):
            refusal = self.sources.refusal(target)
            if refusal is not None:
                raise _FailedError(refusal if hop == 0 else "redirect_not_allowed")
            try:
                async with self._session.get(target, allow_redirects=False) as response:
                    location = response.headers.get("Location")
                    if response.status not in REDIRECTS or location is None:
                        return await self._store(response, ref)
            except TimeoutError:
                raise _FailedError("timeout", retryable=True) from None
            except aiohttp.ClientConnectorDNSError as error:
                if isinstance(error.os_error, PrivateAddressError):
                    raise _FailedError("private_address") from None
                raise _FailedError("connection", retryable=True) from None
            except (aiohttp.ClientError, OSError):
                raise _FailedError("connection", retryable=True) from None
            try:
                target = target.join(URL(location))
            except ValueError:
                raise _FailedError("redirect_not_allowed") from None
        raise _FailedError("too_many_redirects")

    async def _store(self, response: aiohttp.ClientResponse, ref: AttachmentRef) -> tuple[MediaWriter, int]:
        """The response's body, size-checked, streamed to a finished temporary file; (its writer, size)."""
        if response.status != 200:
            retryable = response.status >= 500 or response.status in (408, 429)
            raise _FailedError(f"http_{response.status}", retryable, response.status)
        limit = self.settings.max_file_size
        length = None if response.headers.get("Content-Encoding") else response.content_length
        if length is not None and length > limit:
            raise _FailedError("too_large")
        if length is not None and ref.size is not None and length != ref.size:
            raise _FailedError("size_mismatch")
        writer = self.raw.media_writer(str(ref.attachment_id))
        with contextlib.ExitStack() as failed:
            failed.enter_context(writer)  # a failed attempt leaves no temporary file
            pending: list[bytes] = []
            held = received = 0
            async for chunk, _ in response.content.iter_chunks():  # as received: no copy, no join
                pending.append(chunk)
                held += len(chunk)
                received += len(chunk)
                kill_point("media_body")
                if received > limit:
                    raise _FailedError("too_large")
                if held >= self._flush_at:
                    await self._on_disk(self._writes, writer.write, pending)
                    pending, held = [], 0
            if ref.size is not None and received != ref.size:
                raise _FailedError("size_mismatch", retryable=True)  # cut short without a Content-Length
            await self._on_disk(self._writes, writer.finish, pending)
            failed.pop_all()  # complete: the caller commits it
        return writer, received

    async def _on_disk(self, pool: Executor | None, function: Callable[..., T], *args: object) -> T:
        """Blocking media-store I/O in a disk thread; a failing disk stops the run with a clear error."""
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, function, *args)
        except OSError as error:
            raise MediaStoreError(f"cannot write the media store: {error}") from None

    async def _copy_local(self, ref: AttachmentRef, export_dir: Path | None) -> tuple[str, int]:
        path = local_media_path(ref.url, export_dir)
        if path is None:
            raise _FailedError("missing_local_file")
        size = path.stat().st_size
        if size > self.settings.max_file_size:
            raise _FailedError("too_large")
        if ref.size is not None and size != ref.size:
            raise _FailedError("size_mismatch")
        with self.raw.media_writer(str(ref.attachment_id)) as writer, path.open("rb") as source:
            return await self._on_disk(self._commits, _copy, source, writer, self._flush_at), size


def _copy(source: BinaryIO, writer: MediaWriter, block: int) -> str:
    writer.finish(iter(lambda: source.read(block), b""))
    return writer.commit()

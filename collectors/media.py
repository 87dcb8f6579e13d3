"""Attachment bytes into the content-addressed media store, and an index entry for every attachment.

aiohttp downloads with bounded concurrency, connect/read timeouts, retries with exponential backoff
and jitter (5xx, resets, truncated bodies), size checks against `Content-Length` and the declared
`size`, a hard `max_file_size`, and re-signing of expired links before retrying (a 404 on a freshly
re-signed link means the attachment is gone). Bytes are keyed by sha256, never by URL: links are
re-signed, content is not. DiscordChatExporter `--media` exports point at local files instead of
URLs; those are read from disk through the same checks.

A batch's media is committed like its messages: each finished attachment goes to the batch journal,
the results file is written atomically at the end (see `raw_store`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import aiohttp

from midshard.errors import MidshardError
from midshard.killpoints import kill_point
from midshard.raw_store import AttachmentResult, RawStore
from midshard.settings import Settings

CHUNK = 1 << 16
MAX_BACKOFF = 60.0

# Asked for a fresh link when the current one is refused; answers None when the attachment is gone.
Refresh = Callable[["AttachmentRef"], Awaitable[str | None]]
# Told about every finished attachment, with the number of bytes stored for it.
OnResult = Callable[[AttachmentResult, int], None]


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    """One attachment as a raw message declares it (API or DiscordChatExporter shape)."""

    attachment_id: int
    message_id: int
    channel_id: int
    url: str  # an http(s) link, or a DCE --media path relative to the export
    size: int | None  # declared bytes, if any


def attachment_refs(message: dict, channel_id: int) -> list[AttachmentRef]:
    """The attachments of a raw message; malformed entries (no numeric id) are skipped."""
    refs = []
    for attachment in message.get("attachments") or []:
        if not isinstance(attachment, dict):
            continue
        try:
            attachment_id = int(attachment["id"])
        except (KeyError, TypeError, ValueError):
            continue
        size = attachment.get("size", attachment.get("fileSizeBytes"))
        declared = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
        url = attachment.get("url")
        refs.append(
            AttachmentRef(
                attachment_id, int(message["id"]), channel_id, url if isinstance(url, str) else "", declared
            )
        )
    return refs


def plan_downloads(
    messages: Iterable[dict], channel_id: int, settings: Settings
) -> tuple[list[AttachmentRef], list[AttachmentRef]]:
    """(attachments to fetch, attachments left out) of a batch, by `settings.download`."""
    wanted: list[AttachmentRef] = []
    skipped: list[AttachmentRef] = []
    seen: set[int] = set()
    for message in messages:
        refs = [r for r in attachment_refs(message, channel_id) if r.attachment_id not in seen]
        seen.update(r.attachment_id for r in refs)
        if settings.download == "all":
            wanted += refs
            continue
        from midshard.cleaners.pipeline import downloadable_attachments

        selected = set(downloadable_attachments(message, settings))
        wanted += [r for r in refs if r.attachment_id in selected]
        skipped += [r for r in refs if r.attachment_id not in selected]
    return wanted, skipped


def is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


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
    """One attempt's outcome when it produced no bytes."""

    def __init__(self, reason: str, retryable: bool = False, status: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.status = status


class MediaDownloader:
    """One aiohttp session and one concurrency bound, shared by every batch of a run.

    `async with MediaDownloader(settings, raw, refresh) as downloader: await downloader.download_batch(...)`
    Without `refresh` (no bot token), a refused signed link is recorded as "expired".
    """

    def __init__(
        self,
        settings: Settings,
        raw: RawStore,
        refresh: Refresh | None = None,
        on_result: OnResult | None = None,
    ) -> None:
        self.settings = settings
        self.raw = raw
        self.refresh = refresh
        self.on_result = on_result
        self._slots = asyncio.Semaphore(settings.download_concurrency)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> MediaDownloader:
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.settings.connect_timeout, sock_read=self.settings.read_timeout
        )
        connector = aiohttp.TCPConnector(limit=self.settings.download_concurrency)
        self._session = aiohttp.ClientSession(timeout=timeout, connector=connector)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def download_batch(
        self,
        channel_id: int,
        batch_path: str,
        wanted: list[AttachmentRef],
        skipped: Iterable[AttachmentRef] = (),
        export_dir: Path | None = None,
    ) -> list[AttachmentResult]:
        """Fetch a batch's attachments (skipping journaled ones) and commit its results file."""
        self.raw.sweep_batch_temp(channel_id, batch_path)
        done = self.raw.read_journal(channel_id, batch_path)
        journal = asyncio.Lock()  # one appender at a time (its torn-line check), off the event loop

        async def one(ref: AttachmentRef) -> None:
            result, size = await self.fetch(ref, export_dir)
            async with journal:
                await asyncio.to_thread(self.raw.append_journal, channel_id, batch_path, result)
            done[ref.attachment_id] = result
            if self.on_result is not None:
                self.on_result(result, size)

        await asyncio.gather(*(one(ref) for ref in wanted if ref.attachment_id not in done))
        results = [*done.values()]
        for ref in skipped:
            results.append(AttachmentResult(ref.attachment_id, ref.message_id, error="not_selected"))
            if self.on_result is not None:
                self.on_result(results[-1], 0)
        self.raw.finish_attachment_results(channel_id, batch_path, results)
        return sorted(results, key=lambda r: r.attachment_id)

    async def fetch(self, ref: AttachmentRef, export_dir: Path | None = None) -> tuple[AttachmentResult, int]:
        """Store one attachment; (its result, bytes stored). Never raises for bad links or servers."""
        try:
            data = await self._bytes(ref, export_dir)
        except _FailedError as failure:
            return AttachmentResult(ref.attachment_id, ref.message_id, error=failure.reason), 0
        sha256 = await asyncio.to_thread(self.raw.put_media, data)
        kill_point("media_stored")
        return AttachmentResult(ref.attachment_id, ref.message_id, sha256=sha256), len(data)

    async def _bytes(self, ref: AttachmentRef, export_dir: Path | None) -> bytes:
        if ref.size is not None and ref.size > self.settings.max_file_size:
            raise _FailedError("too_large")
        if not is_http(ref.url):
            return await self._local(ref, export_dir)
        url, fresh = ref.url, False
        attempt = 0
        while True:
            if self.refresh is not None and link_expired(url):
                url, fresh = await self._fresh_link(ref), True
            try:
                return await self._get(url, ref.size)
            except _FailedError as failure:
                if failure.status == 404:
                    if self.refresh is None:
                        raise _FailedError("expired") from None
                    if fresh and not link_expired(url):
                        raise _FailedError("gone") from None  # refused although freshly signed
                    if not fresh:  # a listed link refused: re-sign it and try again at once
                        url, fresh = await self._fresh_link(ref), True
                        continue
                elif not failure.retryable:
                    raise
                if attempt >= self.settings.download_retries:
                    raise
            delay = min(MAX_BACKOFF, self.settings.download_backoff * 2**attempt)
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            attempt += 1

    async def _fresh_link(self, ref: AttachmentRef) -> str:
        assert self.refresh is not None
        try:
            link = await self.refresh(ref)
        except MidshardError:
            raise _FailedError("refresh_failed") from None
        if link is None:
            raise _FailedError("gone")
        return link

    async def _get(self, url: str, declared: int | None) -> bytes:
        """One GET attempt: the whole, size-checked body, or `_FailedError`."""
        assert self._session is not None, "use MediaDownloader as an async context manager"
        limit = self.settings.max_file_size
        async with self._slots:
            try:
                async with self._session.get(url) as response:
                    if response.status != 200:
                        retryable = response.status >= 500 or response.status in (408, 429)
                        raise _FailedError(f"http_{response.status}", retryable, response.status)
                    length = None if response.headers.get("Content-Encoding") else response.content_length
                    if length is not None and length > limit:
                        raise _FailedError("too_large")
                    if length is not None and declared is not None and length != declared:
                        raise _FailedError("size_mismatch")
                    body = bytearray()
                    async for chunk in response.content.iter_chunked(CHUNK):
                        body += chunk
                        kill_point("media_body")
                        if len(body) > limit:
                            raise _FailedError("too_large")
            except TimeoutError:
                raise _FailedError("timeout", retryable=True) from None
            except (aiohttp.ClientError, OSError):
                raise _FailedError("connection", retryable=True) from None
        if declared is not None and len(body) != declared:
            raise _FailedError("size_mismatch", retryable=True)  # cut short without a Content-Length
        return bytes(body)

    async def _local(self, ref: AttachmentRef, export_dir: Path | None) -> bytes:
        path = local_media_path(ref.url, export_dir)
        if path is None:
            raise _FailedError("missing_local_file")
        size = path.stat().st_size
        if size > self.settings.max_file_size:
            raise _FailedError("too_large")
        if ref.size is not None and size != ref.size:
            raise _FailedError("size_mismatch")
        return await asyncio.to_thread(path.read_bytes)

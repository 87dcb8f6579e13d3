"""A collect run: Discord channels -> the raw store (messages, then their media), resumable anywhere.

Per channel: finish the media of batches an earlier run left unfinished, then page the history
from the channel's cursor; each page is committed as one batch, the cursor moves, and the batch's
media is downloaded before the next page (links are freshest right after listing). Channels run
concurrently on one discord.py client, whose limiter keeps us within Discord's per-channel and
global limits; downloads share one bounded pool.

Entry points. The CLI calls `collect`. Prefect flows make batch tasks from the pieces, each a plain
synchronous call that logs in on its own:
    `collect_histories(settings, stats)`               every channel's next pages, one client
    `collect_history(settings, channel_id, max_pages)` the channel's next pages -> new batch paths
    `collect_media(settings, channel_id, batch_paths, select)` batches' media -> results
Whoever starts a download passes `select`, the attachments worth fetching under
`download = "filtered"` (the cleaners' message-level filter): the collectors do not know the rules.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pydantic import SecretStr

from midshard import progress
from midshard.collectors.history import PAGE_SIZE, DiscordError, DiscordSession, LinkRefresher, checked_page
from midshard.collectors.media import MediaDownloader, Select
from midshard.collectors.token import require_token, resolve_token
from midshard.killpoints import kill_point
from midshard.raw_store import ERRORS, AttachmentResult, RawStore
from midshard.settings import Settings
from midshard.snowflakes import snowflake_at
from midshard.store import Store

OnBatch = Callable[[str, list[dict]], Awaitable[None]]


@dataclass
class CollectStats:
    """Counters of a run, summarised at the end; every count is also reported to the live progress."""

    started: float = field(default_factory=time.monotonic)
    messages: int = 0
    batches: int = 0
    already_stored: int = 0  # messages an import skipped because the store already had them
    media_files: int = 0
    media_bytes: int = 0
    not_selected: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # attachment failure reason -> count
    channel_errors: dict[int, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def on_batch(self, channel_id: int, messages: int) -> None:
        """A page of `messages` committed as one raw batch of `channel_id`."""
        self.batches += 1
        self.messages += messages
        progress.report("history", f"channel {channel_id}", pages=1, messages=messages)

    def on_result(self, result: AttachmentResult, size: int) -> None:
        """An attachment settled: `size` bytes stored, or why not."""
        if result.sha256:
            self.media_files += 1
            self.media_bytes += size
            progress.report("downloads", files=1, bytes=size)
        elif result.error == "not_selected":
            self.not_selected += 1
            progress.report("downloads", not_selected=1)
        else:
            self.failures[result.error] += 1
            progress.report("downloads", failed=1)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        megabytes = self.media_bytes / 1e6
        return (
            f"{self.messages} messages ({self.messages / elapsed:.0f}/s) · {self.media_files} files "
            f"{megabytes:.1f} MB ({megabytes / elapsed:.1f} MB/s) · {sum(self.failures.values())} failed"
        )

    def summary(self) -> list[str]:
        lines = [f"done in {time.monotonic() - self.started:.1f} s: {self.line()}"]
        if self.already_stored:
            lines.append(f"{self.already_stored} messages were already in the raw store (skipped)")
        if self.not_selected:
            lines.append(f"{self.not_selected} attachments not downloaded (--download filtered)")
        for reason, count in sorted(self.failures.items()):
            why = ERRORS.get(reason, "the CDN's final answer after all retries")
            lines.append(f"failed attachments, {reason}: {count} ({why})")
        lines += [f"channel {cid} failed: {error}" for cid, error in sorted(self.channel_errors.items())]
        lines += [f"warning: {warning}" for warning in self.warnings]
        return lines


# -- the pieces ------------------------------------------------------------------------------------
async def fetch_history(
    session: DiscordSession,
    raw: RawStore,
    channel_id: int,
    *,
    settings: Settings,
    max_pages: int | None = None,
    on_batch: OnBatch | None = None,
) -> list[str]:
    """Page a channel from its cursor (or `settings.since` on a first run); one batch per page.

    A batch's atomic rename (in a worker thread, so the other channels keep paging) commits it.
    The cursor file is a cache of the newest committed id (`RawStore.cursor` also reads the batch
    names), so it is written once, when the paging stops for any reason.
    """
    cursor = raw.sync_cursor(channel_id)
    if cursor == 0 and settings.since is not None:
        cursor = max(0, snowflake_at(settings.since) - 1)
    paths: list[str] = []
    try:
        while max_pages is None or len(paths) < max_pages:
            page = await session.page_after(channel_id, cursor)
            kill_point("page_fetched")
            batch = checked_page(page, channel_id, session.warnings)
            if not batch:  # the end, or only messages with impossible ids: the cursor cannot move past them
                break
            path = await asyncio.to_thread(raw.write_message_batch, channel_id, batch)  # others keep paging
            kill_point("batch_committed")
            cursor = max(int(m["id"]) for m in batch)
            paths.append(path)
            if on_batch is not None:
                await on_batch(path, batch)
            if len(page) < PAGE_SIZE:
                break
    finally:  # the cursor is only a cache of the batch names: written once, when paging stops
        if paths:
            raw.set_cursor(channel_id, cursor)
    return paths


async def discover_channels(session: DiscordSession, settings: Settings, stats: CollectStats) -> list[int]:
    """The configured channels, each followed by its threads when `include_threads` is set."""
    channels: list[int] = []
    for channel_id in dict.fromkeys(settings.channels):
        channels.append(channel_id)
        if settings.include_threads:
            try:
                channels += await session.thread_ids(channel_id)
            except DiscordError as exc:
                stats.channel_errors[channel_id] = f"listing threads: {exc}"
    return list(dict.fromkeys(channels))


async def _collect_channel(
    session: DiscordSession,
    downloader: MediaDownloader,
    settings: Settings,
    channel_id: int,
    stats: CollectStats,
) -> None:
    raw = downloader.raw
    raw.sweep_temp(channel_id)
    raw.drop_stale_journals(channel_id)
    for batch_path in raw.pending_media_batches(channel_id):  # left unfinished by an earlier run
        await downloader.download_batch(channel_id, batch_path)

    async def media(batch_path: str, page: list[dict]) -> None:
        stats.on_batch(channel_id, len(page))
        await downloader.download_batch(channel_id, batch_path, page)

    try:
        await fetch_history(session, raw, channel_id, settings=settings, on_batch=media)
    except DiscordError as exc:
        stats.channel_errors[channel_id] = str(exc)


async def _run(settings: Settings, token: SecretStr, stats: CollectStats, select: Select | None) -> None:
    raw = RawStore(Store(settings.root))
    async with DiscordSession(settings, token) as session:
        try:
            refresh = LinkRefresher(session)
            async with MediaDownloader(settings, raw, refresh, stats.on_result, select) as downloader:
                channels = await discover_channels(session, settings, stats)
                await asyncio.gather(
                    *(_collect_channel(session, downloader, settings, c, stats) for c in channels)
                )
        finally:
            stats.warnings += session.warnings


# -- entry points ----------------------------------------------------------------------------------
def collect(
    settings: Settings, stats: CollectStats | None = None, select: Select | None = None
) -> CollectStats:
    """Collect every configured channel (and threads) into the raw store; raises `LoginError`."""
    stats = stats or CollectStats()
    asyncio.run(_run(settings, require_token(settings), stats, select))
    return stats


def collect_histories(settings: Settings, stats: CollectStats | None = None) -> dict[int, list[str]]:
    """Commit the next pages of every configured channel (and threads), concurrently on one client
    (Discord's global limit is per token); no media. New batch paths per channel, oldest first."""
    stats = stats or CollectStats()

    async def run() -> dict[int, list[str]]:
        raw = RawStore(Store(settings.root))

        async def history(session: DiscordSession, channel_id: int) -> list[str]:
            async def counted(_path: str, page: list[dict]) -> None:
                stats.on_batch(channel_id, len(page))

            raw.sweep_temp(channel_id)
            raw.drop_stale_journals(channel_id)  # a kill after a results file; no media task comes
            try:
                return await fetch_history(session, raw, channel_id, settings=settings, on_batch=counted)
            except DiscordError as exc:
                stats.channel_errors[channel_id] = str(exc)
                return []

        async with DiscordSession(settings, require_token(settings)) as session:
            try:
                channels = await discover_channels(session, settings, stats)
                pages = await asyncio.gather(*(history(session, c) for c in channels))
            finally:
                stats.warnings += session.warnings
        return dict(zip(channels, pages, strict=True))

    return asyncio.run(run())


def collect_history(settings: Settings, channel_id: int, max_pages: int | None = None) -> list[str]:
    """Commit a channel's next pages (at most `max_pages`) as batches; their paths, oldest first."""

    async def run() -> list[str]:
        raw = RawStore(Store(settings.root))
        raw.sweep_temp(channel_id)
        async with DiscordSession(settings, require_token(settings)) as session:
            return await fetch_history(session, raw, channel_id, settings=settings, max_pages=max_pages)

    return asyncio.run(run())


def collect_media(
    settings: Settings, channel_id: int, batch_paths: list[str] | None = None, select: Select | None = None
) -> list[AttachmentResult]:
    """Download the media of the given batches (default: every unfinished one of the channel).

    Batches already done are skipped. Without a token, expired links are recorded as "expired".
    Each settled attachment is counted in the live progress as it settles.
    """
    stats = CollectStats()

    async def run() -> list[AttachmentResult]:
        raw = RawStore(Store(settings.root))
        raw.drop_stale_journals(channel_id)
        pending = set(raw.pending_media_batches(channel_id))
        todo = [p for p in (batch_paths or sorted(pending)) if p in pending]
        token = resolve_token(settings)
        if token is None:
            downloader = MediaDownloader(settings, raw, None, stats.on_result, select)
            return await _download(downloader, channel_id, todo)
        async with DiscordSession(settings, token) as session:
            downloader = MediaDownloader(settings, raw, LinkRefresher(session), stats.on_result, select)
            return await _download(downloader, channel_id, todo)

    return asyncio.run(run())


async def _download(
    downloader: MediaDownloader, channel_id: int, batch_paths: list[str]
) -> list[AttachmentResult]:
    results: list[AttachmentResult] = []
    async with downloader:
        for batch_path in batch_paths:
            results += await downloader.download_batch(channel_id, batch_path)
    return results

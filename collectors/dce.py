"""DiscordChatExporter (DCE) JSON exports -> the raw store, as if the messages had been scraped.

The export's message objects are kept exactly as they are (camelCase, type names as strings; the
cleaners read both shapes), in batches of at most 100 per channel, and its header (guild, channel,
dateRange, exportedAt, messageCount: every top-level field but `messages`) is kept under
`raw/exports/<sha256 of the file>.json`. Both the 2023 shape and the current one are accepted, with
or without a UTF-8 BOM. Every file is validated before anything is written (its JSON, its shape and
every id in it: `history.id_problem`), so a broken export gives an error naming it and imports nothing.

Messages go through the channel cursor like scraped ones: importing a file twice, or an export that
overlaps what is stored, adds only the newer messages. With `media`, attachments are imported too:
`--media` exports' local files (paths relative to the export, Windows separators) are read from
disk, URL attachments are downloaded like API ones, from the same hosts (`media_sources`: other
hosts only when the user names them in `media_hosts`; an expired link needs a bot token to refresh).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from midshard.collectors.collect import CollectStats
from midshard.collectors.history import PAGE_SIZE, DiscordSession, LinkRefresher, id_problem, snowflake_text
from midshard.collectors.media import MediaDownloader, Refresh, Select, attachment_refs, is_http
from midshard.collectors.token import resolve_token
from midshard.errors import MidshardError
from midshard.raw_store import RawStore, parse_batch_name
from midshard.settings import Settings
from midshard.snowflakes import SnowflakeError, latest_valid
from midshard.store import Store


class ExportError(MidshardError, ValueError):
    """A file that is not a usable DCE JSON export; the message names the file."""


@dataclass(frozen=True, slots=True)
class DceExport:
    path: Path
    sha256: str  # of the file's bytes
    channel_id: int
    header: dict  # every top-level field except `messages`, in file order
    messages: list[dict]  # as in the file, unique ids, ascending


def read_export(path: Path) -> DceExport:
    """Parse and validate one export; `ExportError` says what is wrong with which file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ExportError(f"{path}: cannot read the file ({exc.strerror})") from None
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ExportError(f"{path}: not UTF-8 text, so not a DCE JSON export") from None
    except json.JSONDecodeError as exc:
        raise ExportError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "a truncated or non-JSON export?"
        ) from None
    except RecursionError:
        raise ExportError(f"{path}: not a DCE JSON export: its JSON is nested too deeply") from None

    def broken(why: str) -> ExportError:
        return ExportError(f"{path}: not a DiscordChatExporter JSON export: {why}")

    if not isinstance(document, dict):
        raise broken("the top level is not an object")
    missing = [key for key in ("channel", "messages") if key not in document]
    if missing:
        raise broken(f"missing {', '.join(missing)}")
    channel, messages = document["channel"], document["messages"]
    if not isinstance(channel, dict):
        raise broken("channel is not an object")
    latest = latest_valid()
    try:
        channel_id = snowflake_text(channel.get("id"), "channel.id", latest)
    except SnowflakeError as error:
        raise broken(str(error)) from None
    if not isinstance(messages, list):
        raise broken("messages is not a list")
    for index, message in enumerate(messages):
        problem = id_problem(message, latest)
        if problem is not None:
            raise broken(f"message #{index}: {problem}")
    count = document.get("messageCount")
    if count is not None and count != len(messages):
        raise broken(f"messageCount is {count} but the file holds {len(messages)} messages (truncated?)")
    unique = {message["id"]: message for message in reversed(messages)}  # the first copy of an id wins
    return DceExport(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        channel_id=channel_id,
        header={key: value for key, value in document.items() if key != "messages"},
        messages=sorted(unique.values(), key=lambda m: int(m["id"])),
    )


def import_exports(
    settings: Settings,
    paths: Iterable[Path],
    media: bool = False,
    stats: CollectStats | None = None,
    select: Select | None = None,
) -> CollectStats:
    """Import DCE exports into `settings.root`; all files are validated first (`ExportError`).
    With `media`, `select` picks the attachments worth fetching (see `MediaDownloader`)."""
    exports = [read_export(Path(p)) for p in paths]
    exports.sort(key=lambda e: (e.channel_id, int(e.messages[0]["id"]) if e.messages else 0))
    stats = stats or CollectStats()
    raw = RawStore(Store(settings.root))
    for export in exports:
        _import_messages(raw, export, stats)
    if media:
        asyncio.run(_import_media(settings, raw, exports, stats, select))
    return stats


def _import_messages(raw: RawStore, export: DceExport, stats: CollectStats) -> None:
    channel_id = export.channel_id
    raw.sweep_temp(channel_id)
    raw.write_export_header(export.sha256, export.header)
    cursor = raw.sync_cursor(channel_id)
    new = [m for m in export.messages if int(m["id"]) > cursor]
    stats.already_stored += len(export.messages) - len(new)
    for start in range(0, len(new), PAGE_SIZE):
        chunk = new[start : start + PAGE_SIZE]
        raw.write_message_batch(channel_id, chunk)
        stats.on_batch(channel_id, len(chunk))
    if new:  # once per export: the batch names are what counts (`RawStore.cursor`), as for history
        raw.set_cursor(channel_id, int(new[-1]["id"]))


def _media_batches(raw: RawStore, export: DceExport) -> list[str]:
    """Unfinished batches of the export's channel that hold this export's messages."""
    ids = {int(m["id"]) for m in export.messages}
    return [p for p in raw.pending_media_batches(export.channel_id) if parse_batch_name(p)[0] in ids]


async def _import_media(
    settings: Settings, raw: RawStore, exports: list[DceExport], stats: CollectStats, select: Select | None
) -> None:
    for export in exports:
        raw.drop_stale_journals(export.channel_id)
    work = [(export, path) for export in exports for path in _media_batches(raw, export)]
    needs_network = any(
        is_http(ref.url)
        for export, path in work
        for message in raw.read_batch(path)
        for ref in attachment_refs(message, export.channel_id)
    )
    token = resolve_token(settings) if needs_network else None
    async with contextlib.AsyncExitStack() as stack:
        refresh: Refresh | None = None
        if token is not None:
            session = await stack.enter_async_context(DiscordSession(settings, token))
            refresh = LinkRefresher(session)
        downloader = MediaDownloader(settings, raw, refresh, stats.on_result, select)
        await stack.enter_async_context(downloader)
        for export, path in work:
            await downloader.download_batch(export.channel_id, path, export_dir=export.path.parent)

"""The raw store: the dataset's source of truth, append-only and lossless.

Layout under the data root:

    raw/messages/<channel_id>/<first_id>-<last_id>.jsonl.gz   messages exactly as received, ascending id
    raw/attachments/<channel_id>/<first_id>-<last_id>.jsonl   attachment id -> sha256 | error, per batch
    raw/attachments/<channel_id>/<first_id>-<last_id>.partial.jsonl   journal of an unfinished batch
    raw/media/<sha256[:2]>/<sha256>                           original bytes, content-addressed
    raw/media/<attachment id>.<random>.tmp                    a download in progress
    raw/exports/<sha256 of the export file>.json              header of an imported DCE export
    state/cursors.json                                        newest committed message id per channel

Ids in file names are zero-padded to 20 digits so names sort by id. A message batch is committed
by its atomic rename; the cursor is only a cache of the newest committed id, so a kill between
the two loses nothing and duplicates nothing (`cursor()` takes the max of both).

A batch's media is done when its attachment results file exists. Until then every finished
attachment is appended to the batch's journal (`BatchJournal`: no fsync per line, see there), so a
killed run repeats no finished download; the results file is written atomically from the journal
and the journal removed. Media is streamed in (`MediaWriter`) and renamed to its content address
once complete. One writer per channel at a time (the collectors guarantee it within a run); media
writes are safe to share. Whoever writes somewhere next sweeps the temporary files a killed writer
left there, never while another writer may own them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import tempfile
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from isal import igzip

from midshard.errors import MidshardError
from midshard.killpoints import kill_point
from midshard.media_writer import MediaWriter
from midshard.snowflakes import snowflake
from midshard.store import TMP_SUFFIX, Store

MESSAGES = "raw/messages"
ATTACHMENTS = "raw/attachments"
MEDIA = "raw/media"
EXPORTS = "raw/exports"
CURSORS = "state/cursors.json"
JOURNAL_SUFFIX = ".partial.jsonl"
# ISA-L's gzip at level 2: a tenth of zlib level 6's CPU for a 100-message page (0.3 ms, not 3.8),
# about a quarter more bytes (~420 B per message); mtime=0 keeps a batch's bytes a function of its
# messages. Any gzip reader reads it.
BATCH_COMPRESSION = 2

log = logging.getLogger("midshard.raw")
_cursor_lock = threading.Lock()  # batch tasks of one process may commit cursors from several threads


def batch_name(first_id: int, last_id: int) -> str:
    return f"{first_id:020d}-{last_id:020d}"


def parse_batch_name(name: str) -> tuple[int, int]:
    stem = name.split("/")[-1].split(".")[0]
    first, last = stem.split("-")
    return int(first), int(last)


def dumps_line(obj: object) -> str:
    """One raw JSON line: key order as received, no escaping of non-ASCII.

    Unless the object holds text UTF-8 cannot encode (a lone surrogate, from a `\\udXXX` JSON escape
    without its pair): that line is written with every non-ASCII character escaped, so the message
    is still stored exactly as received and reads back the same, and its batch stays writable."""
    line = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, separators=(",", ":"))
    return line


def encode_line(obj: object) -> bytes:
    """`dumps_line` as UTF-8 with its newline, by orjson (ten times faster, the same bytes but for
    the spelling of a few floats); the standard encoder takes what orjson refuses (integers beyond
    64 bits)."""
    try:
        return orjson.dumps(obj) + b"\n"
    except orjson.JSONEncodeError:
        return (dumps_line(obj) + "\n").encode("utf-8")


# Why an attachment has no stored bytes; any other final HTTP status is recorded as "http_<status>".
ERRORS: dict[str, str] = {
    "not_selected": "not downloaded: its message cannot pass the message-level filters (--download all)",
    "gone": "the link is dead even freshly refreshed, or the message was deleted",
    "expired": "the signed link expired and there was no bot token to refresh it",
    "refresh_failed": "the link was refused and Discord would not re-sign it (refresh and re-fetch failed)",
    "size_mismatch": "the bytes received differ from the declared size (Content-Length / size)",
    "too_large": "declared or received size above max_file_size",
    "timeout": "connect or read timeout on every attempt",
    "connection": "connection reset or body cut short on every attempt",
    "deadline": "the whole download, every attempt and wait included, took longer than download_deadline",
    "missing_local_file": "a DiscordChatExporter --media path that does not exist next to the export",
    "scheme_not_allowed": "the link is not http(s): file:, ftp:, data: and other schemes are never fetched",
    "host_not_allowed": "the link's host is not Discord's CDN, the API base's host or one of media_hosts",
    "private_address": "the host resolves to a loopback, private, link-local or other non-public address",
    "redirect_not_allowed": "a redirect pointed to a scheme or host that links may not use",
    "too_many_redirects": "more than 5 redirects in a row",
}


@dataclass(frozen=True, slots=True)
class AttachmentResult:
    """Where an attachment's bytes are: a media sha256, or the reason they are not."""

    attachment_id: int
    message_id: int
    sha256: str = ""
    error: str = ""  # one of ERRORS below, or "http_<status>"

    def to_json(self) -> dict[str, str]:
        out = {"attachment_id": str(self.attachment_id), "message_id": str(self.message_id)}
        out["sha256" if self.sha256 else "error"] = self.sha256 or self.error
        return out

    @classmethod
    def from_json(cls, obj: dict[str, str]) -> AttachmentResult:
        return cls(
            int(obj["attachment_id"]), int(obj["message_id"]), obj.get("sha256", ""), obj.get("error", "")
        )


class RawStore:
    """Read and append the raw part of a data root."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- messages --------------------------------------------------------------------------------
    def channels(self) -> list[int]:
        return sorted(int(name) for name in self.store.list_dirs(MESSAGES) if name.isdigit())

    def message_batches(self, channel_id: int) -> list[str]:
        return self.store.list(f"{MESSAGES}/{channel_id}", ".jsonl.gz")

    def write_message_batch(self, channel_id: int, messages: list[dict]) -> str:
        """Write one batch (any order in, ascending id out) atomically; returns its path."""
        if not messages:
            raise ValueError("empty message batch")
        ordered = sorted(messages, key=lambda m: int(m["id"]))
        name = batch_name(int(ordered[0]["id"]), int(ordered[-1]["id"]))
        data = igzip.compress(b"".join(map(encode_line, ordered)), compresslevel=BATCH_COMPRESSION, mtime=0)
        path = f"{MESSAGES}/{channel_id}/{name}.jsonl.gz"
        with self.store.open_write(path) as handle:
            handle.write(data)
            kill_point("batch_unrenamed")
        return path

    def read_batch(self, path: str, problems: list[str] | None = None) -> list[dict]:
        """The messages of a batch. A damaged file loses only what is damaged: a truncated gzip
        stream gives the lines before the cut, a torn or invalid line is skipped; each problem is
        described (file and line) in `problems`, or logged when no list is given."""
        found: list[str] = [] if problems is None else problems
        data, damage = _gunzip(self.store.read_bytes(path))
        if damage:
            found.append(f"{path}: {damage}")
        messages = []
        # "\n" only: str.splitlines() also splits at U+2028, U+0085..., which prompts may hold unescaped
        lines = data.split(b"\n")
        if damage and lines:
            lines[-1] = b""  # the line the cut went through
        for number, line in enumerate(lines, 1):
            if not line:
                continue
            try:
                message = json.loads(line)
            except ValueError as error:  # not UTF-8, or not JSON
                found.append(f"{path}: line {number} is not a JSON message ({error})")
                continue
            if isinstance(message, dict):
                messages.append(message)
            else:
                found.append(f"{path}: line {number} is not a JSON object")
        if problems is None:
            for problem in found:
                log.warning("skipped: %s", problem)
        return messages

    def iter_messages(self, channel_id: int | None = None) -> Iterator[tuple[int, dict]]:
        """(channel_id, raw message) in ascending id per channel, each id once."""
        for channel in [channel_id] if channel_id is not None else self.channels():
            seen_up_to = -1
            for path in self.message_batches(channel):
                for message in self.read_batch(path):
                    message_id = int(message["id"])
                    if message_id > seen_up_to:
                        seen_up_to = message_id
                        yield channel, message

    # -- cursors ---------------------------------------------------------------------------------
    def cursors(self) -> dict[int, int]:
        if not self.store.exists(CURSORS):
            return {}
        return {int(k): int(v) for k, v in json.loads(self.store.read_text(CURSORS)).items()}

    def cursor(self, channel_id: int) -> int:
        """Newest committed message id of a channel (0 if none): max of the cursor file and batches.

        A cursor that is not a valid snowflake (one in the future: no id gets in that way now, but a
        hand edit or an older version could have put it there) is a `SnowflakeError`, not a channel
        whose collection silently stops."""
        batches = self.message_batches(channel_id)
        newest_batch = parse_batch_name(batches[-1])[1] if batches else 0
        cursor = max(self.cursors().get(channel_id, 0), newest_batch)
        return snowflake(cursor, f"the cursor of channel {channel_id}") if cursor else 0

    def sync_cursor(self, channel_id: int) -> int:
        """The channel's cursor, after catching the cursor file up with the batches (a kill can
        leave it one batch behind)."""
        cursor = self.cursor(channel_id)
        if cursor and self.cursors().get(channel_id, 0) < cursor:
            self.set_cursor(channel_id, cursor)
        return cursor

    def set_cursor(self, channel_id: int, message_id: int) -> None:
        snowflake(message_id, f"the new cursor of channel {channel_id}")
        with _cursor_lock:
            cursors = self.cursors()
            cursors[channel_id] = max(cursors.get(channel_id, 0), message_id)
            text = json.dumps({str(k): str(v) for k, v in sorted(cursors.items())}, indent=1)
            self.store.write_text(CURSORS, text + "\n")

    def sweep_temp(self, channel_id: int) -> None:
        """Remove what a killed run left of this channel's history writes (the history writer's job,
        at its start): temporary batch files, and copies of the cursor file. The latter under the
        cursor lock, so no cursor write of this process is in flight; other processes do not write
        this root's history at the same time."""
        self._remove_temp(f"{MESSAGES}/{channel_id}", "")
        with _cursor_lock:
            self._remove_temp(posixpath.dirname(CURSORS), posixpath.basename(CURSORS) + ".")

    def _remove_temp(self, folder: str, prefix: str) -> None:
        base = self.store.path(folder)
        if not self.store.fs.exists(base):
            return
        for entry in self.store.fs.ls(base, detail=False):
            name = posixpath.basename(entry)
            if name.startswith(prefix) and name.endswith(TMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):  # another sweeper was faster
                    self.store.fs.rm(entry)

    # -- media -----------------------------------------------------------------------------------
    @staticmethod
    def media_path(sha256: str) -> str:
        return f"{MEDIA}/{sha256[:2]}/{sha256}"

    def has_media(self, sha256: str) -> bool:
        return self.store.exists(self.media_path(sha256))

    def media_writer(self, tag: str) -> MediaWriter:
        """A streamed write of one file into the media store; `tag` names its temporary file."""
        folder = Path(self.store.path(MEDIA)) if self.store.local else Path(tempfile.gettempdir())
        return MediaWriter(self, folder, tag)

    def put_media(self, data: bytes) -> str:
        """Store bytes content-addressed; returns the sha256 (no write if already stored)."""
        with self.media_writer("bytes") as writer:
            writer.write([data])
            return writer.commit()

    def sweep_media_temp(self, tags: Iterable[str]) -> None:
        """Remove the temporary files killed writers left for these tags (attachment ids): the job of
        whoever fetches those attachments next, so it never races another writer."""
        wanted = set(tags)
        if not self.store.local or not wanted:
            return  # elsewhere the temporary files live in the local temp folder
        folder = Path(self.store.path(MEDIA))
        if folder.is_dir():
            for entry in folder.iterdir():
                if entry.name.endswith(TMP_SUFFIX) and entry.name.split(".", 1)[0] in wanted:
                    entry.unlink(missing_ok=True)

    def read_media(self, sha256: str) -> bytes:
        return self.store.read_bytes(self.media_path(sha256))

    # -- attachment index ------------------------------------------------------------------------
    @staticmethod
    def attachments_path(channel_id: int, batch_path: str) -> str:
        stem = batch_path.split("/")[-1].split(".")[0]
        return f"{ATTACHMENTS}/{channel_id}/{stem}.jsonl"

    def pending_media_batches(self, channel_id: int) -> list[str]:
        """Message batches of a channel whose media is not done yet, oldest first."""
        done = {
            posixpath.basename(path).split(".")[0]
            for path in self.store.list(f"{ATTACHMENTS}/{channel_id}", ".jsonl")
            if not path.endswith(JOURNAL_SUFFIX)
        }
        return [
            path
            for path in self.message_batches(channel_id)
            if posixpath.basename(path).split(".")[0] not in done
        ]

    def sweep_batch_temp(self, channel_id: int, batch_path: str) -> None:
        """Remove temporary files a killed run left for this batch's media (its one writer's job)."""
        stem = batch_path.split("/")[-1].split(".")[0]
        self._remove_temp(f"{ATTACHMENTS}/{channel_id}", stem + ".")

    def drop_stale_journals(self, channel_id: int) -> None:
        """Remove journals of batches whose results file exists (a kill between the two); nobody
        writes to a done batch's journal again, so this is safe at any time."""
        for journal in self.store.list(f"{ATTACHMENTS}/{channel_id}", JOURNAL_SUFFIX):
            if self.store.exists(journal.removesuffix(JOURNAL_SUFFIX) + ".jsonl"):
                self.store.remove(journal)

    @staticmethod
    def journal_path(channel_id: int, batch_path: str) -> str:
        stem = batch_path.split("/")[-1].split(".")[0]
        return f"{ATTACHMENTS}/{channel_id}/{stem}{JOURNAL_SUFFIX}"

    def open_journal(self, channel_id: int, batch_path: str) -> BatchJournal:
        return BatchJournal(self, self.journal_path(channel_id, batch_path))

    def finish_attachment_results(
        self, channel_id: int, batch_path: str, results: Iterable[AttachmentResult]
    ) -> None:
        """Commit a batch's media: the results file (atomic), then drop the journal."""
        self.write_attachment_results(channel_id, batch_path, results)
        kill_point("results_written")
        self.store.remove(self.journal_path(channel_id, batch_path))

    def write_attachment_results(
        self, channel_id: int, batch_path: str, results: Iterable[AttachmentResult]
    ) -> None:
        ordered = sorted(results, key=lambda r: r.attachment_id)
        text = "".join(dumps_line(r.to_json()) + "\n" for r in ordered)
        self.store.write_text(self.attachments_path(channel_id, batch_path), text)

    def batch_attachment_results(
        self, channel_id: int, batch_path: str
    ) -> dict[int, AttachmentResult] | None:
        """One batch's recorded attachment results (attachment id -> result); None while its media
        is not done (no results file yet)."""
        path = self.attachments_path(channel_id, batch_path)
        return self._read_results(path) if self.store.exists(path) else None

    def attachment_results(self, channel_id: int | None = None) -> dict[int, AttachmentResult]:
        """Every recorded attachment result (attachment id -> result)."""
        out: dict[int, AttachmentResult] = {}
        channels = [channel_id] if channel_id is not None else self.channels()
        for channel in channels:
            for path in self.store.list(f"{ATTACHMENTS}/{channel}", ".jsonl"):
                if path.endswith(JOURNAL_SUFFIX):
                    continue
                out.update(self._read_results(path))
        return out

    def _read_results(self, path: str) -> dict[int, AttachmentResult]:
        results = (
            AttachmentResult.from_json(json.loads(line))
            for line in self.store.read_text(path).splitlines()
            if line
        )
        return {result.attachment_id: result for result in results}

    # -- DiscordChatExporter headers ---------------------------------------------------------------
    @staticmethod
    def export_header_path(file_sha256: str) -> str:
        return f"{EXPORTS}/{file_sha256}.json"

    def write_export_header(self, file_sha256: str, header: dict) -> None:
        """Keep an export's top-level fields (all but `messages`) as they are; written once."""
        path = self.export_header_path(file_sha256)
        if not self.store.exists(path):
            self.store.write_text(path, dumps_line(header) + "\n")


def existing_raw_store(root: str) -> RawStore:
    """The raw store of `root`, or a clear error if there is none (a typo must not start a rebuild
    that would replace a dataset with an empty one)."""
    raw = RawStore(Store(root))
    if not raw.channels():
        raise MidshardError(
            f"no raw store at {root}: nothing to rebuild from (expected {MESSAGES}/<channel>/)"
        )
    return raw


def _gunzip(data: bytes) -> tuple[bytes, str]:
    """(what decompresses, "" or what was wrong): a stream cut short keeps the bytes before the cut."""
    inflater = zlib.decompressobj(wbits=31)  # gzip container
    try:
        out = inflater.decompress(data)
    except zlib.error as error:
        return b"", f"not a readable gzip file ({error})"
    if not inflater.eof:
        return out, "the gzip stream is cut short (a truncated file)"
    return out, ""


class BatchJournal:
    """The journal of one unfinished batch: one JSON line per finished attachment.

    Each line goes out in one unbuffered write and is not fsynced. A killed process loses nothing it
    wrote (the kernel holds it); a crash of the machine can lose the newest lines, and their
    attachments are fetched again. A line is written only after its media file is fsynced and in
    place, and `read` skips lines whose media file is missing, so a line never stands for bytes
    that are not stored. The batch's results file, written atomically at the end, is the commit.
    """

    def __init__(self, raw: RawStore, path: str) -> None:
        self._raw = raw
        self._path = path
        self._fd: int | None = None
        self._append = threading.Lock()  # appends may come from several threads

    def __enter__(self) -> BatchJournal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def read(self) -> dict[int, AttachmentResult]:
        """Results journaled so far; a torn line (a kill mid-append) or a vanished file is skipped."""
        store = self._raw.store
        if not store.exists(self._path):
            return {}
        out: dict[int, AttachmentResult] = {}
        for line in store.read_bytes(self._path).decode("utf-8", errors="replace").splitlines():
            try:
                result = AttachmentResult.from_json(json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue
            if not result.sha256 or self._raw.has_media(result.sha256):
                out[result.attachment_id] = result
        return out

    def append(self, result: AttachmentResult) -> None:
        line = (dumps_line(result.to_json()) + "\n").encode("utf-8")
        with self._append:
            self._write(line)

    def _write(self, line: bytes) -> None:
        store = self._raw.store
        if not store.local:  # object stores cannot append: republish the whole (small) journal
            old = store.read_bytes(self._path) if store.exists(self._path) else b""
            store.write_bytes(self._path, old + (b"\n" if old and not old.endswith(b"\n") else b"") + line)
            return
        if self._fd is None:
            target = Path(store.path(self._path))
            target.parent.mkdir(parents=True, exist_ok=True)
            torn = not _ends_with_newline(target)
            self._fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if torn:  # never glue a line onto the torn one a kill left
                os.write(self._fd, b"\n")
        os.write(self._fd, line)


def _ends_with_newline(path: Path) -> bool:
    """True for a missing or empty file, or one whose last byte is a newline."""
    with contextlib.suppress(FileNotFoundError), path.open("rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"
    return True

"""The raw store: the dataset's source of truth, append-only and lossless.

Layout under the data root:

    raw/messages/<channel_id>/<first_id>-<last_id>.jsonl.gz   messages exactly as received, ascending id
    raw/attachments/<channel_id>/<first_id>-<last_id>.jsonl   attachment id -> sha256 | error, per batch
    raw/attachments/<channel_id>/<first_id>-<last_id>.partial.jsonl   journal of an unfinished batch
    raw/media/<sha256[:2]>/<sha256>                           original bytes, content-addressed
    raw/exports/<sha256 of the export file>.json              header of an imported DCE export
    state/cursors.json                                        newest committed message id per channel

Ids in file names are zero-padded to 20 digits so names sort by id. A message batch is committed
by its atomic rename; the cursor is only a cache of the newest committed id, so a kill between
the two loses nothing and duplicates nothing (`cursor()` takes the max of both).

A batch's media is done when its attachment results file exists. Until then every finished
attachment is appended to the batch's journal, so a killed run repeats no finished download; the
results file is written atomically from the journal and the journal removed. One writer per
channel at a time (the collectors guarantee it within a run); media writes are safe to share.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import posixpath
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from midshard.killpoints import kill_point
from midshard.store import TMP_SUFFIX, Store

MESSAGES = "raw/messages"
ATTACHMENTS = "raw/attachments"
MEDIA = "raw/media"
EXPORTS = "raw/exports"
CURSORS = "state/cursors.json"
JOURNAL_SUFFIX = ".partial.jsonl"

_cursor_lock = threading.Lock()  # batch tasks of one process may commit cursors from several threads


def batch_name(first_id: int, last_id: int) -> str:
    return f"{first_id:020d}-{last_id:020d}"


def parse_batch_name(name: str) -> tuple[int, int]:
    stem = name.split("/")[-1].split(".")[0]
    first, last = stem.split("-")
    return int(first), int(last)


def dumps_line(obj: object) -> str:
    """One raw JSON line: key order as received, no escaping of non-ASCII."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


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
    "missing_local_file": "a DiscordChatExporter --media path that does not exist next to the export",
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
        text = "".join(dumps_line(m) + "\n" for m in ordered)
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as gz:  # mtime=0: same bytes
            gz.write(text.encode("utf-8"))
        path = f"{MESSAGES}/{channel_id}/{name}.jsonl.gz"
        with self.store.open_write(path) as handle:
            handle.write(buffer.getvalue())
            kill_point("batch_unrenamed")
        return path

    def read_batch(self, path: str) -> list[dict]:
        raw = gzip.decompress(self.store.read_bytes(path)).decode("utf-8")
        # "\n" only: str.splitlines() also splits at U+2028, U+0085..., which prompts may hold unescaped
        return [json.loads(line) for line in raw.split("\n") if line]

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
        """Newest committed message id of a channel (0 if none): max of the cursor file and batches."""
        batches = self.message_batches(channel_id)
        newest_batch = parse_batch_name(batches[-1])[1] if batches else 0
        return max(self.cursors().get(channel_id, 0), newest_batch)

    def sync_cursor(self, channel_id: int) -> int:
        """The channel's cursor, after catching the cursor file up with the batches (a kill can
        leave it one batch behind)."""
        cursor = self.cursor(channel_id)
        if cursor and self.cursors().get(channel_id, 0) < cursor:
            self.set_cursor(channel_id, cursor)
        return cursor

    def set_cursor(self, channel_id: int, message_id: int) -> None:
        with _cursor_lock:
            cursors = self.cursors()
            cursors[channel_id] = max(cursors.get(channel_id, 0), message_id)
            text = json.dumps({str(k): str(v) for k, v in sorted(cursors.items())}, indent=1)
            self.store.write_text(CURSORS, text + "\n")

    def sweep_temp(self, channel_id: int) -> None:
        """Remove temporary batch files a killed run left for this channel (the history writer's job)."""
        self._remove_temp(f"{MESSAGES}/{channel_id}", "")

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

    def put_media(self, data: bytes) -> str:
        """Store bytes content-addressed; returns the sha256 (no write if already stored).

        Temporary copies of the same file that a killed writer left are removed once the file is
        in place. A concurrent writer of the same bytes whose copy goes that way finds the file
        stored and is done too.
        """
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.media_path(sha256)
        if not self.has_media(sha256):
            try:
                self.store.write_bytes(path, data)
            except FileNotFoundError:
                if not self.has_media(sha256):
                    raise
        if self.store.local:
            self._remove_temp(posixpath.dirname(path), sha256 + ".")
        return sha256

    def read_media(self, sha256: str) -> bytes:
        return self.store.read_bytes(self.media_path(sha256))

    # -- attachment index ------------------------------------------------------------------------
    @staticmethod
    def attachments_path(channel_id: int, batch_path: str) -> str:
        stem = batch_path.split("/")[-1].split(".")[0]
        return f"{ATTACHMENTS}/{channel_id}/{stem}.jsonl"

    def has_attachment_results(self, channel_id: int, batch_path: str) -> bool:
        return self.store.exists(self.attachments_path(channel_id, batch_path))

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

    def read_journal(self, channel_id: int, batch_path: str) -> dict[int, AttachmentResult]:
        """Results already journaled for an unfinished batch; a torn line (a kill mid-append) is skipped."""
        path = self.journal_path(channel_id, batch_path)
        if not self.store.exists(path):
            return {}
        out: dict[int, AttachmentResult] = {}
        for line in self.store.read_bytes(path).decode("utf-8", errors="replace").splitlines():
            try:
                result = AttachmentResult.from_json(json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue
            out[result.attachment_id] = result
        return out

    def append_journal(self, channel_id: int, batch_path: str, result: AttachmentResult) -> None:
        """Durably add one finished attachment to the batch's journal."""
        path = self.journal_path(channel_id, batch_path)
        line = (dumps_line(result.to_json()) + "\n").encode("utf-8")
        if not self.store.local:  # object stores cannot append: republish the whole (small) journal
            old = self.store.read_bytes(path) if self.store.exists(path) else b""
            if old and not old.endswith(b"\n"):
                old += b"\n"
            self.store.write_bytes(path, old + line)
            return
        target = Path(self.store.path(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        torn = not _ends_with_newline(target)  # never glue this line onto a torn one
        with target.open("ab") as handle:
            handle.write(b"\n" + line if torn else line)
            handle.flush()
            os.fsync(handle.fileno())

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

    def attachment_results(self, channel_id: int | None = None) -> dict[int, AttachmentResult]:
        """Every recorded attachment result (attachment id -> result)."""
        out: dict[int, AttachmentResult] = {}
        channels = [channel_id] if channel_id is not None else self.channels()
        for channel in channels:
            for path in self.store.list(f"{ATTACHMENTS}/{channel}", ".jsonl"):
                if path.endswith(JOURNAL_SUFFIX):
                    continue
                for line in self.store.read_text(path).splitlines():
                    if line:
                        result = AttachmentResult.from_json(json.loads(line))
                        out[result.attachment_id] = result
        return out

    # -- DiscordChatExporter headers ---------------------------------------------------------------
    @staticmethod
    def export_header_path(file_sha256: str) -> str:
        return f"{EXPORTS}/{file_sha256}.json"

    def write_export_header(self, file_sha256: str, header: dict) -> None:
        """Keep an export's top-level fields (all but `messages`) as they are; written once."""
        path = self.export_header_path(file_sha256)
        if not self.store.exists(path):
            self.store.write_text(path, json.dumps(header, ensure_ascii=False, indent=1) + "\n")


def _ends_with_newline(path: Path) -> bool:
    """True for a missing or empty file, or one whose last byte is a newline."""
    with contextlib.suppress(FileNotFoundError), path.open("rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"
    return True

"""The raw store: the dataset's source of truth, append-only and lossless.

Layout under the data root:

    raw/messages/<channel_id>/<first_id>-<last_id>.jsonl.gz   messages exactly as received, ascending id
    raw/attachments/<channel_id>/<first_id>-<last_id>.jsonl   attachment id -> sha256 | error, per batch
    raw/media/<sha256[:2]>/<sha256>                           original bytes, content-addressed
    state/cursors.json                                        newest committed message id per channel

Ids in file names are zero-padded to 20 digits so names sort by id. A message batch is committed
by its atomic rename; the cursor is only a cache of the newest committed id, so a kill between
the two loses nothing and duplicates nothing (`cursor()` takes the max of both).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from midshard.store import Store

MESSAGES = "raw/messages"
ATTACHMENTS = "raw/attachments"
MEDIA = "raw/media"
CURSORS = "state/cursors.json"


def batch_name(first_id: int, last_id: int) -> str:
    return f"{first_id:020d}-{last_id:020d}"


def parse_batch_name(name: str) -> tuple[int, int]:
    stem = name.split("/")[-1].split(".")[0]
    first, last = stem.split("-")
    return int(first), int(last)


def dumps_line(obj: object) -> str:
    """One raw JSON line: key order as received, no escaping of non-ASCII."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class AttachmentResult:
    """Where an attachment's bytes are: a media sha256, or the reason they are not."""

    attachment_id: int
    message_id: int
    sha256: str = ""
    error: str = ""  # e.g. "gone", "http_403", "size_mismatch", "too_large", "timeout"

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
        with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:  # mtime=0: byte-reproducible
            gz.write(text.encode("utf-8"))
        path = f"{MESSAGES}/{channel_id}/{name}.jsonl.gz"
        self.store.write_bytes(path, buffer.getvalue())
        return path

    def read_batch(self, path: str) -> list[dict]:
        raw = gzip.decompress(self.store.read_bytes(path)).decode("utf-8")
        return [json.loads(line) for line in raw.splitlines() if line]

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

    def set_cursor(self, channel_id: int, message_id: int) -> None:
        cursors = self.cursors()
        cursors[channel_id] = max(cursors.get(channel_id, 0), message_id)
        text = json.dumps({str(k): str(v) for k, v in sorted(cursors.items())}, indent=1)
        self.store.write_text(CURSORS, text + "\n")

    # -- media -----------------------------------------------------------------------------------
    @staticmethod
    def media_path(sha256: str) -> str:
        return f"{MEDIA}/{sha256[:2]}/{sha256}"

    def has_media(self, sha256: str) -> bool:
        return self.store.exists(self.media_path(sha256))

    def put_media(self, data: bytes) -> str:
        """Store bytes content-addressed; returns the sha256 (no write if already stored)."""
        sha256 = hashlib.sha256(data).hexdigest()
        if not self.has_media(sha256):
            self.store.write_bytes(self.media_path(sha256), data)
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
                if path.endswith(".partial.jsonl"):
                    continue
                for line in self.store.read_text(path).splitlines():
                    if line:
                        result = AttachmentResult.from_json(json.loads(line))
                        out[result.attachment_id] = result
        return out

"""WebDataset tar shards, written with webdataset's `TarWriter`, reproducibly.

Byte-reproducible by construction: samples sorted by key, shard boundaries from a deterministic
rule over that order, a fixed integer mtime, constant owner/mode (TarWriter's), no compression,
ASCII member names shorter than 100 bytes (so Python's tarfile never emits PAX headers: checked
after each write), the original image bytes (verified against the sample's sha256 and size).

`ShardStream` writes a split's shards as key-sorted samples arrive, holding at most one shard's
small members (never its images) in memory. A sample whose stored image no longer matches its
sha256 is left out of its shard and handed back (`WrittenShard.mismatched`), never written.
"""

from __future__ import annotations

import hashlib
import logging
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from midshard import progress
from midshard.errors import MediaMismatchError
from midshard.killpoints import kill_point
from midshard.records import Sample
from midshard.store import Store
from midshard.writers.layout import ShardId
from midshard.writers.schema import dumps
from midshard.writers.tarwriter import TarWriter

log = logging.getLogger("midshard.writers")
ReadImage = Callable[[Sample], bytes]

TAR_MTIME = 1_577_836_800  # 2020-01-01T00:00:00Z: fixed, and not "implausibly old" for GNU tar


@dataclass(frozen=True, slots=True)
class Entry:
    """One sample ready to be written: its record and the small members, image bytes read later."""

    sample: Sample
    json_bytes: bytes  # the .json member (its fields are also the sidecar's columns)
    txt_bytes: bytes

    @classmethod
    def of(cls, sample: Sample, record: dict[str, Any]) -> Entry:
        return cls(sample, dumps(record), sample.prompt.encode("utf-8"))

    @property
    def key(self) -> str:
        return self.sample.key

    @property
    def image_member(self) -> str:
        return f"{self.key}.{self.sample.format}"

    @property
    def payload_size(self) -> int:
        return self.sample.file_size + len(self.json_bytes) + len(self.txt_bytes)


@dataclass(frozen=True, slots=True)
class WrittenShard:
    shard: ShardId
    entries: tuple[Entry, ...]  # the samples written, in order
    filesize: int
    md5sum: str
    image_offsets: dict[str, int]  # key -> byte offset of the image data in the tar
    mismatched: tuple[Sample, ...] = ()  # left out: their image changed (the error is logged)

    @property
    def keys(self) -> list[str]:
        return [entry.key for entry in self.entries]


class _Md5Writer:
    """A write-only file wrapper that hashes and counts what passes through (for the wids index)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def write(self, data: bytes) -> int:
        self.md5.update(data)
        self.size += len(data)
        return self.handle.write(data)


def write_shard(
    store: Store, shard: ShardId, entries: Sequence[Entry], read_image: ReadImage
) -> WrittenShard:
    """Write one tar atomically (nothing visible at its name unless it is complete)."""
    written, mismatched = [], []
    with store.open_write(shard.tar) as handle:
        out = _Md5Writer(handle)
        with TarWriter(out, encoder=False, compress=False, mtime=TAR_MTIME) as tar:
            for entry in entries:
                try:
                    image = _verified_image(entry.sample, read_image)
                except MediaMismatchError as error:
                    log.warning("left out of %s: sample %s: %s", shard.tar_name, entry.key, error)
                    mismatched.append(entry.sample)
                    continue
                tar.write(
                    {
                        "__key__": entry.key,
                        entry.sample.format: image,
                        "json": entry.json_bytes,
                        "txt": entry.txt_bytes,
                    }
                )
                written.append(entry)
    offsets = dict(_image_offsets(store, shard, written))
    return WrittenShard(shard, tuple(written), out.size, out.md5.hexdigest(), offsets, tuple(mismatched))


def _verified_image(sample: Sample, read_image: ReadImage) -> bytes:
    data = read_image(sample)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sample.sha256:
        raise MediaMismatchError(f"the image of sample {sample.key}", sample.sha256, digest)
    if len(data) != sample.file_size:
        raise ValueError(f"sample {sample.key}: {len(data)} image bytes, the sample says {sample.file_size}")
    return data


@dataclass
class ShardStream:
    """The shards of one split, cut with webdataset ShardWriter's rule as entries arrive in key
    order: a new shard starts before an entry once the current one holds `max_count` entries or
    `max_bytes` payload bytes (so a resumed write cuts the remaining entries as the first did)."""

    store: Store
    split: str
    next_index: int
    max_count: int
    max_bytes: int
    read_image: ReadImage
    finish: Callable[[WrittenShard], None]  # sidecar + completion marker of each written shard
    _entries: list[Entry] = field(default_factory=list)
    _bytes: int = 0

    def add(self, entry: Entry) -> None:
        if self._entries and (len(self._entries) >= self.max_count or self._bytes >= self.max_bytes):
            self.flush()
        self._entries.append(entry)
        self._bytes += entry.payload_size

    def flush(self) -> None:
        if not self._entries:
            return
        shard = ShardId(self.split, self.next_index)
        written = write_shard(self.store, shard, self._entries, self.read_image)
        kill_point("shard_written")
        self.finish(written)
        progress.report("shards", self.split, shards=1, samples=len(written.entries))
        log.info("wrote %s: %d samples, %d bytes", shard.tar_name, len(written.entries), written.filesize)
        self.next_index += 1
        self._entries, self._bytes = [], 0


def _image_offsets(store: Store, shard: ShardId, entries: Sequence[Entry]) -> Iterator[tuple[str, int]]:
    """Read the written tar back: check its member names and headers, yield image data offsets."""
    images = {entry.image_member: entry.key for entry in entries}
    with store.open_read(shard.tar) as handle, tarfile.open(fileobj=handle, mode="r:") as tar:
        for member in tar:
            if member.pax_headers or not member.name.isascii() or len(member.name) >= 100:
                raise RuntimeError(f"{shard.tar_name}: member {member.name!r} would need a PAX header")
            if member.name in images:
                yield images[member.name], member.offset_data

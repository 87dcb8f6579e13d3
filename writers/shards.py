"""WebDataset tar shards, written with webdataset's `TarWriter`, reproducibly.

Byte-reproducible by construction: samples sorted by key, shard boundaries from a deterministic
rule over that order, a fixed integer mtime, constant owner/mode (TarWriter's), no compression,
ASCII member names shorter than 100 bytes (so Python's tarfile never emits PAX headers: checked
after each write), the original image bytes (verified against the sample's sha256 and size).
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import webdataset as wds

from midshard.records import Sample
from midshard.store import Store
from midshard.writers.layout import ShardId
from midshard.writers.schema import dumps

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
    keys: tuple[str, ...]
    filesize: int
    md5sum: str
    image_offsets: dict[str, int]  # key -> byte offset of the image data in the tar


def plan_shards(entries: Sequence[Entry], max_count: int, max_bytes: int) -> list[list[Entry]]:
    """Cut key-sorted entries into shards with webdataset ShardWriter's rule: a new shard starts
    before a sample once the current one holds `max_count` samples or `max_bytes` payload bytes.

    The rule is greedy from the front, so the plan of a suffix equals the suffix of the plan: after
    an interrupted write, the samples still missing are cut exactly as the first attempt cut them.
    """
    shards: list[list[Entry]] = []
    size = 0
    for entry in entries:
        if not shards or len(shards[-1]) >= max_count or size >= max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(entry)
        size += entry.payload_size
    return shards


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
    store: Store, shard: ShardId, entries: Sequence[Entry], read_image: Callable[[Sample], bytes]
) -> WrittenShard:
    """Write one tar atomically (nothing visible at its name unless it is complete)."""
    with store.open_write(shard.tar) as handle:
        out = _Md5Writer(handle)
        with wds.TarWriter(out, encoder=False, compress=False, mtime=TAR_MTIME) as tar:
            for entry in entries:
                image = _verified_image(entry.sample, read_image)
                tar.write(
                    {
                        "__key__": entry.key,
                        entry.sample.format: image,
                        "json": entry.json_bytes,
                        "txt": entry.txt_bytes,
                    }
                )
    offsets = dict(_image_offsets(store, shard, entries))
    return WrittenShard(shard, tuple(e.key for e in entries), out.size, out.md5.hexdigest(), offsets)


def _verified_image(sample: Sample, read_image: Callable[[Sample], bytes]) -> bytes:
    data = read_image(sample)
    if len(data) != sample.file_size or hashlib.sha256(data).hexdigest() != sample.sha256:
        raise ValueError(
            f"sample {sample.key}: image bytes do not match the sample's size/sha256 "
            f"({len(data)} bytes, expected {sample.file_size})"
        )
    return data


def _image_offsets(store: Store, shard: ShardId, entries: Sequence[Entry]) -> Iterator[tuple[str, int]]:
    """Read the written tar back: check its member names and headers, yield image data offsets."""
    images = {entry.image_member: entry.key for entry in entries}
    with store.open_read(shard.tar) as handle, tarfile.open(fileobj=handle, mode="r:") as tar:
        for member in tar:
            if member.pax_headers or not member.name.isascii() or len(member.name) >= 100:
                raise RuntimeError(f"{shard.tar_name}: member {member.name!r} would need a PAX header")
            if member.name in images:
                yield images[member.name], member.offset_data

"""What `dataset/` already holds, after recovering from an interrupted write.

A shard is complete iff its `_stats.json` exists (written last). Recovery removes leftover temp
files and every shard file without its marker; the next write then redoes those shards from the
same samples, in the same order, into the same bytes.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from midshard.store import TMP_SUFFIX, Store
from midshard.writers.layout import DATASET, REJECTED, SPLITS, ShardId, parse_shard_file
from midshard.writers.rejected import read_rejected
from midshard.writers.sidecars import ShardStats, read_table


@dataclass(frozen=True, slots=True)
class DatasetState:
    """The complete shards and the keys already written: the keys are Arrow columns (one string
    each in C memory, never a Python object), read from the sidecars' and rejected files' `key`."""

    shards: dict[str, list[ShardStats]]  # split -> complete shards, in index order
    kept: pa.Array  # keys of every sample in a shard
    rejected: pa.Array  # keys of every rejected row

    def kept_among(self, keys: Sequence[str]) -> list[bool]:
        """For each of `keys`: is it already in a shard?"""
        return _present(self.kept, keys)

    def rejected_among(self, keys: Sequence[str]) -> list[bool]:
        """For each of `keys`: is it already recorded in rejected/?"""
        return _present(self.rejected, keys)

    def recorded_among(self, keys: Sequence[str]) -> list[bool]:
        """For each of `keys`: is it in a shard or in rejected/ already?"""
        kept, rejected = self.kept_among(keys), self.rejected_among(keys)
        return [a or b for a, b in zip(kept, rejected, strict=True)]

    def next_index(self, split: str) -> int:
        return len(self.shards[split])


def clear(store: Store) -> None:
    """Remove everything under `dataset/` (a rebuild starts from nothing)."""
    if store.exists(DATASET):
        store.fs.rm(store.path(DATASET), recursive=True)


def recover(store: Store) -> None:
    """Delete temp files and incomplete shards; refuse a dataset with missing or gapped shards."""
    for rel_dir in (DATASET, REJECTED):
        if store.exists(rel_dir):
            for entry in store.fs.ls(store.path(rel_dir), detail=False):
                if entry.endswith(TMP_SUFFIX):
                    store.remove(posixpath.join(rel_dir, posixpath.basename(entry)))
    files: dict[ShardId, set[str]] = defaultdict(set)
    for path in store.list(DATASET):
        parsed = parse_shard_file(posixpath.basename(path))
        if parsed:
            files[parsed[0]].add(parsed[1])
    for shard, kinds in files.items():
        if "_stats.json" not in kinds:
            store.remove(shard.tar)
            store.remove(shard.sidecar)
        elif kinds != {".tar", ".parquet", "_stats.json"}:
            raise RuntimeError(f"{DATASET}/{shard.stem}: marked complete but has only {sorted(kinds)}")
    for split in SPLITS:
        indexes = sorted(s.index for s, kinds in files.items() if s.split == split and "_stats.json" in kinds)
        if indexes != list(range(len(indexes))):
            raise RuntimeError(f"{DATASET}: {split} shards are not numbered 0..n-1 without gaps: {indexes}")


def complete_shards(store: Store) -> dict[str, list[ShardStats]]:
    """The stats of every complete shard, per split in index order (call `recover` first)."""
    shards: dict[str, list[ShardStats]] = {split: [] for split in SPLITS}
    for path in store.list(DATASET, "_stats.json"):
        parsed = parse_shard_file(posixpath.basename(path))
        if parsed:
            shards[parsed[0].split].append(ShardStats.read(store, parsed[0]))
    return shards


def load(store: Store, *, rejected: bool = True) -> DatasetState:
    """The complete shards and the keys written so far (call `recover` first); `rejected=False`
    leaves rejected/'s keys unread (empty) for a caller that asks only about kept samples."""
    shards = complete_shards(store)
    kept = [
        read_table(store, s.shard.sidecar, ["key"]).column("key") for split in SPLITS for s in shards[split]
    ]
    dropped = [table.column("key") for table in read_rejected(store, ["key"])] if rejected else []
    return DatasetState(shards, _keys(kept), _keys(dropped))


def _keys(columns: list[pa.ChunkedArray]) -> pa.Array:
    return pa.chunked_array(columns, pa.string()).combine_chunks() if columns else pa.array([], pa.string())


def _present(values: pa.Array, keys: Sequence[str]) -> list[bool]:
    """Vectorised membership test (rejected/ can hold millions of rows: no Python set of them)."""
    return pc.is_in(pa.array(keys, pa.string()), value_set=values).to_pylist()

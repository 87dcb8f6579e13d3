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
from midshard.writers.sidecars import SIDECAR_SCHEMA, ShardStats, read_table

# Sidecar columns the writers need to read back (skip known keys, tally, report).
KEPT_COLUMNS = (
    "key",
    "split",
    "caption",
    "width",
    "height",
    "mj_version",
    "image_format",
    "file_size",
    "nsfw_score",
    "nsfw_scorer",
    "phash_impl",
    "tar_file",
    "image_offset",
)


@dataclass(frozen=True, slots=True)
class DatasetState:
    shards: dict[str, list[ShardStats]]  # split -> complete shards, in index order
    kept: pa.Table  # KEPT_COLUMNS of every sidecar, in shard order
    rejected: pa.Table  # every rejected row

    def kept_among(self, keys: Sequence[str]) -> set[str]:
        """Which of `keys` are already in a shard."""
        return _present(self.kept, keys)

    def rejected_among(self, keys: Sequence[str]) -> set[str]:
        """Which of `keys` are already recorded in rejected/."""
        return _present(self.rejected, keys)

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


def load(store: Store) -> DatasetState:
    """Read the complete shards' stats and sidecars and the rejected rows (call `recover` first)."""
    shards: dict[str, list[ShardStats]] = {split: [] for split in SPLITS}
    for path in store.list(DATASET, "_stats.json"):
        parsed = parse_shard_file(posixpath.basename(path))
        if parsed:
            shards[parsed[0].split].append(ShardStats.read(store, parsed[0]))
    tables = [read_table(store, s.shard.sidecar, KEPT_COLUMNS) for split in SPLITS for s in shards[split]]
    kept = pa.concat_tables(tables) if tables else _empty(KEPT_COLUMNS)
    return DatasetState(shards, kept, read_rejected(store))


def _present(table: pa.Table, keys: Sequence[str]) -> set[str]:
    """Vectorised membership test (rejected/ can hold millions of rows: no Python set of them)."""
    wanted = pa.array(keys, pa.string())
    mask = pc.is_in(wanted, value_set=table.column("key").combine_chunks())
    return set(wanted.filter(mask).to_pylist())


def _empty(columns: Sequence[str]) -> pa.Table:
    return pa.schema([SIDECAR_SCHEMA.field(c) for c in columns]).empty_table()

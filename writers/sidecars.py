"""Files written beside the shards: per shard a parquet sidecar and an img2dataset-style
`_stats.json` (the completion marker, written last), and for the whole dataset `sizes.json`
(open_clip / DataComp) and one wids shard index per split.

`_stats.json` holds no wall-clock time (img2dataset's duration/start_time/end_time are left out),
so a rebuild is byte-identical.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from midshard.store import Store
from midshard.writers.layout import SIZES, SPLITS, ShardId, wids_index
from midshard.writers.schema import NULLABLE, SAMPLE_FIELDS, SIDECAR_FIELDS
from midshard.writers.shards import WrittenShard

_ARROW_TYPES = {str: pa.string(), int: pa.int64(), float: pa.float64()}
SIDECAR_SCHEMA = pa.schema(
    [
        pa.field(name, _ARROW_TYPES[kind], nullable=name in NULLABLE)
        for name, (kind, _) in {**SAMPLE_FIELDS, **SIDECAR_FIELDS}.items()
    ]
)


def dumps_pretty(obj: Any) -> bytes:
    """Deterministic, human-readable JSON for the dataset-level files."""
    return (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def write_table(store: Store, rel: str, table: pa.Table) -> None:
    """Parquet with pinned options (the bytes then depend only on the rows and pyarrow's version)."""
    with store.open_write(rel) as handle:
        pq.write_table(table, handle, compression="zstd", compression_level=3)


def read_table(store: Store, rel: str, columns: Sequence[str] | None = None) -> pa.Table:
    with store.open_read(rel) as handle:
        return pq.read_table(handle, columns=list(columns) if columns is not None else None)


def write_sidecar(store: Store, written: WrittenShard) -> None:
    rows = [
        {
            **json.loads(entry.json_bytes),
            "tar_file": written.shard.tar_name,
            "image_member": entry.image_member,
            "image_offset": written.image_offsets[entry.key],
        }
        for entry in written.entries
    ]
    write_table(store, written.shard.sidecar, pa.Table.from_pylist(rows, schema=SIDECAR_SCHEMA))


@dataclass(frozen=True, slots=True)
class ShardStats:
    """The content of `{shard}_stats.json`."""

    shard: ShardId
    count: int
    filesize: int
    md5sum: str
    run: str  # id of the write_dataset run that wrote the shard

    def to_json(self) -> dict[str, Any]:
        return {
            # img2dataset's counters: every sample of a shard is a success (drops live in rejected/)
            "count": self.count,
            "successes": self.count,
            "failed_to_download": 0,
            "failed_to_resize": 0,
            "status_dict": {"success": self.count},
            # ours
            "shard": self.shard.tar_name,
            "split": self.shard.split,
            "filesize": self.filesize,
            "md5sum": self.md5sum,
            "run": self.run,
        }

    @classmethod
    def read(cls, store: Store, shard: ShardId) -> ShardStats:
        data = json.loads(store.read_bytes(shard.stats))
        return cls(shard, data["count"], data["filesize"], data["md5sum"], data["run"])


def write_stats(store: Store, written: WrittenShard, run: str) -> ShardStats:
    stats = ShardStats(written.shard, len(written.entries), written.filesize, written.md5sum, run)
    store.write_bytes(written.shard.stats, dumps_pretty(stats.to_json()))
    return stats


def write_sizes(store: Store, shards: Mapping[str, Sequence[ShardStats]]) -> None:
    sizes = {s.shard.tar_name: s.count for split in SPLITS for s in shards[split]}
    store.write_bytes(SIZES, dumps_pretty(sizes))


def write_wids_indexes(store: Store, shards: Mapping[str, Sequence[ShardStats]], name: str) -> list[str]:
    """One wids index per non-empty split; shard URLs are relative to the index's own directory."""
    paths = []
    for split in SPLITS:
        if not shards[split]:
            continue
        index = {
            "__kind__": "wids-shard-index-v1",
            "wids_version": 1,
            "name": f"{name}-{split}",
            "shardlist": [
                {"url": s.shard.tar_name, "md5sum": s.md5sum, "nsamples": s.count, "filesize": s.filesize}
                for s in shards[split]
            ],
        }
        store.write_bytes(wids_index(split), dumps_pretty(index))
        paths.append(wids_index(split))
    return paths

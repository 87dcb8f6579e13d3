"""The feature cache on disk and its index in memory: parquet parts under `derived/features/`,
and one columnar index per process over them.

Each `append` writes one parquet part (one per `FeatureStore.compute` that computed something).
Every process keeps one `FeatureIndex` per feature directory: it reads all parts once, then only
the parts it has not seen — its own new ones, and those other processes (Dask workers) wrote since;
the directory is listed on every lookup. Later parts win per key; an invalidated key's latest row
is a tombstone (an empty decision). More than `COMPACT_AT` parts are merged into one when a process
first opens the cache.

The index is columnar: the keys are one numpy array of fixed-width bytes (hex digest + tile digit),
kept sorted, and the values Arrow columns aligned with it, so a lookup is a binary search per key
and only the rows asked for become Python objects (`Features`).
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
import typing
import uuid
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from midshard.cleaners.image_features import Features, Key, undecided
from midshard.store import Store

FEATURES_DIR = "derived/features"
COMPACT_AT = 64  # parts; more are merged into one when a process first opens the cache
MERGE_AT = 65_536  # recent rows held beside the main index before they are merged into it
_TOMBSTONE = ""  # the decision of an invalidated key's latest row


def _columns(record: type) -> pa.Schema:
    """The Arrow schema of a record's fields (see `Features`)."""
    plain = {str: "string", int: "int64", float: "float64"}
    hints = typing.get_type_hints(record, include_extras=True)
    return pa.schema(
        [
            (name, pa.type_for_alias(hint.__metadata__[0] if hasattr(hint, "__metadata__") else plain[hint]))
            for name, hint in hints.items()
        ]
    )


SCHEMA = _columns(Features)  # the columns of every part
# In memory the key columns live in the index's key array, and the few distinct values of these
# columns are dictionary-encoded: about 75 bytes per cached image besides its 65-byte key.
_REPEATED = ("decision", "format", "phash_impl", "nsfw_scorer", "tile_encoder")
_VALUES = pa.schema(
    [
        f.with_type(pa.dictionary(pa.int32(), pa.string())) if f.name in _REPEATED else f
        for f in SCHEMA
        if f.name not in ("sha256", "tile")
    ]
)


_OPEN: dict[str, FeatureIndex] = {}  # one index per feature directory, for the whole process
_OPEN_LOCK = threading.Lock()


class FeatureIndex:
    """Every cached row of one feature directory, in this process (see the module docstring).

    `main` holds most rows; `recent` the rows added since the last merge, so that adding a batch
    costs in proportion to the batch, not to the cache.
    """

    def __init__(self) -> None:
        self.main = _Rows.empty()
        self.recent = _Rows.empty()
        self.seen: set[str] = set()  # parts read or written by this process
        self.opened = False
        self.lock = threading.Lock()

    @classmethod
    def of(cls, store: Store) -> FeatureIndex:
        where = store.fs.unstrip_protocol(store.path(FEATURES_DIR))
        with _OPEN_LOCK:
            return _OPEN.setdefault(where, cls())

    def lookup(self, store: Store, keys: list[Key]) -> dict[Key, Features]:
        """The latest cached row of each key that has one (tombstones count as none)."""
        with self.lock:
            self._refresh(store)
            wanted = _encode(keys)
            found: dict[Key, Features] = {}
            for rows in (self.recent, self.main):  # recent rows are newer
                todo = [i for i, key in enumerate(keys) if key not in found]
                hits = rows.find(wanted[todo])
                chosen = [todo[i] for i in np.flatnonzero(hits >= 0)]
                values = rows.values.take(pa.array(hits[hits >= 0])).to_pylist()
                for i, row in zip(chosen, values, strict=True):
                    found[keys[i]] = Features(keys[i][0], keys[i][1], **row)
            return {key: f for key, f in found.items() if f.decision != _TOMBSTONE}

    def append(self, store: Store, features: list[Features]) -> None:
        """Persist `features` as one new part and add them to the index."""
        table = pa.Table.from_pylist([dataclasses.asdict(f) for f in features], schema=SCHEMA)
        with self.lock:
            name = _part_name()
            with store.open_write(name) as handle:
                pq.write_table(table, handle)
            self.seen.add(name)
            self._add(table)

    def invalidate(self, store: Store, sha256s: Iterable[str]) -> None:
        """Write a tombstone for every tile of these files that has cached features."""
        candidates = [(sha256, tile) for sha256 in dict.fromkeys(sha256s) for tile in range(5)]
        wanted = _encode(candidates)
        with self.lock:
            self._refresh(store)
            cached = (self.recent.find(wanted) >= 0) | (self.main.find(wanted) >= 0)
        tombstones = [
            undecided(sha256, (tile,), _TOMBSTONE)[0]
            for sha256, tile in itertools.compress(candidates, cached)
        ]
        if tombstones:
            self.append(store, tombstones)

    def _refresh(self, store: Store) -> None:
        """Read the parts this process has not seen (all of them the first time), oldest first."""
        parts = store.list(FEATURES_DIR, ".parquet")
        if self.seen and self.seen.isdisjoint(parts):  # the cache was deleted, or compacted elsewhere
            self.main, self.recent, self.seen = _Rows.empty(), _Rows.empty(), set()
        new = [part for part in parts if part not in self.seen]
        if not new:
            self.opened = True
            return
        tables = [pq.read_table(store.open_read(part), schema=SCHEMA) for part in new]
        self.seen.update(new)
        self._add(pa.concat_tables(tables))
        if not self.opened and len(parts) > COMPACT_AT:
            self._compact(store, parts)
        self.opened = True
        pa.default_memory_pool().release_unused()  # the parts as read: ~2x the index at its peak

    def _add(self, table: pa.Table) -> None:
        self.recent = self.recent.plus(_Rows.of(table))
        if len(self.recent) >= MERGE_AT:
            self.main, self.recent = self.main.plus(self.recent), _Rows.empty()

    def _compact(self, store: Store, parts: list[str]) -> None:
        """Replace the parts just read by one part of their latest live rows."""
        self.main, self.recent = self.main.plus(self.recent), _Rows.empty()
        name = _part_name()
        with store.open_write(name) as handle:
            pq.write_table(self.main.live_table(), handle)
        self.seen.add(name)
        for part in parts:
            store.remove(part)


@dataclasses.dataclass(frozen=True, slots=True)
class _Rows:
    """Rows with one latest value per key: `keys` sorted (`_encode`d), `values` aligned with them."""

    keys: np.ndarray
    values: pa.Table

    @classmethod
    def empty(cls) -> _Rows:
        return cls(np.empty(0, dtype="S65"), _VALUES.empty_table())

    @classmethod
    def of(cls, table: pa.Table) -> _Rows:
        """From rows in SCHEMA, oldest first: the last row of each key wins."""
        return cls.latest(_keys_of(table), table.drop_columns(["sha256", "tile"]).cast(_VALUES))

    @classmethod
    def latest(cls, keys: np.ndarray, values: pa.Table) -> _Rows:
        """Rows oldest first, sorted by key with the last row of each key kept."""
        order = key_order(keys)
        ordered = keys[order]
        last = np.append(ordered[1:] != ordered[:-1], True)  # the last of each run of equal keys
        return cls(ordered[last], values.take(pa.array(order[last])))

    def __len__(self) -> int:
        return len(self.keys)

    def plus(self, newer: _Rows) -> _Rows:
        if not len(self):
            return newer
        values = pa.concat_tables([self.values, newer.values]).combine_chunks()
        return _Rows.latest(np.concatenate([self.keys, newer.keys]), values)

    def find(self, wanted: np.ndarray) -> np.ndarray:
        """Row of each wanted key, or -1."""
        if not len(self) or not len(wanted):
            return np.full(len(wanted), -1, dtype=np.int64)
        at = np.searchsorted(self.keys, wanted).clip(max=len(self) - 1)
        return np.where(self.keys[at] == wanted, at, -1)

    def live_table(self) -> pa.Table:
        """The rows in SCHEMA, tombstones left out (a missing row means the same)."""
        keys = self.keys.view(np.uint8).reshape(-1, 65)
        table = self.values.add_column(
            0, "sha256", pa.array(keys[:, :64].copy().view("S64").ravel(), pa.binary())
        )
        table = table.add_column(1, "tile", pa.array((keys[:, 64] - ord("0")).astype(np.int8)))
        live = pc.not_equal(table.column("decision").cast(pa.string()), _TOMBSTONE)
        return table.filter(live).cast(SCHEMA)


def _part_name() -> str:
    """A new part's path: named in time order, unique across processes."""
    return f"{FEATURES_DIR}/part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"


def _encode(keys: list[Key]) -> np.ndarray:
    """Keys as fixed-width bytes that sort like (sha256, tile): the hex digest, then the tile digit."""
    return np.array([f"{sha256}{tile}" for sha256, tile in keys], dtype="S65")


def key_order(keys: np.ndarray) -> np.ndarray:
    """`np.argsort(keys, kind="stable")` of `_encode`d keys, in a fraction of the time: stable
    numeric passes over the digest's four 64-bit words and the tile instead of string compares
    (lower-case hex sorts like the digest's bytes)."""
    chars = keys.view(np.uint8).reshape(-1, 65)
    nibbles = (chars[:, :64] & 0x0F) + 9 * (chars[:, :64] >> 6)  # "0"-"9" -> 0-9, "a"-"f" -> 10-15
    words = np.ascontiguousarray((nibbles[:, 0::2] << 4) | nibbles[:, 1::2]).view(">u8")
    return np.lexsort((chars[:, 64], words[:, 3], words[:, 2], words[:, 1], words[:, 0]))


def _keys_of(table: pa.Table) -> np.ndarray:
    """`_encode` of a table's (sha256, tile) columns, straight from the Arrow buffers."""
    shas = table.column("sha256").combine_chunks()
    count = len(shas)
    if not count:
        return np.empty(0, dtype="S65")
    offsets = np.frombuffer(shas.buffers()[1], dtype=np.int32, count=count + 1, offset=4 * shas.offset)
    if shas.null_count or np.any(np.diff(offsets) != 64):
        raise ValueError("a feature cache part holds a sha256 that is not 64 hex digits")
    digests = np.frombuffer(shas.buffers()[2], dtype=np.uint8, count=64 * count, offset=int(offsets[0]))
    keys = np.empty((count, 65), dtype=np.uint8)
    keys[:, :64] = digests.reshape(count, 64)
    keys[:, 64] = table.column("tile").to_numpy().astype(np.uint8) + ord("0")
    return keys.view("S65").ravel()

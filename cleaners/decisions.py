"""`derived/decisions/`: one row per candidate, in parts a run appends and never rewrites.

Each part holds the candidates of one chunk of messages (rows sorted by key, `midshard.schema.
DECISION_SCHEMA`) and, in its parquet metadata, what a later run needs without reading rows: the
raw batches it settles (every candidate of them has a final decision, so they are never parsed
again), its decision counts (the funnel is their sum), and how many messages it decided first.

A candidate is decided once, except that a download failure is decided again when its file arrives
later, and the writer may find a stored file changed since it was examined: such a row goes into a
later part marked `supersedes`, whose metadata also counts the decisions it replaces. The live row
of a key is its latest one; only keys of superseding parts can have an older row, so resolving that
costs the size of those parts, not of the history.

Everything here is read as Arrow columns (lineage, kept hashes, counts) or streamed in batches
(samples and rejections for the writers), never as one Python object per stored row.
"""

from __future__ import annotations

import heapq
import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from midshard.cleaners.dedup import KEY_DTYPE, KeptHashes
from midshard.cleaners.registry import STEPS, funnel_key, in_funnel_order
from midshard.killpoints import kill_point
from midshard.records import Reason, Rejection, Sample
from midshard.schema import DECISION_SCHEMA, rejection_row, row_rejection, row_sample
from midshard.store import Store

DECISIONS = "derived/decisions"
_META = b"midshard"
_READ_ROWS = 4096  # rows per record batch when streaming samples and rejections


class Verdict(NamedTuple):
    """A stored decision and the step that made it ("" for keep)."""

    decision: str
    step: str

    @property
    def tally_key(self) -> str:
        """What a part counts: `step|funnel_key` (so both the funnel and the steps add up)."""
        return f"{self.step}|{funnel_key(self.decision)}"


@dataclass
class PartInfo:
    """The metadata of one part."""

    settles: list[str] = field(default_factory=list)  # raw batch paths now fully decided
    counts: dict[str, int] = field(default_factory=dict)  # Verdict.tally_key -> rows in this part
    replaced: dict[str, int] = field(default_factory=dict)  # Verdict.tally_key -> older rows superseded
    messages: int = 0  # messages decided for the first time
    supersedes: bool = False
    keys: tuple[str, str] | None = None  # first and last key of its rows (None: no rows)

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class LineageColumns:
    """Every decided message's own conditioning and parent, as sorted columns."""

    ids: np.ndarray  # uint64, sorted, unique
    conditioned: np.ndarray  # bool
    parents: np.ndarray  # uint64, 0 = none

    def get(self, message_id: int) -> tuple[bool, int | None] | None:
        at = int(np.searchsorted(self.ids, np.uint64(message_id)))
        if at == len(self.ids) or int(self.ids[at]) != message_id:
            return None
        parent = int(self.parents[at])
        return bool(self.conditioned[at]), parent or None


class DecisionStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._info: dict[str, PartInfo] = {}

    # -- parts ---------------------------------------------------------------------------------
    def parts(self) -> list[str]:
        return self.store.list(DECISIONS, ".parquet")

    def info(self, part: str) -> PartInfo:
        if part not in self._info:
            with self.store.open_read(part) as handle:
                metadata = pq.read_schema(handle).metadata or {}
            values = json.loads(metadata.get(_META, b"{}"))
            keys = values.pop("keys", None)
            self._info[part] = PartInfo(**values, keys=tuple(keys) if keys else None)
        return self._info[part]

    def append(self, rows: Sequence[dict], info: PartInfo) -> str | None:
        """Persist one part atomically (rows in any order); None when there is nothing to record."""
        if not rows and not info.settles:
            return None
        ordered = sorted(rows, key=lambda row: row["key"])
        if ordered:
            info.keys = (ordered[0]["key"], ordered[-1]["key"])
        table = pa.Table.from_pylist(ordered, schema=DECISION_SCHEMA)
        table = table.replace_schema_metadata({_META: info.to_json()})
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        path = f"{DECISIONS}/part-{len(self.parts()):06d}.parquet"
        self.store.write_bytes(path, buffer.getvalue())
        self._info[path] = info
        kill_point("decisions_written")
        return path

    def supersede(self, rejections: Sequence[Rejection], step: str) -> str | None:
        """Record that kept candidates were dropped after all, by `step` (the writer found their
        stored image changed): a superseding part, so every later reader sees the new decision."""
        if not rejections:
            return None
        rows = [{**rejection_row(r), "step": step} for r in rejections]
        counts = Counter(Verdict(r.decision, step).tally_key for r in rejections)
        replaced = {Verdict("keep", "").tally_key: len(rejections)}
        return self.append(rows, PartInfo(counts=dict(counts), replaced=replaced, supersedes=True))

    def clear(self) -> None:
        for path in self.parts():
            self.store.remove(path)
        self._info.clear()

    def settled_batches(self) -> set[str]:
        return {batch for part in self.parts() for batch in self.info(part).settles}

    # -- aggregates (from the parts' metadata alone) ----------------------------------------------
    def _totals(self) -> Counter[str]:
        totals: Counter[str] = Counter()
        for part in self.parts():
            info = self.info(part)
            totals.update(info.counts)
            totals.subtract(info.replaced)
        return totals

    def funnel(self) -> dict[str, int]:
        """Live decisions by `funnel_key` (step order, keep last)."""
        return _by_funnel_key(self._totals())

    def decided(self, parts: Sequence[str]) -> dict[str, int]:
        """The decisions `parts` record (their own rows, what they replace aside), by `funnel_key`."""
        counts: Counter[str] = Counter()
        for part in parts:
            counts.update(self.info(part).counts)
        return _by_funnel_key(counts)

    def steps(self) -> dict[str, dict[str, int]]:
        """Per step, in order: the live candidates it saw and dropped (datatrove-style stats)."""
        totals = self._totals()
        dropped: Counter[str] = Counter()
        for key, count in totals.items():
            dropped[key.split("|", 1)[0]] += count
        left = sum(totals.values())
        out = {}
        for step in STEPS:
            out[step.name] = {"seen": left, "dropped": dropped[step.name]}
            left -= dropped[step.name]
        return out

    def stages(self) -> dict[str, int]:
        """The funnel as a reader reads it: messages, candidates, then those left after each reason."""
        funnel = self.funnel()
        stages = {"messages": self.messages(), "candidates": sum(funnel.values())}
        left = stages["candidates"]
        for reason in dict.fromkeys(key.split(":")[0] for key in funnel if key != "keep"):
            left -= sum(n for key, n in funnel.items() if key.split(":")[0] == reason)
            stages[f"after {reason}"] = left
        return stages

    def messages(self) -> int:
        return sum(self.info(part).messages for part in self.parts())

    def messages_per_channel(self) -> dict[int, int]:
        """Distinct messages decided, per channel: two integer columns of every part (distinct, as a
        superseding part repeats messages of older parts)."""
        tables = [self._read(part, ["channel_id", "message_id"]) for part in self.parts()]
        if not tables:
            return {}
        table = pa.concat_tables(tables)
        grouped = table.group_by("channel_id").aggregate([("message_id", "count_distinct")])
        channels = grouped["channel_id"].to_pylist()
        return dict(zip(channels, grouped["message_id_count_distinct"].to_pylist(), strict=True))

    # -- columns ---------------------------------------------------------------------------------
    def live(self, columns: Sequence[str], parts: Sequence[str] | None = None) -> Iterator[pa.Table]:
        """Per part (oldest first), its live rows (these columns, `key` first), sorted by key."""
        every = self.parts()
        later = self._superseding_keys(every)
        for part in every if parts is None else parts:
            yield self._live_part(part, columns, later)

    def table(self, columns: Sequence[str]) -> pa.Table:
        """Every live row (these columns, `key` first): for small roots, `status` and tests."""
        parts = list(self.live(columns))
        names = ["key", *(c for c in columns if c != "key")]
        return pa.concat_tables(parts) if parts else DECISION_SCHEMA.empty_table().select(names)

    def lineage(self) -> LineageColumns:
        tables = [self._read(p, ["message_id", "conditioned", "parent_id"]) for p in self.parts()]
        if not tables:
            empty = np.zeros(0, np.uint64)
            return LineageColumns(empty, np.zeros(0, bool), empty)
        table = pa.concat_tables(tables)
        ids = table.column("message_id").to_numpy()
        ids, first = np.unique(ids, return_index=True)
        conditioned = table.column("conditioned").fill_null(False).to_numpy(zero_copy_only=False)[first]
        parents = table.column("parent_id").fill_null(0).to_numpy()[first]
        return LineageColumns(ids, conditioned.astype(bool), parents.astype(np.uint64))

    def duplicates(self) -> dict[str, str]:
        """Each live `duplicate_of` drop: its key -> the kept key it duplicates (only these rows)."""
        prefix = f"{Reason.DUPLICATE.value}:"
        found: dict[str, str] = {}
        for table in self.live(["decision"]):
            hits = table.filter(pc.starts_with(table.column("decision"), prefix)).to_pydict()
            found.update(zip(hits["key"], (d.removeprefix(prefix) for d in hits["decision"]), strict=True))
        return found

    def kept_hashes(self) -> KeptHashes:
        keys, phash, dhash = [], [], []
        for table in self.live(["decision", "phash", "dhash"]):
            duplicate = pc.starts_with(table.column("decision"), Reason.DUPLICATE.value)
            table = table.filter(pc.and_(pc.is_valid(table.column("phash")), pc.invert(duplicate)))
            keys.append(table.column("key").to_numpy(zero_copy_only=False).astype(KEY_DTYPE))
            phash.append(table.column("phash").to_numpy())
            dhash.append(table.column("dhash").to_numpy())
        if not keys:
            return KeptHashes.empty()
        return KeptHashes(np.concatenate(keys), np.concatenate(phash), np.concatenate(dhash))

    def previous(self, keys: Iterable[str]) -> dict[str, Verdict]:
        """The live decision of each of `keys` that has one."""
        wanted = pa.array(sorted(set(keys)), pa.string())
        found: dict[str, Verdict] = {}
        if not len(wanted):
            return found
        lo, hi = wanted[0].as_py(), wanted[-1].as_py()
        overlapping = [p for p in self.parts() if (k := self.info(p).keys) and k[0] <= hi and k[1] >= lo]
        for table in self.live(["decision", "step"], overlapping):
            hits = table.filter(pc.is_in(table.column("key"), value_set=wanted)).to_pydict()
            for key, decision, step in zip(hits["key"], hits["decision"], hits["step"], strict=True):
                found[key] = Verdict(decision, step or "")
        return found

    # -- streams for the writers -------------------------------------------------------------------
    def samples(self, parts: Sequence[str]) -> Iterator[Sample]:
        """Kept samples of `parts`, in key order."""
        return self._in_key_order(parts, kept=True)

    def rejections(self, parts: Sequence[str]) -> Iterator[Rejection]:
        """Rejected candidates of `parts`, in key order."""
        return self._in_key_order(parts, kept=False)

    def _in_key_order(self, parts: Sequence[str], *, kept: bool) -> Iterator:
        """Parts one after the other where their key ranges do not overlap (a run's chunks never
        do), merged where they do: one part's rows are held at a time, not the whole run's."""
        ranged = sorted((self.info(p).keys, p) for p in parts if self.info(p).keys is not None)
        later = self._superseding_keys(self.parts())
        group: list[str] = []
        last = ""
        for (first, end), part in ranged:
            if group and first > last:
                yield from heapq.merge(*(self._stream(p, later, kept) for p in group), key=lambda r: r.key)
                group = []
            group.append(part)
            last = max(last, end)
        yield from heapq.merge(*(self._stream(p, later, kept) for p in group), key=lambda r: r.key)

    def _stream(
        self, part: str, later: dict[str, pa.Array], kept: bool
    ) -> Iterator[Sample] | Iterator[Rejection]:
        table = self._live_part(part, DECISION_SCHEMA.names, later)
        is_kept = pc.equal(table.column("decision"), "keep")
        table = table.filter(is_kept if kept else pc.invert(is_kept))
        convert = row_sample if kept else row_rejection
        for batch in table.to_batches(_READ_ROWS):
            yield from (convert(row) for row in batch.to_pylist())

    # -- reading ---------------------------------------------------------------------------------
    def _live_part(self, part: str, columns: Sequence[str], later: dict[str, pa.Array]) -> pa.Table:
        """One part's live rows (these columns, `key` first): less the keys `later` parts decided again."""
        table = self._read(part, ["key", *(c for c in columns if c != "key")])
        newer = later.get(part)
        if newer is not None and len(newer):
            table = table.filter(pc.invert(pc.is_in(table.column("key"), value_set=newer)))
        return table

    def _read(self, part: str, columns: Sequence[str]) -> pa.Table:
        with self.store.open_read(part) as handle:
            return pq.read_table(handle, columns=list(columns))

    def _superseding_keys(self, every: list[str]) -> dict[str, pa.Array]:
        """Part -> keys decided again by a later superseding part (parts without any: absent)."""
        superseding = [(n, p) for n, p in enumerate(every) if self.info(p).supersedes]
        if not superseding:
            return {}
        keys = {n: self._read(p, ["key"]).column("key").combine_chunks() for n, p in superseding}
        out = {}
        for n, part in enumerate(every):
            later = [keys[m] for m, _ in superseding if m > n]
            if later:
                out[part] = pa.concat_arrays(later)
        return out


def _by_funnel_key(tallies: Counter[str]) -> dict[str, int]:
    """`Verdict.tally_key` counts summed by their funnel key, in funnel order."""
    by_decision: Counter[str] = Counter()
    for key, count in tallies.items():
        by_decision[key.split("|", 1)[1]] += count
    return in_funnel_order(dict(by_decision))

"""The writers' entry point: new kept samples and rejections in (key order), an updated `dataset/` out.

One call = one run. It recovers from an interrupted earlier write, appends new shards after the
existing ones (old shards are never rewritten), appends the new rejections, records the run in the
manifest (a run given nothing leaves the runs as they are), then rewrites the dataset-level files
from what is on disk: sizes.json, the wids indexes, manifest.json, README.md
and report.html. Samples and rejections stream through: at most one shard's small members per split
are held at a time. Keys already in the dataset are skipped (a vectorised test against the key
columns), so rerunning a killed write is safe and gives the bytes an uninterrupted write gives.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from midshard import progress as live  # the live display (`progress` below: this call's counts)
from midshard.killpoints import kill_point
from midshard.records import Reason, Rejection, Sample
from midshard.schema import PROVENANCE
from midshard.settings import Settings
from midshard.store import Store
from midshard.writers import state as dataset_state
from midshard.writers.card import write_card
from midshard.writers.layout import CARD, DATASET, MANIFEST, REPORT, SIZES, SPLITS, ShardId
from midshard.writers.manifest import (
    RunInfo,
    build_manifest,
    check_settings,
    merge_runs,
    previous_runs,
    run_entry,
    write_manifest,
)
from midshard.writers.rejected import RejectedStream, rows_of_run
from midshard.writers.report import write_report
from midshard.writers.schema import sample_record
from midshard.writers.shards import Entry, ReadImage, ShardStream, WrittenShard
from midshard.writers.sidecars import write_sidecar, write_sizes, write_stats, write_wids_indexes
from midshard.writers.tally import tally

__all__ = ["DatasetSummary", "RunInfo", "write_dataset"]

WIDS_NAME = "midshard"
BATCH = 4096  # samples or rejections checked against the dataset's keys at a time
log = logging.getLogger(__name__)
T = TypeVar("T", Sample, Rejection)


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    """What one call did, and what the dataset now holds."""

    dataset: str  # path of dataset/ in the store
    run_id: str
    written: dict[str, int]  # samples written by this call, per split
    skipped: int  # input samples already in the dataset
    rejections_written: int
    shards_written: tuple[str, ...]
    samples: dict[str, int]  # cumulative, per split
    rejected: int  # cumulative
    files: tuple[str, ...]  # dataset-level files rewritten (relative to the store root)
    mismatched: tuple[Sample, ...] = ()  # left out: their stored image no longer hashes to sha256


@dataclass
class _Progress:
    written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    seen: int = 0
    skipped: int = 0
    shards: list[ShardId] = field(default_factory=list)
    mismatched: list[Sample] = field(default_factory=list)


def write_dataset(
    store: Store,
    samples: Iterable[Sample],
    rejections: Iterable[Rejection],
    read_image: ReadImage,
    settings: Settings,
    run: RunInfo,
    *,
    rebuild: bool = False,
    read_rejected_image: Callable[[Rejection], bytes | None] | None = None,
) -> DatasetSummary:
    """Append `samples` as new shards and `rejections` to rejected/, then rewrite the indexes.

    Both arrive in key order (ValueError otherwise). `read_image` returns a sample's original
    bytes: checked against its sha256 and size; a sample whose bytes no longer match is left out
    and becomes a `media_mismatch` rejection (`DatasetSummary.mismatched` names them).
    `rebuild=True` clears `dataset/` first. `read_rejected_image` (optional) gives the report
    thumbnails of dropped candidates whose media was stored; return None when it was not.
    """
    if rebuild:
        dataset_state.clear(store)
    check_settings(store, settings)
    dataset_state.recover(store)
    before = dataset_state.load(store)
    progress = _Progress()

    def finish(written: WrittenShard) -> None:
        write_sidecar(store, written)
        kill_point("sidecar_written")
        write_stats(store, written, run.id)  # the completion marker, last
        kill_point("shard_completed")
        progress.shards.append(written.shard)
        progress.written[written.shard.split] += len(written.entries)
        progress.mismatched += written.mismatched

    streams = {
        split: ShardStream(
            store, split, before.next_index(split), settings.shard_max_count, settings.shard_max_bytes,
            read_image, finish,
        )
        for split in SPLITS
    }  # fmt: skip
    for batch in _new(samples, before.kept_among, progress):
        for sample in batch:
            record = sample_record(sample, settings.split_salt)
            streams[record["split"]].add(Entry.of(sample, record))
    for stream in streams.values():
        stream.flush()
    live.finish("shards")
    live.start("report")

    mismatched = [mismatch_rejection(sample) for sample in progress.mismatched]
    rejected, rejections_seen = RejectedStream(store, run.id), _Progress()
    for batch in _new(_merged(rejections, mismatched), before.recorded_among, rejections_seen):
        for rejection in batch:
            rejected.add(rejection)
    rejected.flush()
    kill_point("rejected_written")
    live.report("report", rejections=rejected.written)

    after = dataset_state.load(store, rejected=False)  # the tally and report ask about kept keys only
    figures = tally(store, after)
    runs = previous_runs(store)
    if progress.seen or rejections_seen.seen:  # a run with no input leaves the history as it is
        recorded = rows_of_run(store, run.id)
        entry = run_entry(run, settings, progress.seen, rejections_seen.seen, after.shards, recorded)
        runs = merge_runs(runs, entry)
    write_sizes(store, after.shards)
    indexes = write_wids_indexes(store, after.shards, WIDS_NAME)
    manifest = build_manifest(settings, figures, runs, run)
    write_manifest(store, manifest)
    kill_point("manifest_written")
    write_card(store, manifest, figures)
    write_report(store, settings, manifest, figures, after, read_rejected_image)
    log.info(
        "dataset: %d train + %d validation samples (%s), %d rejected; this run wrote %d shards",
        figures.samples["train"],
        figures.samples["validation"],
        figures.ratio,
        sum(figures.rejected.values()),
        len(progress.shards),
    )
    return DatasetSummary(
        dataset=DATASET,
        run_id=run.id,
        written=progress.written,
        skipped=progress.skipped,
        rejections_written=rejected.written,
        shards_written=tuple(shard.tar_name for shard in sorted(progress.shards)),
        samples=figures.samples,
        rejected=sum(figures.rejected.values()),
        files=(SIZES, *indexes, MANIFEST, CARD, REPORT),
        mismatched=tuple(progress.mismatched),
    )


def _new(
    items: Iterable[T], known: Callable[[list[str]], list[bool]], progress: _Progress
) -> Iterator[list[T]]:
    """`items` in batches, without those whose key the dataset already holds; checks key order."""
    last = ""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, BATCH)):
        keys = [item.key for item in batch]
        if keys[0] <= last or any(a >= b for a, b in itertools.pairwise(keys)):
            raise ValueError(
                f"samples and rejections must arrive in strictly increasing key order (at {keys[0]})"
            )
        last = keys[-1]
        flags = known(keys)
        progress.seen += len(flags)
        progress.skipped += sum(flags)
        yield [item for item, present in zip(batch, flags, strict=True) if not present]


def _merged(rejections: Iterable[Rejection], more: list[Rejection]) -> Iterator[Rejection]:
    return heapq.merge(rejections, sorted(more, key=lambda r: r.key), key=lambda r: r.key)


def mismatch_rejection(sample: Sample) -> Rejection:
    """A sample left out because its stored image no longer hashes to its sha256, as a rejection."""
    provenance = {name: getattr(sample, name) for name in PROVENANCE}
    return Rejection(**provenance, decision=Reason.MEDIA_MISMATCH.value, sha256=sample.sha256)

"""The writers' entry point: new kept samples and rejections in, an updated `dataset/` out.

One call = one run. It recovers from an interrupted earlier write, appends new shards after the
existing ones (old shards are never rewritten), appends the new rejections, then rewrites the
dataset-level files from what is on disk: sizes.json, the wids indexes, manifest.json, README.md
and report.html. Samples already in the dataset (same key) are skipped, so rerunning a killed
write is safe and gives the bytes an uninterrupted write would have given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from midshard.killpoints import kill_point
from midshard.records import Rejection, Sample
from midshard.settings import Settings
from midshard.store import Store
from midshard.writers import state as dataset_state
from midshard.writers.card import write_card
from midshard.writers.layout import CARD, DATASET, MANIFEST, REPORT, SIZES, SPLITS, ShardId
from midshard.writers.manifest import (
    RunInfo,
    build_manifest,
    merge_runs,
    previous_runs,
    run_entry,
    run_id,
    write_manifest,
)
from midshard.writers.rejected import rejected_rows, write_rejected
from midshard.writers.report import write_report
from midshard.writers.schema import sample_record
from midshard.writers.shards import Entry, plan_shards, write_shard
from midshard.writers.sidecars import write_sidecar, write_sizes, write_stats, write_wids_indexes
from midshard.writers.split import split_of
from midshard.writers.tally import tally

__all__ = ["DatasetSummary", "RunInfo", "write_dataset"]

WIDS_NAME = "midshard"
log = logging.getLogger(__name__)


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


def write_dataset(
    store: Store,
    samples: Sequence[Sample],
    rejections: Sequence[Rejection],
    read_image: Callable[[Sample], bytes],
    settings: Settings,
    run: RunInfo,
    *,
    rebuild: bool = False,
    read_rejected_image: Callable[[Rejection], bytes | None] | None = None,
) -> DatasetSummary:
    """Append `samples` as new shards and `rejections` to rejected/, then rewrite the indexes.

    `read_image` returns a sample's original bytes (checked against its size and sha256).
    `rebuild=True` clears `dataset/` first. `read_rejected_image` (optional) gives the report
    thumbnails of dropped candidates whose media was stored; return None when it was not.
    """
    _check_inputs(samples, rejections)
    if rebuild:
        dataset_state.clear(store)
    dataset_state.recover(store)
    before = dataset_state.load(store)
    _check_split_salt(before, settings.split_salt)
    rid = run_id(run, [s.key for s in samples], [r.key for r in rejections])

    known = before.kept_among([s.key for s in samples])
    entries: dict[str, list[Entry]] = {split: [] for split in SPLITS}
    for sample in sorted((s for s in samples if s.key not in known), key=lambda s: s.key):
        record = sample_record(sample, settings.split_salt)  # all records checked before any write
        entries[record["split"]].append(Entry.of(sample, record))
    rejection_keys = [r.key for r in rejections]
    skip = before.kept_among(rejection_keys) | before.rejected_among(rejection_keys)
    new_rejections = rejected_rows((r for r in rejections if r.key not in skip), rid)  # validated

    shards_written = []
    for split in SPLITS:
        chunks = plan_shards(entries[split], settings.shard_max_count, settings.shard_max_bytes)
        for number, chunk in enumerate(chunks):
            shard = ShardId(split, before.next_index(split) + number)
            written = write_shard(store, shard, chunk, read_image)
            kill_point("shard_written")
            write_sidecar(store, written, chunk)
            kill_point("sidecar_written")
            write_stats(store, written, rid)  # the completion marker, last
            kill_point("shard_completed")
            shards_written.append(shard.tar_name)
            log.info("wrote %s: %d samples, %d bytes", shard.tar_name, len(chunk), written.filesize)

    write_rejected(store, new_rejections)
    kill_point("rejected_written")

    after = dataset_state.load(store)
    figures = tally(after)
    runs = merge_runs(
        previous_runs(store),
        run_entry(
            run,
            rid,
            settings,
            len(samples),
            len(rejections),
            after.shards,
            after.rejected.column("run").to_pylist().count(rid),
        ),
    )
    write_sizes(store, after.shards)
    indexes = write_wids_indexes(store, after.shards, WIDS_NAME)
    manifest = build_manifest(settings, figures, runs, run.versions)
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
        len(shards_written),
    )
    return DatasetSummary(
        dataset=DATASET,
        run_id=rid,
        written={split: len(entries[split]) for split in SPLITS},
        skipped=len(samples) - sum(len(e) for e in entries.values()),
        rejections_written=len(new_rejections),
        shards_written=tuple(shards_written),
        samples=figures.samples,
        rejected=sum(figures.rejected.values()),
        files=(SIZES, *indexes, MANIFEST, CARD, REPORT),
    )


def _check_inputs(samples: Sequence[Sample], rejections: Sequence[Rejection]) -> None:
    sample_keys = [s.key for s in samples]
    rejection_keys = [r.key for r in rejections]
    for name, keys in (("samples", sample_keys), ("rejections", rejection_keys)):
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate keys in {name}")
    both = set(sample_keys) & set(rejection_keys)
    if both:
        raise ValueError(f"{len(both)} keys are both kept and rejected, e.g. {min(both)}")


def _check_split_salt(current: dataset_state.DatasetState, salt: str) -> None:
    """Refuse to append with a salt that would put the existing samples in other splits."""
    columns = current.kept.select(["key", "caption", "split"]).to_pydict()
    for key, caption, split in zip(columns["key"], columns["caption"], columns["split"], strict=True):
        if split_of(caption, salt) != split:
            raise ValueError(
                f"sample {key} is in {split} but split_salt={salt!r} puts it elsewhere: the dataset was "
                "written with another salt; rebuild it (rebuild=True) to change the salt"
            )

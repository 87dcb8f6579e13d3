"""Cumulative figures over the whole dataset, read back from the sidecars and rejected files (so
they are right after any number of incremental runs). Shared by the manifest, card and report.

One pass, one shard (or rejected file) at a time, reading only the columns it needs: memory is a
few counters plus one 64-bit hash per sample for the distinct-prompt count.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from midshard.cleaners.registry import in_funnel_order
from midshard.store import Store
from midshard.writers.layout import SPLITS
from midshard.writers.rejected import read_rejected
from midshard.writers.sidecars import read_table
from midshard.writers.split import prompt_hash
from midshard.writers.state import DatasetState

# Histogram bins of the report's charts.
MEGAPIXEL_EDGES = [0, 1, 1.5, 2, 3, 4, 6, 9, 16, math.inf]
ASPECT_EDGES = [0, 0.5, 2 / 3, 0.8, 0.95, 1.05, 1.25, 1.5, 2, math.inf]
NSFW_BINS = 20
_COLUMNS = ["caption", "width", "height", "mj_version", "image_format", "nsfw_score"]
_COLUMNS += ["nsfw_scorer", "phash_impl"]


@dataclass(frozen=True, slots=True)
class Tally:
    samples: dict[str, int]  # split -> samples
    prompts: dict[str, int]  # split -> distinct normalised prompts
    shards: dict[str, int]
    tar_bytes: dict[str, int]
    rejected: dict[str, int]  # reason code -> candidates, in pipeline order
    image_formats: dict[str, int]
    mj_versions: dict[str, int]  # "" = not specified in the prompt
    phash_impls: tuple[str, ...]
    nsfw_scorers: tuple[str, ...]
    megapixels: tuple[int, ...]  # histogram counts over MEGAPIXEL_EDGES
    aspect: tuple[int, ...]  # over ASPECT_EDGES (width / height)
    nsfw: tuple[int, ...]  # NSFW_BINS bins over 0..1 (unscored samples not counted)

    @property
    def total(self) -> int:
        return sum(self.samples.values())

    @property
    def ratio(self) -> str:
        """`train:validation` as `20.13:1` (`n/a` with no validation sample yet)."""
        if not self.samples["validation"]:
            return "n/a"
        return f"{self.samples['train'] / self.samples['validation']:.2f}:1"


def tally(store: Store, state: DatasetState) -> Tally:
    hashes: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    formats, versions, impls, scorers = Counter[str](), Counter[str](), set[str](), set[str]()
    megapixels = np.zeros(len(MEGAPIXEL_EDGES) - 1, np.int64)
    aspect = np.zeros(len(ASPECT_EDGES) - 1, np.int64)
    nsfw = np.zeros(NSFW_BINS, np.int64)
    for split in SPLITS:
        for stats in state.shards[split]:
            table = read_table(store, stats.shard.sidecar, _COLUMNS)
            captions = table.column("caption").to_pylist()
            hashes[split].append(
                np.fromiter((prompt_hash(c, "") for c in captions), np.uint64, len(captions))
            )
            formats.update(_counts(table.column("image_format")))
            versions.update(_counts(table.column("mj_version")))
            impls.update(pc.unique(table.column("phash_impl")).to_pylist())
            scorers.update(pc.unique(table.column("nsfw_scorer")).to_pylist())
            width = table.column("width").to_numpy().astype(float)
            height = table.column("height").to_numpy().astype(float)
            megapixels += np.histogram(width * height / 1e6, MEGAPIXEL_EDGES)[0]
            aspect += np.histogram(width / np.maximum(height, 1), ASPECT_EDGES)[0]
            scores = table.column("nsfw_score").drop_null().to_numpy()
            nsfw += np.histogram(scores, NSFW_BINS, range=(0.0, 1.0))[0]
    return Tally(
        samples={split: sum(s.count for s in state.shards[split]) for split in SPLITS},
        prompts={
            split: len(np.unique(np.concatenate(hashes[split] or [np.zeros(0, np.uint64)])))
            for split in SPLITS
        },
        shards={split: len(state.shards[split]) for split in SPLITS},
        tar_bytes={split: sum(s.filesize for s in state.shards[split]) for split in SPLITS},
        rejected=still_dropped(store, state),
        image_formats=dict(sorted(formats.items())),
        mj_versions=dict(sorted(versions.items())),
        phash_impls=tuple(sorted(impls)),
        nsfw_scorers=tuple(sorted(scorers)),
        megapixels=tuple(megapixels.tolist()),
        aspect=tuple(aspect.tolist()),
        nsfw=tuple(nsfw.tolist()),
    )


def still_dropped(store: Store, state: DatasetState) -> dict[str, int]:
    """Rejected candidates by reason, in step order; one kept by a later run no longer counts."""
    reasons = Counter[str]()
    for table in read_rejected(store, ["key", "reason"]):
        kept_later = pc.is_in(table.column("key"), value_set=state.kept)
        reasons.update(_counts(table.column("reason").filter(pc.invert(kept_later))))
    return in_funnel_order(dict(reasons))


def _counts(column: pa.ChunkedArray) -> dict[str, int]:
    return {row["values"]: row["counts"] for row in pc.value_counts(column).to_pylist()}

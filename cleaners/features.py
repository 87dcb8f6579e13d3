"""The feature cache: per-image features by (sha256, tile), computed once and kept under
`derived/features/` of the data root, so a refresh or a rebuild decodes nothing it has seen before.

`FeatureStore(store, settings)` is what the cleaners use: `get(keys)` returns the cached features
still valid under the current settings, `compute(keys, raw)` also computes the missing ones (in the
feature workers, `feature_workers.py`; the computation itself is `image_features.py`), persists
them and returns all. `invalidate(sha256s)` makes the cached features of files count as missing.
A features stage runs inside `with feature_workers(settings):`, which keeps one pool of worker
processes for all its `compute` calls and stops it when the stage ends.

Each `compute` call that computed something writes one parquet part, and every process keeps one
index over the parts, read once and then appended to (`feature_index.py`): no re-reading of every
part per task, and no Python object per cached row.

Cached entries are re-judged under the current settings (resolution rule, pixel limit) from the
stored header fields; only an image that now passes the header checks but was never decoded, or
was hashed or scored by another implementation, is computed again. Answers that may not last — a
worker that crashed on a file, a raw file whose bytes no longer match its sha256 — are returned
but never cached.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import multiprocessing
import os
from collections.abc import Iterable

from fsspec.implementations.memory import MemoryFileSystem
from PIL import ImageFile

from midshard.cleaners.feature_index import FEATURES_DIR, SCHEMA, FeatureIndex
from midshard.cleaners.feature_workers import (
    FeatureWorkers,
    Item,
    Job,
    JobResult,
    local_scorer,
    pool_for,
    run_job,
)
from midshard.cleaners.grids import TILE_ENCODER
from midshard.cleaners.image_features import PHASH_IMPL, Features, Key, Rules, undecided
from midshard.cleaners.images import allow_pixels
from midshard.cleaners.nsfw import scorer_id
from midshard.killpoints import kill_point
from midshard.raw_store import RawStore
from midshard.records import Reason
from midshard.settings import Settings
from midshard.store import Store

__all__ = ["FEATURES_DIR", "PHASH_IMPL", "SCHEMA", "FeatureStore", "Features", "Key", "feature_workers"]

log = logging.getLogger("midshard.cleaners.features")

# Decisions reached by decoding: they stand as long as the header checks still pass.
_DECODED = {"keep", Reason.TRUNCATED_IMAGE.value, Reason.CORRUPT_IMAGE.value}
# Decisions that depend on the settings' header rules, re-judged on every cache read.
_HEADER_RULED = _DECODED | {
    Reason.DECOMPRESSION_BOMB.value,
    Reason.ANIMATED_IMAGE.value,
    Reason.TOO_SMALL.value,
}


def feature_workers(settings: Settings) -> contextlib.AbstractContextManager[object]:
    """The worker processes of one features stage: `with feature_workers(settings):` around it.
    Nothing to start when features are computed in the calling process (see `in_process`)."""
    workers = _worker_count(settings)
    if _in_process(workers):
        return contextlib.nullcontext()
    return FeatureWorkers(workers, settings.nsfw_scorer)


def _worker_count(settings: Settings) -> int:
    return settings.clean_workers or os.cpu_count() or 1


def _in_process(workers: int) -> bool:
    """With one worker, and always in a daemonic process (a Dask worker may not start processes)."""
    return workers == 1 or multiprocessing.current_process().daemon


class FeatureStore:
    """Features by (sha256, tile) under `derived/features/` of the data root."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.rules = Rules.of(settings)
        self.scorer_id = scorer_id(settings.nsfw_scorer)  # validates the name; loads no model
        self.workers = _worker_count(settings)
        self.decoded = 0  # files this instance decoded (0 on a fully cached run)
        self._index = FeatureIndex.of(store)

    def get(self, keys: Iterable[Key]) -> dict[Key, Features]:
        """Cached features still valid under the current settings; missing keys are absent."""
        found = {}
        for key, cached in self._index.lookup(self.store, list(dict.fromkeys(keys))).items():
            settled = self._settle(cached)
            if settled is not None:
                found[key] = settled
        return found

    def compute(self, keys: list[Key], raw: RawStore) -> dict[Key, Features]:
        """Features of every key: cached ones read, missing ones computed, persisted and returned."""
        keys = list(dict.fromkeys(keys))
        found = self.get(keys)
        missing = sorted(key for key in keys if key not in found)
        if not missing:
            return found
        computed, transient = self._compute(missing, raw)
        lasting = [f for f in computed if f.key not in transient]
        if lasting:
            self._index.append(self.store, lasting)
            kill_point("features_cached")
        found.update((f.key, f) for f in computed)
        return found

    def invalidate(self, sha256s: Iterable[str]) -> None:
        """From now on the cached features of these files count as missing, here and in every later
        run (persisted as tombstones), so they are computed again from the bytes."""
        self._index.invalidate(self.store, sha256s)

    def in_process(self) -> bool:
        """Compute in this process, with no pool: with one worker, and always in a daemonic process
        (a Dask worker: it may not start processes of its own)."""
        return _in_process(self.workers)

    # -- computing -------------------------------------------------------------------------------
    def _compute(self, missing: list[Key], raw: RawStore) -> tuple[list[Features], set[Key]]:
        """Computed features (sorted by key), and the keys whose answer must not be cached."""
        transient: set[Key] = set()
        with self._workers() as pool:
            results, broken_jobs = self._run(self._jobs(missing, raw), raw, pool)
            for job in broken_jobs:  # a worker died (a decoder crash?): retry file by file to find it
                for sha256, tiles, data in job.items:
                    single = dataclasses.replace(job, items=((sha256, tiles, data),))
                    alone, broken = self._run([single], raw, pool)
                    if broken:
                        transient.update((sha256, tile) for tile in tiles)  # a crash may be transient (OOM)
                        alone = [JobResult(undecided(sha256, tiles, Reason.CORRUPT_IMAGE.value))]
                    results += alone
        computed = []
        for result in results:
            self.decoded += result.decoded
            computed += result.features
            for mismatch in result.mismatches:
                log.warning(
                    "raw media %s does not match its name: its bytes hash to sha256 %s, not %s",
                    mismatch.path, mismatch.actual, mismatch.expected,
                )  # fmt: skip
        transient.update(
            f.key for f in computed if f.decision == Reason.MEDIA_MISMATCH.value
        )  # until repaired
        return sorted(computed, key=lambda f: f.key), transient

    def _workers(self) -> contextlib.AbstractContextManager[FeatureWorkers | None]:
        """The pool to compute in (the stage's, or one for this call), or none in-process."""
        if self.in_process():
            return contextlib.nullcontext()
        return pool_for(self.workers, self.settings.nsfw_scorer)

    def _run(
        self, jobs: list[Job], raw: RawStore, pool: FeatureWorkers | None
    ) -> tuple[list[JobResult], list[Job]]:
        """Run jobs in the pool (or here without one); results, and the jobs whose worker died."""
        if pool is not None:
            return pool.run(jobs)
        allow_pixels(self.rules.max_image_pixels)  # only ever raised in a process we do not own
        ImageFile.LOAD_TRUNCATED_IMAGES = False  # truncated data must raise, never decode as grey
        scorer = local_scorer(self.settings.nsfw_scorer)
        return [run_job(job, scorer, raw) for job in jobs], []

    def _jobs(self, missing: list[Key], raw: RawStore) -> list[Job]:
        """Group tiles by file and files into jobs of about `nsfw_batch` samples (a worker's unit of
        work; it scores them `INFERENCE_BATCH` at a time)."""
        # Pool workers cannot see this process's memory:// files: send those bytes with the job.
        send = isinstance(raw.store.fs, MemoryFileSystem) and not self.in_process()
        root = raw.store.root if raw.store.local else raw.store.url
        batch = self.settings.nsfw_batch
        items: list[Item] = []
        jobs, size = [], 0
        for sha256, group in itertools.groupby(missing, key=lambda key: key[0]):
            tiles = tuple(tile for _, tile in group)
            items.append((sha256, tiles, raw.read_media(sha256) if send else None))
            size += len(tiles)
            if size >= batch:
                jobs.append(Job(root, self.rules, tuple(items)))
                items, size = [], 0
        if items:
            jobs.append(Job(root, self.rules, tuple(items)))
        return jobs

    # -- caching ---------------------------------------------------------------------------------
    def _settle(self, cached: Features) -> Features | None:
        """The cached entry judged under the current settings, or None if it must be computed."""
        if cached.phash_impl and (cached.phash_impl != PHASH_IMPL or cached.nsfw_scorer != self.scorer_id):
            return None
        if cached.tile and cached.phash_impl and cached.tile_encoder != TILE_ENCODER:
            return None  # the stored tile bytes would not match the recorded digest
        if cached.decision not in _HEADER_RULED or cached.source_pixels == 0:
            return cached  # decided from bytes alone (empty, not an image, beyond Pillow's limit)
        header = self.rules.header_decision(cached.source_pixels, cached.frames, cached.width, cached.height)
        if not header.kept:
            return dataclasses.replace(cached, decision=str(header))
        return cached if cached.decision in _DECODED else None  # passes now, but was never decoded

"""Per-image features from ONE decode, computed on every core and cached by (sha256, tile).

For each image: the header checks (steps 10–14, no decoding), then one decode that yields the
pHash and dHash (`imagehash`, from one shared greyscale copy) and the NSFW scorer's input; the
scorer runs batched. A 2×2 grid split into tiles is decoded once for its four tiles, and each
tile's stored PNG (`grids.tile_bytes`) is encoded from that decode for its sha256 and size.

`FeatureStore.compute` spreads the work over a process pool (`Settings.clean_workers`, 0 = one
per core) whose workers each load one NSFW scorer once; the pool is reused across calls and shut
down at exit. With one worker, or inside a daemonic process (a Dask worker, which may not start
processes), it computes in the calling process instead. Each call persists its results as one
parquet part under `derived/features/`, so a refresh or a rebuild decodes nothing it has seen
before. Cached entries are re-judged under the current settings (resolution rule, pixel limit) from
the stored header fields; only an image that now passes the header checks but was never decoded,
or was scored by another hash/scorer/tile-encoder implementation, is computed again.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import itertools
import multiprocessing
import os
import threading
import time
import uuid
import warnings
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import imagehash
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pyvips
from fsspec.implementations.memory import MemoryFileSystem
from PIL import Image, ImageFile

from midshard.cleaners.grids import TILE_ENCODER, crop_tile, encode_tile, tile_boxes
from midshard.cleaners.images import (
    allow_pixels,
    read_header,
    resolution_decision,
    set_pil_limits,
    source_decision,
)
from midshard.cleaners.nsfw import NsfwScorer, get_scorer, scorer_id
from midshard.killpoints import kill_point
from midshard.raw_store import RawStore
from midshard.records import Decision, Reason
from midshard.settings import Settings
from midshard.store import Store

FEATURES_DIR = "derived/features"
PHASH_IMPL = f"imagehash-{imagehash.__version__}/phash/pil"
COMPACT_AT = 64  # parts; more are merged into one when the cache is opened
MERGE_AT = 65_536  # new entries held in memory before they join the sorted index

Key = tuple[str, int]  # (sha256, tile); tile 0 = the whole image
_FAST_PNG_MODES = {"RGB", "RGBA"}  # PNGs decoded by libvips (see `_decode`)
pyvips.cache_set_max(0)  # no operation cache: every image is decoded once
pyvips.concurrency_set(1)  # one thread per worker process: the processes are the parallelism

# Decisions reached by decoding: they stand as long as the header checks still pass.
_DECODED = {"keep", Reason.TRUNCATED_IMAGE.value, Reason.CORRUPT_IMAGE.value}
# Decisions that depend on the settings' header rules, re-judged on every cache read.
_HEADER_RULED = _DECODED | {
    Reason.DECOMPRESSION_BOMB.value,
    Reason.ANIMATED_IMAGE.value,
    Reason.TOO_SMALL.value,
}


@dataclass(frozen=True, slots=True)
class Features:
    """Everything the cleaners and writers need to know about one image (or one grid tile)."""

    sha256: str
    tile: int
    decision: str  # "keep" or the header/decode failure reason (see records.Reason)
    format: str  # of the source file: png | webp | jpeg | gif ("" if unreadable)
    width: int  # of the sample: the tile's size for tiles
    height: int
    frames: int
    file_size: int  # of the source file
    phash: int  # 64-bit imagehash.phash as an unsigned int (0 unless decoded)
    dhash: int
    phash_impl: str  # "" unless decoded
    nsfw_score: float  # NaN unless decoded (and always NaN with the "none" scorer)
    nsfw_scorer: str
    source_pixels: int = 0  # width × height of the whole file (the grid, for tiles); 0 if unknown
    # A decoded tile's stored bytes (`grids.tile_bytes`, a PNG): their sha256, size and encoder.
    tile_sha256: str = ""
    tile_size: int = 0
    tile_encoder: str = ""

    @property
    def key(self) -> Key:
        return (self.sha256, self.tile)

    @property
    def member(self) -> tuple[str, int, str]:
        """(sha256, size, format) of the bytes a sample of this entry stores in its shard: the file
        itself for a whole image, the tile's PNG for a tile."""
        if self.tile == 0:
            return self.sha256, self.file_size, self.format
        return self.tile_sha256, self.tile_size, "png"


SCHEMA = pa.schema(
    [
        ("sha256", pa.string()),
        ("tile", pa.int8()),
        ("decision", pa.string()),
        ("format", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("frames", pa.int32()),
        ("file_size", pa.int64()),
        ("phash", pa.uint64()),
        ("dhash", pa.uint64()),
        ("phash_impl", pa.string()),
        ("nsfw_score", pa.float32()),
        ("nsfw_scorer", pa.string()),
        ("source_pixels", pa.int64()),
        ("tile_sha256", pa.string()),
        ("tile_size", pa.int64()),
        ("tile_encoder", pa.string()),
    ]
)


@dataclass(frozen=True, slots=True)
class Rules:
    """The settings the header checks need (sent to the workers with each job)."""

    max_image_pixels: int
    min_pixels: int
    min_side: int | None

    @classmethod
    def of(cls, settings: Settings) -> Rules:
        return cls(settings.max_image_pixels, settings.min_pixels, settings.min_side)

    def header_decision(self, source_pixels: int, frames: int, width: int, height: int) -> Decision:
        """Steps 12–14 in order: decompression_bomb, animated_image, too_small (or keep)."""
        decision = source_decision(source_pixels, frames, self.max_image_pixels)
        if not decision.kept:
            return decision
        return resolution_decision(width, height, self.min_pixels, self.min_side)


# ---------------------------------------------------------------------------------------------
# The work itself: pure functions over bytes (run in the workers)


def image_features(
    sha256: str, tiles: Iterable[int], data: bytes, rules: Rules, scorer: NsfwScorer
) -> tuple[list[Features], list[np.ndarray], bool]:
    """Features of the requested tiles of one file (NSFW score still NaN), the scorer inputs of
    the decoded ones (same order as their features), and whether pixels were decoded.

    Never raises for bad bytes: every failure becomes a decision.
    """
    tiles = list(tiles)
    opened = read_header(data, rules.max_image_pixels)
    if isinstance(opened, Decision):
        blank = Features(sha256, 0, str(opened), "", 0, 0, 0, len(data), 0, 0, "", float("nan"), "")
        return [dataclasses.replace(blank, tile=tile) for tile in tiles], [], False
    image, header = opened
    source_pixels = header.width * header.height

    results, to_decode = [], []
    for tile in tiles:
        width, height = tile_size(header.width, header.height, tile)
        entry = Features(
            sha256, tile, "keep", header.format, width, height, header.frames, header.file_size,
            0, 0, "", float("nan"), "", source_pixels,
        )  # fmt: skip
        decision = rules.header_decision(source_pixels, header.frames, entry.width, entry.height)
        if decision.kept:
            to_decode.append(entry)
        else:
            results.append(dataclasses.replace(entry, decision=str(decision)))
    if not to_decode:
        return results, [], False

    decoded, prepared = [], []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's notes on palettes/ICC profiles of odd files
            image = _decode(image, data)
            for entry in to_decode:
                pixels = crop_tile(image, entry.tile)
                grey = pixels.convert("L")  # what imagehash does first; shared by both hashes
                phash, dhash = _as_int(imagehash.phash(grey)), _as_int(imagehash.dhash(grey))
                prepared.append(scorer.prepare(pixels))
                entry = dataclasses.replace(entry, phash=phash, dhash=dhash, phash_impl=PHASH_IMPL)
                decoded.append(_with_tile_bytes(entry, pixels) if entry.tile else entry)
    except Exception as error:  # a hostile or broken file never escapes as an exception
        reason = _decode_failure(error)
        return results + [dataclasses.replace(entry, decision=reason) for entry in to_decode], [], True
    return results + decoded, prepared, True


def score_batches(
    features: list[Features], prepared: list[np.ndarray], scorer: NsfwScorer, batch: int
) -> list[Features]:
    """Fill in the NSFW score of the decoded entries (the ones with a phash_impl), `batch` at a time."""
    scores = [
        float(score)
        for start in range(0, len(prepared), batch)
        for score in scorer.score(np.stack(prepared[start : start + batch]))
    ]
    scored = iter(scores)
    return [
        dataclasses.replace(f, nsfw_score=next(scored), nsfw_scorer=scorer.id)
        if f.phash_impl and f.decision == "keep"
        else f
        for f in features
    ]


def tile_size(width: int, height: int, tile: int) -> tuple[int, int]:
    if tile == 0:
        return width, height
    left, upper, right, lower = tile_boxes(width, height)[tile - 1]
    return right - left, lower - upper


def _decode(image: Image.Image, data: bytes) -> Image.Image:
    """The pixels of a header-checked image. 8-bit RGB/RGBA PNGs (Midjourney's output) are
    decoded by libvips (libspng), about twice as fast as Pillow and the same pixels (PNG is
    lossless; neither applies colour management), so every feature is the same either way; every
    other file, and any PNG libvips refuses, is decoded by Pillow, whose error names the reason.
    """
    if image.format == "PNG" and image.mode in _FAST_PNG_MODES and "transparency" not in image.info:
        try:
            pixels = pyvips.Image.new_from_buffer(data, "", access="sequential", fail_on="warning")
        except pyvips.Error:
            pixels = None
        if pixels is not None and pixels.format == "uchar" and pixels.bands == len(image.mode):
            try:
                return Image.fromarray(pixels.numpy())
            except pyvips.Error:
                pass  # the data failed while decoding: Pillow decodes it and names the failure
    image.load()
    return image


def _with_tile_bytes(entry: Features, pixels: Image.Image) -> Features:
    """The digest and size of the PNG a shard will store for this tile (see `grids.tile_bytes`)."""
    data = encode_tile(pixels)
    return dataclasses.replace(
        entry, tile_sha256=hashlib.sha256(data).hexdigest(), tile_size=len(data), tile_encoder=TILE_ENCODER
    )


def _as_int(image_hash: imagehash.ImageHash) -> int:
    return int(str(image_hash), 16)


def _decode_failure(error: Exception) -> str:
    truncated = isinstance(error, EOFError) or "truncated" in str(error).lower()
    return (Reason.TRUNCATED_IMAGE if truncated else Reason.CORRUPT_IMAGE).value


# ---------------------------------------------------------------------------------------------
# The worker processes


@dataclass(frozen=True, slots=True)
class _Job:
    """A batch of files for one worker: (sha256, tiles, bytes or None = read from `root`)."""

    root: str
    rules: Rules
    nsfw_batch: int
    items: tuple[tuple[str, tuple[int, ...], bytes | None], ...]


_worker_scorer: NsfwScorer | None = None
_worker_stores: dict[str, RawStore] = {}


def _init_worker(scorer_name: str) -> None:
    global _worker_scorer
    _worker_scorer = get_scorer(scorer_name)


def _ready(_: int) -> bool:
    return _worker_scorer is not None


def run_job(job: _Job, scorer: NsfwScorer, raw: RawStore) -> tuple[list[Features], int]:
    """Features of every (sha256, tile) in the job, and how many files were decoded."""
    features, prepared, decoded = [], [], 0
    for sha256, tiles, data in job.items:
        data = raw.read_media(sha256) if data is None else data
        entries, inputs, was_decoded = image_features(sha256, tiles, data, job.rules, scorer)
        features += entries
        prepared += inputs
        decoded += was_decoded
    return score_batches(features, prepared, scorer, job.nsfw_batch), decoded


def _run_job(job: _Job) -> tuple[list[Features], int]:
    """`run_job` in a pool worker, which reads the media itself from the job's data root."""
    assert _worker_scorer is not None, "worker not initialised"
    set_pil_limits(job.rules.max_image_pixels)
    if job.root not in _worker_stores:
        _worker_stores[job.root] = RawStore(Store(job.root))
    return run_job(job, _worker_scorer, _worker_stores[job.root])


_local_scorers: dict[str, NsfwScorer] = {}
_local_lock = threading.Lock()


def _local_scorer(name: str) -> NsfwScorer:
    """This process's own scorer for in-process computing (loaded once, shared by threads: an
    onnxruntime session may run from several threads at once)."""
    with _local_lock:
        if name not in _local_scorers:
            _local_scorers[name] = get_scorer(name)
        return _local_scorers[name]


class _WorkerPool:
    """One process pool per process, reused across calls; rebuilt when its configuration changes."""

    def __init__(self) -> None:
        self._executor: ProcessPoolExecutor | None = None
        self._config: tuple[int, str] | None = None
        self._lock = threading.Lock()

    def executor(self, workers: int, scorer_name: str) -> ProcessPoolExecutor:
        config = (workers, scorer_name)
        with self._lock:
            if self._executor is None or self._config != config:
                self._shutdown()
                # spawn, not fork: the parent may run Prefect/ORT threads that must not be forked.
                context = multiprocessing.get_context("spawn")
                self._executor = ProcessPoolExecutor(
                    workers, mp_context=context, initializer=_init_worker, initargs=(scorer_name,)
                )
                self._config = config
                self._start_all(workers)
            return self._executor

    def _start_all(self, workers: int) -> None:
        """Start every worker now (each loads its scorer) and prove they run.

        A worker is spawned per submit while none is idle, and none is idle before its initializer
        has run, so `workers` submits start them all.
        """
        try:
            list(self._executor.map(_ready, range(workers)))
        except BrokenProcessPool as error:
            self._shutdown()
            raise RuntimeError(
                "feature worker processes die on start-up: see their traceback above (the NSFW scorer "
                "must load; with the 'spawn' start method the main module must be importable and "
                "guarded by `if __name__ == '__main__':`)"
            ) from error

    def restart(self) -> None:
        with self._lock:
            self._shutdown()

    def shutdown(self) -> None:
        with self._lock:
            self._shutdown()

    def _shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._executor, self._config = None, None


_POOL = _WorkerPool()
atexit.register(_POOL.shutdown)


def shutdown_pool() -> None:
    """Stop the worker processes now (they are also stopped at interpreter exit)."""
    _POOL.shutdown()


# ---------------------------------------------------------------------------------------------
# The cache


class FeatureStore:
    """Features by (sha256, tile) under `derived/features/` of the data root."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.rules = Rules.of(settings)
        self.scorer_id = scorer_id(settings.nsfw_scorer)  # validates the name; loads no model
        self.workers = settings.clean_workers or os.cpu_count() or 1
        self.decoded = 0  # files this instance decoded (0 on a fully cached run)
        self._lock = threading.Lock()
        self._index: _Index | None = None

    def get(self, keys: Iterable[Key]) -> dict[Key, Features]:
        """Cached features still valid under the current settings; missing keys are absent."""
        with self._lock:
            index = self._loaded()
            found = {}
            for key, cached in index.lookup(list(dict.fromkeys(keys))).items():
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
        with self._lock:
            computed, crashed = self._compute(missing, raw)
            lasting = [f for f in computed if f.key not in crashed]  # a crash may be transient (OOM)
            if lasting:
                self._persist(lasting)
                kill_point("features_cached")
                self._loaded().add(lasting)
        found.update((f.key, f) for f in computed)
        return found

    # -- computing -------------------------------------------------------------------------------
    def _compute(self, missing: list[Key], raw: RawStore) -> tuple[list[Features], set[Key]]:
        """Computed features (sorted by key), and the keys whose file crashed a worker."""
        jobs = self._jobs(missing, raw)
        results, broken_jobs = self._collect(jobs, raw)
        crashed: set[Key] = set()
        for job in broken_jobs:  # a worker died (a decoder crash?): retry file by file to isolate it
            for item in job.items:
                alone, broken = self._collect([dataclasses.replace(job, items=(item,))], raw)
                if broken:
                    results += self._crashed(item)
                    crashed.update((item[0], tile) for tile in item[1])
                else:
                    results += alone
        return sorted(results, key=lambda f: f.key), crashed

    def in_process(self) -> bool:
        """Compute in this process, with no pool: with one worker, and always in a daemonic process
        (a Dask worker: it may not start processes of its own)."""
        return self.workers == 1 or multiprocessing.current_process().daemon

    def _collect(self, jobs: list[_Job], raw: RawStore) -> tuple[list[Features], list[_Job]]:
        """Run jobs; results of those that finished, and those whose pool worker died."""
        if self.in_process():
            allow_pixels(self.rules.max_image_pixels)  # only ever raised in a process we do not own
            ImageFile.LOAD_TRUNCATED_IMAGES = False  # truncated data must raise, never decode as grey
            scorer = _local_scorer(self.settings.nsfw_scorer)
            results = [run_job(job, scorer, raw) for job in jobs]
            self.decoded += sum(decoded for _, decoded in results)
            return [f for features, _ in results for f in features], []
        executor = _POOL.executor(self.workers, self.settings.nsfw_scorer)
        futures = [executor.submit(_run_job, job) for job in jobs]
        results, crashed = [], []
        for job, future in zip(jobs, futures, strict=True):
            try:
                features, decoded = future.result()
            except BrokenProcessPool:
                crashed.append(job)
                continue
            results += features
            self.decoded += decoded
        if crashed:
            _POOL.restart()
        return results, crashed

    def _crashed(self, item: tuple[str, tuple[int, ...], bytes | None]) -> list[Features]:
        sha256, tiles, _ = item
        failed = Features(sha256, 0, Reason.CORRUPT_IMAGE.value, "", 0, 0, 0, 0, 0, 0, "", float("nan"), "")
        return [dataclasses.replace(failed, tile=tile) for tile in tiles]

    def _jobs(self, missing: list[Key], raw: RawStore) -> list[_Job]:
        """Group tiles by file and files into jobs of about `nsfw_batch` samples."""
        # Pool workers cannot see this process's memory:// files: send those bytes with the job.
        send = isinstance(raw.store.fs, MemoryFileSystem) and not self.in_process()
        root = raw.store.root if raw.store.local else raw.store.url
        items, jobs, size = [], [], 0
        for sha256, group in itertools.groupby(missing, key=lambda key: key[0]):
            tiles = tuple(tile for _, tile in group)
            items.append((sha256, tiles, raw.read_media(sha256) if send else None))
            size += len(tiles)
            if size >= self.settings.nsfw_batch:
                jobs.append(_Job(root, self.rules, self.settings.nsfw_batch, tuple(items)))
                items, size = [], 0
        if items:
            jobs.append(_Job(root, self.rules, self.settings.nsfw_batch, tuple(items)))
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

    def _persist(self, features: list[Features]) -> None:
        table = _to_table(features)
        name = f"{FEATURES_DIR}/part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        with self.store.open_write(name) as handle:
            pq.write_table(table, handle)

    def _loaded(self) -> _Index:
        if self._index is None:
            self._index = _Index.load(self.store)
        return self._index


class _Index:
    """All cached rows (latest part wins per key) with a sorted 64-bit-prefix index for lookups.

    Memory is columnar (Arrow + numpy, ~100 B per image), never one Python object per image; new
    entries wait in a small dict until `MERGE_AT` of them are merged in.
    """

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        shas = table.column("sha256").to_pylist()
        prefixes = np.fromiter((int(sha[:16], 16) for sha in shas), dtype=np.uint64, count=len(shas))
        tiles = table.column("tile").to_numpy()
        self.order = np.lexsort((tiles, prefixes))
        self.prefixes = prefixes[self.order]
        self.pending: dict[Key, Features] = {}

    @classmethod
    def load(cls, store: Store) -> _Index:
        parts = store.list(FEATURES_DIR, ".parquet")
        tables = [pq.read_table(store.open_read(part), schema=SCHEMA) for part in parts]
        table = _latest(pa.concat_tables(tables) if tables else SCHEMA.empty_table())
        if len(parts) > COMPACT_AT:  # one part instead of many small ones; then drop those read
            name = f"{FEATURES_DIR}/part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
            with store.open_write(name) as handle:
                pq.write_table(table, handle)
            for part in parts:
                store.remove(part)
        return cls(table)

    def lookup(self, keys: list[Key]) -> dict[Key, Features]:
        found, rows = {}, {}
        wanted = [key for key in keys if key not in self.pending]
        found.update((key, self.pending[key]) for key in keys if key in self.pending)
        prefixes = np.array([int(sha[:16], 16) for sha, _ in wanted], dtype=np.uint64)
        lows = np.searchsorted(self.prefixes, prefixes, side="left")
        highs = np.searchsorted(self.prefixes, prefixes, side="right")
        shas, tiles = self.table.column("sha256"), self.table.column("tile")
        for key, low, high in zip(wanted, lows.tolist(), highs.tolist(), strict=True):
            for row in self.order[low:high].tolist():
                if (shas[row].as_py(), tiles[row].as_py()) == key:
                    rows[key] = row
        if rows:
            taken = self.table.take(list(rows.values())).to_pylist()
            found.update((key, Features(**row)) for key, row in zip(rows, taken, strict=True))
        return found

    def add(self, features: list[Features]) -> None:
        self.pending.update((f.key, f) for f in features)
        if len(self.pending) >= MERGE_AT:
            fresh = _to_table(self.pending.values())
            self.__init__(_latest(pa.concat_tables([self.table, fresh])))


def _to_table(features: Iterable[Features]) -> pa.Table:
    return pa.Table.from_pylist([dataclasses.asdict(f) for f in features], schema=SCHEMA)


def _latest(table: pa.Table) -> pa.Table:
    """One row per (sha256, tile): the last one (parts are read oldest first)."""
    if table.num_rows == 0:
        return table
    numbered = table.append_column("_row", pa.array(np.arange(table.num_rows)))
    last = numbered.group_by(["sha256", "tile"], use_threads=False).aggregate([("_row", "max")])
    rows = np.sort(last.column("_row_max").to_numpy())
    return table.take(rows)

"""The processes that compute image features: one NSFW session each, a bounded queue of work, and
a lifetime no longer than the stage that needs them.

`FeatureWorkers(workers, scorer)` is a context manager: its first job starts `workers` spawned
processes (spawn, not fork: the parent may run Prefect or onnxruntime threads that must not be
forked), each of which loads its NSFW scorer once — a stage whose images are all cached starts
none; leaving it stops them. While it is open it is
this process's pool: `FeatureStore.compute` in any thread sends its jobs there. At most two jobs
per worker are queued at any time, whoever submits them, so memory does not grow with the number
of images. A call outside any `with` starts a pool for that call alone.

A job is a batch of files. Each worker reads the files itself from the data root (the parent sends
the bytes only for `memory://` roots, which a worker cannot see) and checks that they still hash to
their name. A worker that dies (a decoder crash) breaks the pool: it is restarted and the caller
retries the broken jobs file by file to find the file responsible.

The workers import this module and `image_features` only: numpy, Pillow, libspng, onnxruntime and
the raw store; not pyarrow, Prefect or the settings.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field

from midshard.cleaners.image_features import Features, Rules, image_features, score_batches, undecided
from midshard.cleaners.images import set_pil_limits
from midshard.cleaners.nsfw import NsfwScorer, get_scorer
from midshard.raw_store import RawStore
from midshard.records import Reason
from midshard.store import Store

QUEUED_PER_WORKER = 2  # jobs waiting or running per worker process: enough to never idle

Item = tuple[str, tuple[int, ...], bytes | None]  # (sha256, tiles, bytes or None = read from the root)


@dataclass(frozen=True, slots=True)
class Job:
    """A batch of files for one worker."""

    root: str
    rules: Rules
    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A raw media file whose bytes no longer hash to its name."""

    path: str
    expected: str
    actual: str


@dataclass(slots=True)
class JobResult:
    features: list[Features] = field(default_factory=list)
    decoded: int = 0  # files whose pixels were decoded
    mismatches: list[Mismatch] = field(default_factory=list)


def run_job(job: Job, scorer: NsfwScorer, raw: RawStore) -> JobResult:
    """Features of every (sha256, tile) in the job: the decodes, then batched NSFW scoring."""
    result, prepared = JobResult(), []
    for sha256, tiles, data in job.items:
        data = raw.read_media(sha256) if data is None else data
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            path = raw.store.path(raw.media_path(sha256))
            result.mismatches.append(Mismatch(path, sha256, actual))
            result.features += undecided(sha256, tiles, Reason.MEDIA_MISMATCH.value, len(data))
            continue
        entries, inputs, decoded = image_features(sha256, tiles, data, job.rules, scorer)
        result.features += entries
        prepared += inputs
        result.decoded += decoded
    result.features = score_batches(result.features, prepared, scorer)
    return result


# -- inside a worker process -----------------------------------------------------------------------
_worker_scorer: NsfwScorer | None = None
_worker_stores: dict[str, RawStore] = {}


def _init_worker(scorer_name: str) -> None:
    global _worker_scorer
    _worker_scorer = get_scorer(scorer_name)


def _ready(_: int) -> bool:
    return _worker_scorer is not None


def _run_pooled(job: Job) -> JobResult:
    """`run_job` in a pool worker, which reads the media itself from the job's data root."""
    assert _worker_scorer is not None, "worker not initialised"
    set_pil_limits(job.rules.max_image_pixels)
    if job.root not in _worker_stores:
        _worker_stores[job.root] = RawStore(Store(job.root))
    return run_job(job, _worker_scorer, _worker_stores[job.root])


# -- the pool --------------------------------------------------------------------------------------
_active: FeatureWorkers | None = None  # the pool a `with` opened in this process
_active_lock = threading.Lock()


class FeatureWorkers:
    """`workers` processes with one `scorer_name` scorer each; see the module docstring."""

    def __init__(self, workers: int, scorer_name: str) -> None:
        self.workers = workers
        self.scorer_name = scorer_name
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(QUEUED_PER_WORKER * workers)
        self._outer: FeatureWorkers | None = None
        self._closed = False

    def __enter__(self) -> FeatureWorkers:
        """Make this the stage's pool; its processes start with the first job (a stage whose
        images are all cached starts none)."""
        global _active
        with _active_lock:
            self._outer, _active = _active, self
        return self

    def __exit__(self, *_exc: object) -> None:
        global _active
        with _active_lock:
            _active = self._outer
        with self._lock:
            self._closed = True
            self._stop()

    def run(self, jobs: list[Job]) -> tuple[list[JobResult], list[Job]]:
        """Results of the jobs that finished, and the jobs whose worker died (the pool is restarted)."""
        self._check_open()
        sent: list[tuple[Job, ProcessPoolExecutor, Future[JobResult] | None]] = []
        for job in jobs:
            self._slots.acquire()  # blocks while the queue is full, whichever thread filled it
            executor = self._executor_now()
            try:
                future = executor.submit(_run_pooled, job)
            except (BrokenProcessPool, RuntimeError):  # broken, or stopped by another caller's restart
                self._slots.release()
                sent.append((job, executor, None))
                continue
            future.add_done_callback(lambda _: self._slots.release())
            sent.append((job, executor, future))
        results, broken = [], []
        for job, executor, future in sent:
            try:
                if future is None:
                    raise BrokenProcessPool("the pool broke before this job was sent")
                results.append(future.result())
            except (BrokenProcessPool, CancelledError):  # cancelled: another caller's restart
                broken.append(job)
                self._restart(executor)
        return results, broken

    def _executor_now(self) -> ProcessPoolExecutor:
        with self._lock:
            self._check_open()
            if self._executor is None:
                self._start()
            return self._executor

    def _check_open(self) -> None:
        """A pool never starts again once its stage has left the `with` block."""
        if self._closed:
            raise RuntimeError("the feature workers were stopped: their stage has ended")

    def _start(self) -> None:
        """Start every worker (each loads its scorer) and prove they run.

        A worker is spawned per submit while none is idle, and none is idle before its initializer
        has run, so `workers` submits start them all.
        """
        context = multiprocessing.get_context("spawn")
        self._executor = ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_init_worker, initargs=(self.scorer_name,)
        )
        try:
            list(self._executor.map(_ready, range(self.workers)))
        except BrokenProcessPool as error:
            self._stop()
            raise RuntimeError(
                "feature worker processes die on start-up: see their traceback above (the NSFW scorer "
                "must load; with the 'spawn' start method the main module must be importable and "
                "guarded by `if __name__ == '__main__':`)"
            ) from error

    def _restart(self, broken: ProcessPoolExecutor) -> None:
        """Stop a broken pool (unless another caller already did); the next job starts a fresh one."""
        with self._lock:
            if self._executor is broken:
                self._stop()

    def _stop(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._executor = None


@contextmanager
def pool_for(workers: int, scorer_name: str) -> Iterator[FeatureWorkers]:
    """The pool a `with FeatureWorkers(...)` opened in this process if it fits, else one for now."""
    with _active_lock:
        active = _active
    if active is not None and (active.workers, active.scorer_name) == (workers, scorer_name):
        yield active
        return
    with FeatureWorkers(workers, scorer_name) as pool:
        yield pool


# -- in the calling process ------------------------------------------------------------------------
_local_scorers: dict[str, NsfwScorer] = {}
_local_lock = threading.Lock()


def local_scorer(name: str) -> NsfwScorer:
    """This process's own scorer for in-process computing (loaded once, shared by threads: an
    onnxruntime session may run from several threads at once)."""
    with _local_lock:
        if name not in _local_scorers:
            _local_scorers[name] = get_scorer(name)
        return _local_scorers[name]

"""The Prefect flows: `scrape` (collect -> clean -> write), `refresh` (the same from a settings file,
for the monthly deployment), `rebuild` (raw store -> decisions -> shards, no network) and
`import_export` (DiscordChatExporter files instead of the API).

flows/ only orchestrates. Every task wraps one batch-level function of the collectors, cleaners or
writers: the history of all channels (one discord.py client, so Discord's per-token limits hold),
the media of a group of message batches, the features of a few hundred images. Dedup and writing
are sequential by nature and run in the flow itself. Retries are set only on idempotent tasks.
Everything a run decides is persisted by the stages themselves, so a killed run is simply run again.
"""

from __future__ import annotations

from midshard.allocator import limit_arenas
from midshard.flows import prefect_env

limit_arenas()  # before any thread starts: the flows' many threads would each keep an arena's memory
prefect_env.configure()  # before Prefect reads its settings

import errno  # noqa: E402
import logging  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, TypeVar  # noqa: E402

from prefect import Flow, flow, task, unmapped  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.client.schemas.objects import TaskRun  # noqa: E402
from prefect.context import FlowRunContext  # noqa: E402
from prefect.futures import as_completed  # noqa: E402
from prefect.states import State  # noqa: E402

from midshard import __version__, progress  # noqa: E402
from midshard.cleaners.decisions import DecisionStore  # noqa: E402
from midshard.cleaners.features import Features, FeatureStore, Key, feature_workers  # noqa: E402
from midshard.cleaners.grids import MediaReader  # noqa: E402
from midshard.cleaners.pipeline import Cleaner, CleanReport, Downloadable  # noqa: E402
from midshard.collectors.collect import CollectStats, collect_histories, collect_media  # noqa: E402
from midshard.collectors.dce import import_exports  # noqa: E402
from midshard.errors import MidshardError  # noqa: E402
from midshard.flows import run_log  # noqa: E402
from midshard.flows.artifacts import Progress, publish_funnel, publish_report, publish_steps  # noqa: E402
from midshard.flows.runners import default_runner, for_tasks, is_dask, task_runner  # noqa: E402
from midshard.lock import root_lock  # noqa: E402
from midshard.raw_store import RawStore, existing_raw_store  # noqa: E402
from midshard.settings import Settings  # noqa: E402
from midshard.staging import recover as recover_staging  # noqa: E402
from midshard.staging import staging_store, swap_in  # noqa: E402
from midshard.store import Store  # noqa: E402
from midshard.writers.dataset import DatasetSummary, RunInfo, mismatch_rejection, write_dataset  # noqa: E402
from midshard.writers.layout import DATASET, REPORT  # noqa: E402
from midshard.writers.manifest import check_settings, decisions_written, run_id  # noqa: E402

log = logging.getLogger("midshard.flows")
# HTTP-only use of discord.py: its gateway/voice start-up warnings do not apply.
for _name in ("discord.state", "discord.client"):
    logging.getLogger(_name).setLevel(logging.ERROR)
T = TypeVar("T")
MEDIA_BATCHES_PER_TASK = 10  # message batches (of <= 100 messages) per download task
# Disk errors a retry cannot fix (connection resets and timeouts are OSErrors too, and worth a retry).
PERMANENT_OS_ERRORS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR}
)


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a flow returns (and the CLI prints)."""

    funnel: dict[str, int]  # everything decided so far: messages, candidates, left after each reason
    dataset: dict[str, int]  # samples per split, now
    shards_written: tuple[str, ...]
    report: str  # where report.html is
    collect_errors: dict[str, str]
    steps: dict[str, dict[str, float | int]]  # this run's steps: seen, dropped, seconds
    problems: tuple[str, ...] = ()  # damaged raw files and lines, skipped
    written: dict[str, int] = field(default_factory=dict)  # samples this run added, per split
    rejections: dict[str, int] = field(default_factory=dict)  # candidates this run dropped, by reason
    rejected: int = 0  # dropped candidates listed in the dataset, now
    dataset_dir: str = ""  # where dataset/ is


@dataclass(frozen=True, slots=True)
class _Run:
    """What a run knows about itself while it runs."""

    kind: str
    key: str  # of its Prefect artifacts
    artifact: Progress  # the Prefect progress artifact
    started: datetime


# -- tasks -----------------------------------------------------------------------------------------
def _transient(_task: object, _run: TaskRun, state: State) -> bool:
    """Retry condition: not for errors that would come back unchanged (no token, a broken export,
    a full, read-only or otherwise unwritable disk)."""
    try:
        state.result()
    except MidshardError:
        return False
    except OSError as error:
        return error.errno not in PERMANENT_OS_ERRORS
    except Exception:
        return True
    return True


@task(
    name="collect-history",
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=_transient,
    cache_policy=NO_CACHE,
)
def history_task(settings: Settings) -> dict[str, str]:
    """Every channel's new pages into the raw store; returns per-channel errors (idempotent)."""
    stats = CollectStats()
    collect_histories(settings, stats)
    for warning in stats.warnings:
        log.warning(warning)
    log.info("history: %d new messages in %d batches", stats.messages, stats.batches)
    return {str(channel): error for channel, error in stats.channel_errors.items()}


@task(
    name="download-media",
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=_transient,
    cache_policy=NO_CACHE,
)
def media_task(settings: Settings, channel_id: int, batch_paths: list[str]) -> dict[str, int]:
    """The media of a group of message batches; outcome counts (idempotent: done batches skip)."""
    results = collect_media(settings, channel_id, batch_paths, Downloadable(settings))
    return dict(Counter("stored" if r.sha256 else r.error for r in results))


@task(name="image-features", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def features_task(settings: Settings, cache_root: str, raw_root: str, keys: list[Key]) -> dict[Key, Features]:
    """One decode per image -> header checks, pHash/dHash, NSFW score; persisted to the cache."""
    return FeatureStore(Store(cache_root), settings).compute(keys, RawStore(Store(raw_root)))


@task(name="import-exports", retries=1, retry_condition_fn=_transient, cache_policy=NO_CACHE)
def import_task(settings: Settings, files: list[str], media: bool) -> int:
    """Exports -> raw store (idempotent: the channel cursors skip what is stored); new messages."""
    stats = import_exports(settings, [Path(f) for f in files], media, select=Downloadable(settings))
    log.info("import: %d new messages, %d media files", stats.messages, stats.media_files)
    return stats.messages


# -- stages ----------------------------------------------------------------------------------------
def batched(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """Consecutive chunks of at most `size` items (itertools.batched needs Python 3.12)."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _media_groups(raw: RawStore) -> Iterator[tuple[int, list[str]]]:
    """Unfinished media batches of every channel (incl. those a killed run left), in task groups."""
    for channel_id in raw.channels():
        for group in batched(raw.pending_media_batches(channel_id), MEDIA_BATCHES_PER_TASK):
            yield channel_id, group


def _collect(settings: Settings) -> dict[str, str]:
    """New history of the configured channels (none configured: only what the raw store holds is
    cleaned, e.g. after `import-export --raw-only`), then every unfinished batch's media."""
    errors: dict[str, str] = {}
    if settings.channels:
        progress.start("history")
        errors = history_task(settings)
        progress.finish("history")
    raw = RawStore(Store(settings.root))
    groups = list(_media_groups(raw))
    if groups:
        progress.start("downloads")
        futures = media_task.map(
            unmapped(settings), [channel for channel, _ in groups], [paths for _, paths in groups]
        )
        outcomes = Counter[str]()
        for future in as_completed(futures):
            counts = future.result()
            outcomes.update(counts)
            if settings.task_runner == "dask":  # its tasks count in other processes: report here
                _report_downloads(counts)
        log.info("media: %s", dict(sorted(outcomes.items())))
    progress.finish("downloads")
    return errors


def _report_downloads(outcomes: dict[str, int]) -> None:
    """A finished media task's outcome counts, to the live progress."""
    stored, skipped = outcomes.get("stored", 0), outcomes.get("not_selected", 0)
    failed = sum(outcomes.values()) - stored - skipped
    progress.report("downloads", files=stored, not_selected=skipped, failed=failed)


def _clean(
    settings: Settings, task_settings: Settings, store: Store, raw: RawStore, cache: Store
) -> CleanReport:
    """Decide every new candidate, chunk by chunk; the images a chunk needs are examined in tasks of
    `clean_batch` images (only those the feature cache does not hold)."""
    cleaner = Cleaner(raw, DecisionStore(store), settings)
    features = FeatureStore(cache, settings)
    raw_root = raw.store.root if raw.store.local else raw.store.url
    cache_root = cache.root if cache.local else cache.url
    progress.start("clean")
    with feature_workers(task_settings):  # workers live for this stage only (none start on Dask)
        for chunk in cleaner.chunks():
            progress.report("clean", messages=chunk.new_messages, chunks=1)
            keys = chunk.feature_keys()
            found = features.get(keys)
            missing = [key for key in keys if key not in found]
            progress.report("images", cached=len(found))
            if missing:  # what `compute` answers, uncacheable answers (a changed file) included
                progress.expect("images", images=len(missing))
                batches = list(batched(missing, settings.clean_batch))
                futures = features_task.map(
                    unmapped(task_settings), unmapped(cache_root), unmapped(raw_root), batches
                )
                sizes = {future: len(batch) for future, batch in zip(futures, batches, strict=True)}
                for future in as_completed(futures):
                    found.update(future.result())
                    progress.report("images", images=sizes[future])
            decided = cleaner.report.candidates
            cleaner.decide(chunk, found)
            progress.report("clean", candidates=cleaner.report.candidates - decided)
    progress.finish("images")
    progress.finish("clean")
    for problem in cleaner.report.problems:
        log.warning("skipped: %s", problem)
    log.info("clean: %d candidates decided in %d parts", cleaner.report.candidates, len(cleaner.report.parts))
    return cleaner.report


def _write(
    settings: Settings, store: Store, raw: RawStore, kind: str, cache: Store
) -> tuple[DatasetSummary, dict[str, int]]:
    """The parts of derived/decisions/ the dataset does not hold yet -> new shards and rejections;
    also returns the new rejections by reason."""
    decisions = DecisionStore(store)
    parts = decisions.parts()
    pending = parts[decisions_written(store) :]
    run = RunInfo(
        kind=kind,
        id=run_id(kind, [f"{len(parts)}", *pending]),
        funnel=decisions.stages(),
        steps=decisions.steps(),
        sources=[str(channel) for channel in raw.channels()],
        versions={"midshard": __version__},
        decisions=len(parts),
    )
    media = MediaReader(raw, settings)
    progress.start("shards")
    summary = write_dataset(
        store,
        decisions.samples(pending),
        decisions.rejections(pending),
        media.sample,
        settings,
        run,
        read_rejected_image=media.rejected,
    )
    progress.finish("report")
    rejections = Counter({key: n for key, n in decisions.decided(pending).items() if key != "keep"})
    if summary.mismatched:  # their stored image changed since it was examined: never trust it again
        dropped = [mismatch_rejection(s) for s in summary.mismatched]
        decisions.supersede(dropped, step="intact_media")
        FeatureStore(cache, settings).invalidate(sorted({s.sha256 for s in summary.mismatched}))
        rejections.update(r.decision for r in dropped)
    return summary, dict(rejections)


def _finish(
    settings: Settings,
    run: _Run,
    written: tuple[DatasetSummary, dict[str, int]],
    report: CleanReport,
    errors: dict[str, str],
) -> RunResult:
    """Publish the run's artifacts, add it to the run log (derived/runs/), and say what it did."""
    summary, rejections = written
    root = Store(settings.root)
    stages = DecisionStore(root).stages()
    where = root.location(REPORT)
    publish_funnel(run.key, stages, summary.samples)
    publish_steps(run.key, report.steps)
    lines = [f"{split}: {n} samples" for split, n in summary.samples.items()]
    lines += [f"shards written by this run: {len(summary.shards_written)}"]
    lines += [f"channel {channel}: {error}" for channel, error in errors.items()]
    lines += [f"skipped: {problem}" for problem in report.problems]
    publish_report(run.key, where, lines)
    record = run_log.RunRecord(
        kind=run.kind,
        run_id=summary.run_id,
        started=run_log.iso(run.started),
        finished=run_log.iso(run_log.utc_now()),
        settings_fingerprint=settings.output_fingerprint(),
        samples_written=summary.written,
        shards_written=len(summary.shards_written),
        rejections=rejections,
        steps=report.steps,
        midshard=__version__,
    )
    run_log.append(root, record)
    run.artifact.update(100.0)
    return RunResult(
        funnel=stages,
        dataset=summary.samples,
        shards_written=summary.shards_written,
        report=where,
        collect_errors=errors,
        steps=report.steps,
        problems=tuple(report.problems),
        written=summary.written,
        rejections=rejections,
        rejected=summary.rejected,
        dataset_dir=root.location(DATASET),
    )


def _run(settings: Settings, kind: str, raw_root: str | None = None) -> RunResult:
    # progress: plain lines when nobody else shows it (a Prefect worker, a Python caller)
    with progress.shown(), root_lock(settings.root, f"{kind} flow", settings.lock_wait):
        task_settings = for_tasks(settings)
        key = f"midshard-{kind}"
        run = _Run(kind, key, Progress(key), run_log.utc_now())
        root = Store(settings.root)
        recover_staging(root)  # a rebuild killed while swapping its result in is finished first
        if kind == "rebuild":
            raw = existing_raw_store(raw_root or settings.root)  # before anything is touched
            return _rebuild(settings, task_settings, raw, run)
        check_settings(root, settings)  # before collecting: a refused run changes nothing
        errors = _collect(task_settings) if kind in ("scrape", "refresh") else {}
        run.artifact.update(30.0)
        raw = RawStore(root)
        report = _clean(settings, task_settings, root, raw, root)
        run.artifact.update(80.0)
        written = _write(settings, root, raw, kind, root)
        return _finish(settings, run, written, report, errors)


def _rebuild(settings: Settings, task_settings: Settings, raw: RawStore, run: _Run) -> RunResult:
    """Decisions and dataset recomputed into a staging root, swapped in only once complete; the
    feature cache of the output root is reused (and filled), the raw store only read."""
    root = Store(settings.root)
    staging = staging_store(root)
    report = _clean(settings, task_settings, staging, raw, root)
    run.artifact.update(80.0)
    written = _write(settings, staging, raw, "rebuild", root)
    swap_in(root)
    return _finish(settings, run, written, report, {})


# -- flows -----------------------------------------------------------------------------------------
def _elsewhere(flow_: Flow, settings: Settings, /, **parameters: Any) -> RunResult | None:
    """Run `flow_` again as a subflow when this run's task runner is not the one `settings` asks for
    (a deployment, or a Python caller, gets the flow's default threads); None when it already is."""
    context = FlowRunContext.get()
    wants_dask = settings.task_runner == "dask"
    if context is None or is_dask(context.task_runner) == wants_dask:
        return None
    return flow_.with_options(task_runner=task_runner(settings))(**parameters)


@flow(name="midshard-scrape", log_prints=True, task_runner=default_runner())
def scrape(settings: Settings) -> RunResult:
    """One-off scrape: the configured channels from their cursors -> raw -> decisions -> shards."""
    return _elsewhere(scrape, settings, settings=settings) or _run(settings, "scrape")


@flow(name="midshard-refresh", log_prints=True, task_runner=default_runner())
def refresh(config: str | None = None, overrides: dict[str, Any] | None = None) -> RunResult:
    """The monthly refresh: channels and options from the settings file (then MIDSHARD_* variables,
    then `overrides`), only messages after each channel's cursor, new shards appended."""
    settings = Settings.load(config, **(overrides or {}))
    return _elsewhere(refresh, settings, config=config, overrides=overrides) or _run(settings, "refresh")


@flow(name="midshard-rebuild", log_prints=True, task_runner=default_runner())
def rebuild(settings: Settings, raw_root: str) -> RunResult:
    """Decisions, splits and shards recomputed from a raw store; no network; byte-identical reruns."""
    return _elsewhere(rebuild, settings, settings=settings, raw_root=raw_root) or _run(
        settings, "rebuild", raw_root
    )


@flow(name="midshard-import-export", log_prints=True, task_runner=default_runner())
def import_export(settings: Settings, files: list[str], media: bool = False) -> RunResult:
    """DiscordChatExporter exports -> raw store -> decisions -> shards."""
    again = _elsewhere(import_export, settings, settings=settings, files=files, media=media)
    if again is not None:
        return again
    with progress.shown(), root_lock(settings.root, "import flow", settings.lock_wait):  # on into _run
        import_task(for_tasks(settings), files, media)
        progress.finish("history")  # the exports' messages
        progress.finish("downloads")
        return _run(settings, "import")


FLOWS = {"scrape": scrape, "refresh": refresh, "rebuild": rebuild, "import": import_export}


def with_runner(settings: Settings, name: str) -> Flow:
    """The flow `name` with the task runner the settings ask for (so it runs as one flow run)."""
    return FLOWS[name].with_options(task_runner=task_runner(settings))

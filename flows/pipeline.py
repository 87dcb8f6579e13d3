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

from midshard.flows import prefect_env

prefect_env.configure()  # before Prefect reads its settings

import logging  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, TypeVar  # noqa: E402

from prefect import Flow, flow, task, unmapped  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.client.schemas.objects import TaskRun  # noqa: E402
from prefect.context import FlowRunContext  # noqa: E402
from prefect.states import State  # noqa: E402

from midshard import __version__  # noqa: E402
from midshard.cleaners.features import FeatureStore  # noqa: E402
from midshard.cleaners.grids import MediaReader  # noqa: E402
from midshard.cleaners.pipeline import DecisionStore, decide, feature_keys, plan  # noqa: E402
from midshard.cleaners.steps import funnel  # noqa: E402
from midshard.collectors.collect import CollectStats, collect_histories, collect_media  # noqa: E402
from midshard.collectors.dce import import_exports  # noqa: E402
from midshard.errors import MidshardError  # noqa: E402
from midshard.flows.artifacts import Progress, publish_funnel, publish_report  # noqa: E402
from midshard.flows.runners import default_runner, for_tasks, is_dask, task_runner  # noqa: E402
from midshard.raw_store import RawStore  # noqa: E402
from midshard.records import Decision, Rejection, Sample  # noqa: E402
from midshard.settings import Settings  # noqa: E402
from midshard.store import Store  # noqa: E402
from midshard.writers.dataset import DatasetSummary, RunInfo, write_dataset  # noqa: E402
from midshard.writers.layout import REPORT  # noqa: E402

log = logging.getLogger("midshard.flows")
# HTTP-only use of discord.py: its gateway/voice start-up warnings do not apply.
for _name in ("discord.state", "discord.client"):
    logging.getLogger(_name).setLevel(logging.ERROR)
T = TypeVar("T")
MEDIA_BATCHES_PER_TASK = 10  # message batches (of <= 100 messages) per download task


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a flow returns (and the CLI prints)."""

    funnel: dict[str, int]
    dataset: dict[str, int]
    shards_written: tuple[str, ...]
    report: str
    collect_errors: dict[str, str]


# -- tasks -----------------------------------------------------------------------------------------
def _transient(_task: object, _run: TaskRun, state: State) -> bool:
    """Retry condition: not for errors that would come back unchanged (no token, a broken export)."""
    try:
        state.result()
    except MidshardError:
        return False
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
    results = collect_media(settings, channel_id, batch_paths)
    return dict(Counter("stored" if r.sha256 else r.error for r in results))


@task(name="image-features", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def features_task(settings: Settings, raw_root: str, keys: list[tuple[str, int]]) -> int:
    """One decode per image -> header checks, pHash/dHash, NSFW score; cached by sha256."""
    raw_store = Store(raw_root)
    return len(FeatureStore(raw_store, settings).compute(keys, RawStore(raw_store)))


@task(name="import-exports", retries=1, retry_condition_fn=_transient, cache_policy=NO_CACHE)
def import_task(settings: Settings, files: list[str], media: bool) -> int:
    """Exports -> raw store (idempotent: the channel cursors skip what is stored); new messages."""
    stats = import_exports(settings, [Path(f) for f in files], media=media)
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
    errors = history_task(settings)
    raw = RawStore(Store(settings.root))
    groups = list(_media_groups(raw))
    if groups:
        futures = media_task.map(
            unmapped(settings), [channel for channel, _ in groups], [paths for _, paths in groups]
        )
        outcomes = Counter[str]()
        for counts in futures.result():
            outcomes.update(counts)
        log.info("media: %s", dict(sorted(outcomes.items())))
    return errors


def _clean_and_write(
    settings: Settings, task_settings: Settings, raw_root: str, kind: str, progress: Progress
) -> DatasetSummary:
    store, raw = Store(settings.root), RawStore(Store(raw_root))
    features_cache = FeatureStore(raw.store, settings)  # beside the raw media it describes
    decisions = DecisionStore(store)
    if kind == "rebuild":
        decisions.clear()
    candidates = plan(raw, settings, decisions.decided_keys())
    keys = feature_keys(candidates)
    log.info("clean: %d new candidates, %d images to examine", len(candidates), len(keys))
    progress.update(40.0)
    if keys:
        batches = list(batched(keys, settings.clean_batch))
        features_task.map(unmapped(task_settings), unmapped(raw_root), batches).result()
    progress.update(80.0)
    features = features_cache.get(keys)
    decisions.append(decide(candidates, features, settings, decisions.kept_hashes()))
    progress.update(90.0)
    samples, rejections = decisions.load(settings)
    media = MediaReader(raw, settings)
    return write_dataset(
        store,
        samples,
        rejections,
        media.sample,
        settings,
        RunInfo(
            kind=kind,
            funnel=funnel_stages(samples, rejections),
            sources=[str(channel) for channel in raw.channels()],
            versions={"midshard": __version__},
        ),
        rebuild=kind == "rebuild",
        read_rejected_image=media.rejected,
    )


def funnel_stages(samples: Sequence[Sample], rejections: Sequence[Rejection]) -> dict[str, int]:
    """Candidates left after each step, over everything decided so far (a pure function of the
    stored decisions, so a resumed run records the same funnel as an uninterrupted one)."""
    messages = {s.message_id for s in samples} | {r.message_id for r in rejections}
    stages = {"messages": len(messages), "candidates": len(samples) + len(rejections)}
    left = stages["candidates"]
    by_reason = funnel([Decision.parse(r.decision) for r in rejections])
    for reason in dict.fromkeys(code.split(":")[0] for code in by_reason):
        left -= sum(n for code, n in by_reason.items() if code.split(":")[0] == reason)
        stages[f"after {reason}"] = left
    return stages


def location(store: Store, rel: str) -> str:
    """Where a file of the data root is, as a user would open it (a path, or a URL off the disk)."""
    path = store.path(rel)
    return path if store.local else store.fs.unstrip_protocol(path)


def _finish(
    settings: Settings, summary: DatasetSummary, errors: dict[str, str], key: str, progress: Progress
) -> RunResult:
    samples, rejections = DecisionStore(Store(settings.root)).load(settings)
    stages = funnel_stages(samples, rejections)
    report = location(Store(settings.root), REPORT)
    publish_funnel(key, stages, summary.samples)
    lines = [f"{split}: {n} samples" for split, n in summary.samples.items()]
    lines += [f"shards written by this run: {len(summary.shards_written)}"]
    lines += [f"channel {channel}: {error}" for channel, error in errors.items()]
    publish_report(key, report, lines)
    progress.update(100.0)
    return RunResult(stages, summary.samples, summary.shards_written, report, errors)


def _run(settings: Settings, kind: str, raw_root: str | None = None) -> RunResult:
    task_settings = for_tasks(settings)
    key = f"midshard-{kind}"
    progress = Progress(key)
    errors = _collect(task_settings) if kind in ("scrape", "refresh") else {}
    progress.update(30.0)
    summary = _clean_and_write(settings, task_settings, raw_root or settings.root, kind, progress)
    return _finish(settings, summary, errors, key, progress)


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
    import_task(for_tasks(settings), files, media)
    return _run(settings, "import")


FLOWS = {"scrape": scrape, "refresh": refresh, "rebuild": rebuild, "import": import_export}


def with_runner(settings: Settings, name: str) -> Flow:
    """The flow `name` with the task runner the settings ask for (so it runs as one flow run)."""
    return FLOWS[name].with_options(task_runner=task_runner(settings))

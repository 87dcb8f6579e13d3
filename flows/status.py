"""`midshard status`: what a data root holds, from aggregates and metadata only.

It answers in about the same time for a thousand candidates or a million, because it reads only
what the pipeline already keeps small:

    channels    batch names (cursor, newest message time) and the decisions' `channel_id` and
                `message_id` columns (distinct messages decided per channel); raw batches no run
                has settled yet are counted as batches: their messages are not read
    media       the decisions' funnel (parquet metadata): images stored, downloads failed by
                reason; batches whose media is still pending (a listing)
    decisions   the same metadata, by reason
    dataset     manifest.json: samples, shards and dropped candidates per split / reason
    runs        the manifest's runs (kind, settings fingerprint, what each wrote), with the times
                from the run log (derived/runs/: the manifest holds no wall-clock time)
    lock        who holds the root now (`midshard.lock.holder`: takes nothing)

It lives with the flows because it reads every layer (raw store, decisions, dataset); it imports
no Prefect and writes nothing, so it is safe while a run holds the root.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from midshard.cleaners.decisions import DecisionStore
from midshard.errors import MidshardError
from midshard.flows import run_log
from midshard.lock import holder
from midshard.raw_store import RawStore
from midshard.records import Reason
from midshard.snowflakes import SnowflakeError, snowflake_time
from midshard.store import Store
from midshard.writers.layout import DATASET, SPLITS
from midshard.writers.manifest import previous_manifest

RUNS_SHOWN = 5
_FAILED = f"{Reason.DOWNLOAD_FAILED.value}:"


@dataclass(frozen=True)
class Channel:
    id: str
    cursor: str  # newest committed message id ("" before the first batch)
    newest_message: str | None  # its time, ISO-8601 UTC
    messages: int  # distinct messages decided
    batches: int  # raw message batches stored
    batches_not_cleaned: int  # of which no run has settled every candidate yet
    media_batches_pending: int  # of which the media is not downloaded yet


@dataclass(frozen=True)
class Run:
    kind: str
    run_id: str
    finished: str | None  # None: not recorded (a run before the run log, or one killed after writing)
    seconds: float | None
    settings_fingerprint: str
    samples_written: dict[str, int]
    shards_written: int


@dataclass(frozen=True)
class Status:
    root: str
    held_by: str | None  # "pid 12 on host since ... (command)", or None
    channels: list[Channel]
    images_stored: int  # decided candidates whose image was stored
    downloads_failed: dict[str, int]  # why -> candidates
    decisions: dict[str, int]  # funnel key -> candidates (keep last)
    dataset: dict[str, Any] | None  # None: nothing written yet
    runs: list[Run] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


def read_status(root: str) -> Status:
    """The status of the data root at `root` (`MidshardError` if there is no data root there)."""
    store = Store(root)
    if not store.exists(""):
        raise MidshardError(f"no data root at {root}")
    decisions = DecisionStore(store)
    funnel = decisions.funnel()
    steps = decisions.steps()
    stored = steps["stored"]["seen"] - steps["stored"]["dropped"] if "stored" in steps else 0
    lock = holder(root)
    manifest = previous_manifest(store)
    return Status(
        root=root,
        held_by=None if lock is None else str(lock),
        channels=_channels(RawStore(store), decisions),
        images_stored=stored,
        downloads_failed={k.removeprefix(_FAILED): n for k, n in funnel.items() if k.startswith(_FAILED)},
        decisions=funnel,
        dataset=_dataset(store, manifest),
        runs=_runs(store, manifest),
    )


def _channels(raw: RawStore, decisions: DecisionStore) -> list[Channel]:
    messages = decisions.messages_per_channel()
    settled = decisions.settled_batches()
    channels = []
    for channel_id in raw.channels():
        batches = raw.message_batches(channel_id)
        try:
            cursor = raw.cursor(channel_id)
        except SnowflakeError:  # a hand-edited cursor file: `collect` names it, status goes on
            cursor = 0
        channels.append(
            Channel(
                id=str(channel_id),
                cursor=str(cursor or ""),
                newest_message=run_log.iso(snowflake_time(cursor)) if cursor else None,
                messages=messages.get(channel_id, 0),
                batches=len(batches),
                batches_not_cleaned=sum(batch not in settled for batch in batches),
                media_batches_pending=len(raw.pending_media_batches(channel_id)),
            )
        )
    return channels


def _dataset(store: Store, manifest: dict[str, Any]) -> dict[str, Any] | None:
    if not manifest:
        return None
    counts = manifest["counts"]
    return {
        "path": store.location(DATASET),
        "samples": {split: counts["samples"].get(split, 0) for split in SPLITS},
        "shards": {split: counts["shards"].get(split, 0) for split in SPLITS},
        "train_to_validation": counts["train_to_validation"],
        "rejected": counts["rejected"]["total"],
        "settings_fingerprint": manifest["settings_fingerprint"],
    }


def _runs(store: Store, manifest: dict[str, Any]) -> list[Run]:
    """The last runs: the manifest's, with times from the run log, and logged runs that wrote
    nothing to the dataset (so the manifest does not list them)."""
    logged = {record.run_id: record for record in run_log.recent(store, RUNS_SHOWN * 4)}
    runs = []
    for entry in manifest.get("runs", [])[-RUNS_SHOWN:]:
        record = logged.pop(entry["id"], None)
        runs.append(
            Run(
                kind=entry["kind"],
                run_id=entry["id"],
                finished=record.finished if record else None,
                seconds=record.seconds if record else None,
                settings_fingerprint=entry["settings_fingerprint"],
                samples_written=entry["samples_written"],
                shards_written=len(entry["shards"]),
            )
        )
    for record in logged.values():
        if not any(record.samples_written.values()) and not record.shards_written:
            runs.append(
                Run(
                    record.kind,
                    record.run_id,
                    record.finished,
                    record.seconds,
                    record.settings_fingerprint,
                    record.samples_written,
                    record.shards_written,
                )
            )
    runs.sort(key=lambda run: run.finished or "")
    return runs[-RUNS_SHOWN:]


# -- the screen ------------------------------------------------------------------------------------
def render(status: Status, console: Console) -> None:
    """The status as one screen: tables for channels and runs, lines for the rest."""
    held = f"[bold]held by {status.held_by}[/bold]" if status.held_by else "no run holds it now"
    console.print(f"data root {status.root}: {held}", soft_wrap=True)
    channels = Table(title="channels (batches: raw pages stored, and those not cleaned yet)")
    channels.add_column("channel", no_wrap=True)
    channels.add_column("newest (UTC)", no_wrap=True)
    for column in ("messages", "batches", "to clean"):
        channels.add_column(column, justify="right")
    for c in status.channels:
        row = (c.messages, c.batches, c.batches_not_cleaned)
        channels.add_row(c.id, _minute(c.newest_message), *(f"{n:,}" for n in row))
    console.print(channels)
    failed = ", ".join(f"{why} {n:,}" for why, n in status.downloads_failed.items()) or "none"
    pending = sum(c.media_batches_pending for c in status.channels)
    console.print(
        f"media: {status.images_stored:,} images stored · downloads failed: {failed} · "
        f"{pending:,} batches waiting for their media",
        soft_wrap=True,
    )
    decided = sum(status.decisions.values())
    reasons = " · ".join(f"{decision} {n:,}" for decision, n in status.decisions.items())
    console.print(f"decisions: {decided:,} candidates: {reasons or 'none yet'}", soft_wrap=True)
    _render_dataset(status.dataset, console)
    runs = Table(title="last runs")
    for column in ("finished (UTC)", "kind", "took", "samples written", "shards", "settings"):
        runs.add_column(column, no_wrap=column in ("finished (UTC)", "settings"))
    for run in status.runs:
        wrote = " + ".join(f"{n:,} {split}" for split, n in run.samples_written.items() if n) or "none"
        took = f"{run.seconds:.0f} s" if run.seconds is not None else "-"
        finished = _minute(run.finished) if run.finished else "not recorded"
        runs.add_row(finished, run.kind, took, wrote, str(run.shards_written), run.settings_fingerprint)
    console.print(runs)


def _shards(count: int) -> str:
    return f"{count} shard" if count == 1 else f"{count} shards"


def _minute(iso_time: str | None) -> str:
    """`2025-09-27T07:45:15.217000Z` -> `2025-09-27 07:45` (the JSON keeps the full time)."""
    return iso_time[:16].replace("T", " ") if iso_time else "-"


def _render_dataset(dataset: dict[str, Any] | None, console: Console) -> None:
    if dataset is None:
        console.print("dataset: nothing written yet")
        return
    samples, shards = dataset["samples"], dataset["shards"]
    splits = " · ".join(f"{split} {samples[split]:,} samples in {_shards(shards[split])}" for split in SPLITS)
    console.print(
        f"dataset: {splits} · {dataset['train_to_validation']} · {dataset['rejected']:,} dropped "
        f"· settings {dataset['settings_fingerprint']}",
        soft_wrap=True,
    )
    console.print(f"         {dataset['path']}", soft_wrap=True, highlight=False)

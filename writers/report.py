"""`report.html`: one self-contained page (inline CSS, inline SVG, thumbnails as data URIs; no
network, no JavaScript) showing the funnel, drop reasons, split, resolution / aspect / NSFW
histograms, Midjourney versions, a grid of kept samples and one of dropped candidates.
Everything is derived from the files on disk, so it always describes the whole dataset.
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from midshard.cleaners.registry import funnel_rank
from midshard.records import Reason, Rejection
from midshard.settings import Settings
from midshard.store import Store
from midshard.writers.card import human_bytes
from midshard.writers.charts import bar_chart, histogram
from midshard.writers.layout import DATASET, REPORT, SPLITS
from midshard.writers.rejected import REJECTED_SCHEMA, read_rejected, to_rejection
from midshard.writers.sidecars import read_table
from midshard.writers.state import DatasetState
from midshard.writers.tally import MEGAPIXEL_EDGES, NSFW_BINS, Tally
from midshard.writers.templates import render
from midshard.writers.thumbnails import first_thumbnails, pick_order

ASPECT_LABELS = ["<1:2", "1:2–2:3", "2:3–4:5", "4:5–1:1", "≈1:1", "1:1–5:4", "5:4–3:2", "3:2–2:1", ">2:1"]
NEVER_SHOWN = {Reason.NSFW.value}  # dropped as NSFW: never put into a report
_KEPT_COLUMNS = ["key", "split", "caption", "width", "height", "image_format", "tar_file", "image_offset"]
_KEPT_COLUMNS += ["file_size"]


def write_report(
    store: Store,
    settings: Settings,
    manifest: dict[str, Any],
    figures: Tally,
    state: DatasetState,
    read_rejected_image: Callable[[Rejection], bytes | None] | None,
) -> None:
    page = render(
        "report.html.j2",
        manifest=manifest,
        steps=_latest(manifest["runs"]).get("steps", []),
        figures=figures,
        splits=SPLITS,
        human_bytes=human_bytes,
        charts=_charts(figures, manifest, settings.nsfw_threshold),
        kept_thumbs=list(_kept_thumbnails(store, state, settings)),
        dropped_thumbs=list(_dropped_thumbnails(store, state, settings, read_rejected_image)),
        thumbs_enabled=settings.report_thumbnails > 0,
        dropped_readable=read_rejected_image is not None,
        show=_show,
    )
    store.write_text(REPORT, page)


def _charts(figures: Tally, manifest: dict[str, Any], threshold: float) -> dict[str, str]:
    edges = itertools.pairwise(MEGAPIXEL_EDGES)
    mp_labels = [f"{lo:g}–{hi:g}" if hi != float("inf") else f"≥{lo:g}" for lo, hi in edges]
    mp_labels[0] = "<1"
    nsfw_labels = [f"{n / NSFW_BINS:.2f}" for n in range(NSFW_BINS)]
    funnel = _funnel(manifest["runs"])
    return {
        "funnel": bar_chart([*funnel, ("kept (in shards)", figures.total)], "funnel"),
        "reasons": bar_chart(list(figures.rejected.items()), "dropped candidates by reason"),
        "megapixels": histogram(mp_labels, list(figures.megapixels), "megapixels"),
        "aspect": histogram(ASPECT_LABELS, list(figures.aspect), "aspect ratio (width:height)"),
        "nsfw": histogram(
            nsfw_labels, list(figures.nsfw), "NSFW score", marker=threshold, tick_every=2, at_edges=True
        ),
        "versions": bar_chart(
            [(version or "not specified", n) for version, n in figures.mj_versions.items()],
            "Midjourney versions",
        ),
        "formats": bar_chart(list(figures.image_formats.items()), "image formats"),
    }


def _show(value: object) -> str:
    """A settings value as a reader expects it: lists comma-separated, None as "not set"."""
    if value is None:
        return "not set"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def _latest(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The latest run's entry: its funnel and step counts cover every candidate decided so far, once
    (earlier runs' are what the dataset held then, not parts to add up)."""
    return runs[-1] if runs else {}


def _funnel(runs: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """The current dataset's funnel."""
    return [(step["stage"], step["count"]) for step in _latest(runs).get("funnel", [])]


def _kept_thumbnails(store: Store, state: DatasetState, settings: Settings) -> Iterator[tuple[dict, str]]:
    """A stable pseudo-random pick of kept samples (`pick_order` of their keys), read from the tars."""
    shards = [s for split in SPLITS for s in state.shards[split]]
    wanted = 4 * settings.report_thumbnails  # first_thumbnails tries at most 4x the number shown
    starts = itertools.accumulate((stats.count for stats in shards), initial=0)  # state.kept: shard by shard
    orders = (
        (pick_order(key), number, row)
        for number, (start, stats) in enumerate(zip(starts, shards, strict=False))
        for row, key in enumerate(state.kept.slice(start, stats.count).to_pylist())
    )
    picked = heapq.nsmallest(wanted, orders)
    by_shard: dict[int, list[int]] = defaultdict(list)
    for _, number, row in picked:
        by_shard[number].append(row)
    rows = {}
    for number, wanted_rows in by_shard.items():
        table = read_table(store, shards[number].shard.sidecar, _KEPT_COLUMNS)
        rows.update(((number, r), row) for r, row in zip(wanted_rows, _take(table, wanted_rows), strict=True))
    ordered = [rows[(number, row)] for _, number, row in picked]

    def reader(row: dict) -> Callable[[], bytes]:
        def read() -> bytes:
            with store.open_read(f"{DATASET}/{row['tar_file']}") as handle:
                handle.seek(row["image_offset"])
                return handle.read(row["file_size"])

        return read

    candidates = ((row, reader(row)) for row in ordered)
    yield from first_thumbnails(candidates, settings.report_thumbnails, settings.max_image_pixels)


def _take(table: pa.Table, rows: Sequence[int]) -> list[dict]:
    return table.take(pa.array(rows, pa.int64())).to_pylist()


def _dropped_thumbnails(
    store: Store, state: DatasetState, settings: Settings, read: Callable[[Rejection], bytes | None] | None
) -> Iterator[tuple[dict, str]]:
    """Round-robin over reasons (pipeline order) so every kind of drop gets a face.

    Each rejected file is filtered with pyarrow first (stored media, shown reasons, not kept
    later): rejected/ can hold millions of rows, only the few picked per reason become dicts.
    """
    limit = settings.report_thumbnails // 2
    if read is None or not limit:
        return
    best: dict[str, list[tuple[bytes, dict]]] = defaultdict(list)  # reason -> (pick order, row)
    for table in read_rejected(store, REJECTED_SCHEMA.names):
        showable = pc.and_(
            pc.not_equal(table.column("sha256"), ""),  # media was stored
            pc.invert(pc.is_in(table.column("reason"), value_set=pa.array(sorted(NEVER_SHOWN)))),
        )
        kept_later = pc.is_in(table.column("key"), value_set=state.kept)
        table = table.filter(pc.and_(showable, pc.invert(kept_later)))
        keys, reasons = table.column("key").to_pylist(), table.column("reason").to_pylist()
        for reason in set(reasons):
            ranked = heapq.nsmallest(
                4 * limit, ((pick_order(keys[n]), n) for n, r in enumerate(reasons) if r == reason)
            )
            rows = _take(table, [n for _, n in ranked])
            found = [(order, row) for (order, _), row in zip(ranked, rows, strict=True)]
            best[reason] = heapq.nsmallest(4 * limit, best[reason] + found, key=lambda pair: pair[0])
    queues = [[row for _, row in best[reason]] for reason in sorted(best, key=funnel_rank)]
    interleaved = (row for group in itertools.zip_longest(*queues) for row in group if row is not None)

    def reader(row: dict) -> Callable[[], bytes | None]:
        return lambda: read(to_rejection(row))

    yield from first_thumbnails(((row, reader(row)) for row in interleaved), limit, settings.max_image_pixels)

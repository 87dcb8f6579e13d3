"""`report.html`: one self-contained page (inline CSS, inline SVG, thumbnails as data URIs; no
network, no JavaScript) showing the funnel, drop reasons, split, resolution / aspect / NSFW
histograms, Midjourney versions, a grid of kept samples and one of dropped candidates.
Everything is derived from the files on disk, so it always describes the whole dataset.
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from midshard.records import Reason, Rejection
from midshard.settings import Settings
from midshard.store import Store
from midshard.writers.card import human_bytes
from midshard.writers.charts import bar_chart, histogram
from midshard.writers.layout import DATASET, REPORT, SPLITS
from midshard.writers.rejected import to_rejection
from midshard.writers.state import DatasetState
from midshard.writers.tally import Tally
from midshard.writers.templates import render
from midshard.writers.thumbnails import first_thumbnails, pick_order

MEGAPIXEL_EDGES = [0, 1, 1.5, 2, 3, 4, 6, 9, 16, np.inf]
ASPECT_EDGES = [0, 0.5, 2 / 3, 0.8, 0.95, 1.05, 1.25, 1.5, 2, np.inf]
ASPECT_LABELS = ["<1:2", "1:2–2:3", "2:3–4:5", "4:5–1:1", "≈1:1", "1:1–5:4", "5:4–3:2", "3:2–2:1", ">2:1"]
NSFW_BINS = 20
NEVER_SHOWN = {Reason.NSFW.value}  # dropped as NSFW: never put into a report


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
        figures=figures,
        splits=SPLITS,
        human_bytes=human_bytes,
        charts=_charts(state.kept, figures, manifest, settings.nsfw_threshold),
        kept_thumbs=list(_kept_thumbnails(store, state.kept, settings)),
        dropped_thumbs=list(_dropped_thumbnails(state, settings, read_rejected_image)),
        thumbs_enabled=settings.report_thumbnails > 0,
        dropped_readable=read_rejected_image is not None,
        show=_show,
    )
    store.write_text(REPORT, page)


def _charts(kept: pa.Table, figures: Tally, manifest: dict[str, Any], threshold: float) -> dict[str, str]:
    width = kept.column("width").to_numpy().astype(float)
    height = kept.column("height").to_numpy().astype(float)
    megapixels, _ = np.histogram(width * height / 1e6, MEGAPIXEL_EDGES)
    aspect, _ = np.histogram(width / np.maximum(height, 1), ASPECT_EDGES)
    nsfw, _ = np.histogram(kept.column("nsfw_score").to_numpy(), NSFW_BINS, range=(0.0, 1.0))
    edges = itertools.pairwise(MEGAPIXEL_EDGES)
    mp_labels = [f"{lo:g}–{hi:g}" if np.isfinite(hi) else f"≥{lo:g}" for lo, hi in edges]
    mp_labels[0] = "<1"
    nsfw_labels = [f"{n / NSFW_BINS:.2f}" for n in range(NSFW_BINS)]
    funnel = _funnel(manifest["runs"])
    kept_total = figures.total
    return {
        "funnel": bar_chart([*funnel, ("kept (in shards)", kept_total)], "funnel"),
        "reasons": bar_chart(list(figures.rejected.items()), "dropped candidates by reason"),
        "megapixels": histogram(mp_labels, megapixels.tolist(), "megapixels"),
        "aspect": histogram(ASPECT_LABELS, aspect.tolist(), "aspect ratio (width:height)"),
        "nsfw": histogram(
            nsfw_labels, nsfw.tolist(), "NSFW score", marker=threshold, tick_every=2, at_edges=True
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


def _funnel(runs: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """Funnel stages summed over all runs, in the order they first appear."""
    totals: dict[str, int] = {}
    for entry in runs:
        for step in entry["funnel"]:
            totals[step["stage"]] = totals.get(step["stage"], 0) + step["count"]
    return list(totals.items())


def _pick(keys: list[str], indices: Iterable[int], count: int) -> pa.Array:
    """The `count` indices whose keys come first in `pick_order`: a stable pseudo-random sample."""
    return pa.array(heapq.nsmallest(count, indices, key=lambda i: pick_order(keys[i])), pa.int64())


def _kept_thumbnails(store: Store, kept: pa.Table, settings: Settings) -> Iterator[tuple[dict, str]]:
    keys = kept.column("key").to_pylist()
    wanted = 4 * settings.report_thumbnails  # first_thumbnails tries at most 4x the number shown
    rows = kept.take(_pick(keys, range(len(keys)), wanted)).to_pylist()

    def reader(row: dict) -> Callable[[], bytes]:
        def read() -> bytes:
            with store.open_read(f"{DATASET}/{row['tar_file']}") as handle:
                handle.seek(row["image_offset"])
                return handle.read(row["file_size"])

        return read

    candidates = ((row, reader(row)) for row in rows)
    yield from first_thumbnails(candidates, settings.report_thumbnails, settings.max_image_pixels)


def _dropped_thumbnails(
    state: DatasetState, settings: Settings, read: Callable[[Rejection], bytes | None] | None
) -> Iterator[tuple[dict, str]]:
    """Round-robin over reasons (pipeline order) so every kind of drop gets a face.

    Filtered with pyarrow first: rejected/ can hold millions of rows, only a few become dicts.
    """
    limit = settings.report_thumbnails // 2
    if read is None or not limit:
        return
    rejected = state.rejected
    shown = pc.and_(
        pc.not_equal(rejected.column("sha256"), ""),  # media was stored
        pc.invert(pc.is_in(rejected.column("reason"), value_set=pa.array(sorted(NEVER_SHOWN)))),
    )
    kept_later = pc.is_in(rejected.column("key"), value_set=state.kept.column("key").combine_chunks())
    rejected = rejected.filter(pc.and_(shown, pc.invert(kept_later)))
    keys = rejected.column("key").to_pylist()
    by_reason: dict[str, list[int]] = defaultdict(list)
    for index, reason in enumerate(rejected.column("reason").to_pylist()):
        by_reason[reason].append(index)
    order = {reason.value: n for n, reason in enumerate(Reason)}
    queues = [
        rejected.take(
            pa.array(heapq.nsmallest(4 * limit, by_reason[r], key=lambda i: pick_order(keys[i])))
        ).to_pylist()
        for r in sorted(by_reason, key=lambda r: order.get(r, len(order)))
    ]
    interleaved = (row for group in itertools.zip_longest(*queues) for row in group if row is not None)

    def reader(row: dict) -> Callable[[], bytes | None]:
        return lambda: read(to_rejection(row))

    candidates = ((row, reader(row)) for row in interleaved)
    yield from first_thumbnails(candidates, limit, settings.max_image_pixels)

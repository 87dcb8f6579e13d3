"""The reference the feature pipeline is held to, and real photographs to hold it to.

The reference is the straightforward computation midshard's features reproduce: Pillow decodes the
file, `imagehash.phash` / `imagehash.dhash` hash the full-size image, and open_nsfw scores Yahoo's
reference preprocessing of the full-size image (classify_nsfw.py in yahoo/open_nsfw: resize to
256×256 bilinear, JPEG quality 75 round trip, centre crop 224, RGB -> BGR, minus the mean).
`bench/clean.py` reuses this module.

The photographs are the ones scikit-image ships inside its wheel (no download), cut and resized to
Midjourney's output sizes and stored as Midjourney does: PNG, every fourth one lossy WebP.
"""

from __future__ import annotations

import importlib.resources
import io

import imagehash
import numpy as np
from PIL import Image, ImageOps

from midshard.cleaners.dedup import NearDuplicateFilter
from midshard.cleaners.nsfw import NsfwScorer, nsfw_decision
from midshard.settings import Settings

PHOTOS = (
    "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png",
    "coffee.png", "coins.png", "color.png", "grass.png", "gravel.png", "hubble_deep_field.jpg",
    "ihc.png", "logo.png", "moon.png", "motorcycle_left.png", "motorcycle_right.png", "page.png",
    "retina.jpg", "rocket.jpg", "text.png",
)  # fmt: skip
SIZES = ((1024, 1024), (1456, 816), (816, 1456), (1232, 928))  # Midjourney's common outputs
_MEAN_BGR = (104.0, 117.0, 123.0)


def real_images(crops_per_photo: int = 2, seed: int = 0) -> list[bytes]:
    """Each photograph fitted to every size in SIZES, plus random crops scaled to 1024², encoded."""
    rng = np.random.default_rng(seed)
    pictures = []
    for name in PHOTOS:
        with Image.open(importlib.resources.files("skimage") / "data" / name) as photo:
            photo = photo.convert("RGB")
        pictures += [ImageOps.fit(photo, size, Image.Resampling.LANCZOS) for size in SIZES]
        width, height = photo.size
        for _ in range(crops_per_photo):
            w, h = int(width * rng.uniform(0.5, 0.8)), int(height * rng.uniform(0.5, 0.8))
            left, top = int(rng.uniform(0, width - w)), int(rng.uniform(0, height - h))
            crop = photo.crop((left, top, left + w, top + h))
            pictures.append(crop.resize((1024, 1024), Image.Resampling.BICUBIC))
    return [_encode(picture, webp=i % 4 == 3) for i, picture in enumerate(pictures)]


def reference_features(data: bytes, scorer: NsfwScorer) -> tuple[int, int, float]:
    """(pHash, dHash, NSFW score) of one file, computed the reference way."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        phash, dhash = (int(str(f(image)), 16) for f in (imagehash.phash, imagehash.dhash))
        (score,) = scorer.score(yahoo_preprocessing(image)[None])
    return phash, dhash, float(score)


def yahoo_preprocessing(image: Image.Image) -> np.ndarray:
    """open_nsfw's input, in the order of Yahoo's classify_nsfw.py."""
    squashed = image.convert("RGB").resize((256, 256), Image.Resampling.BILINEAR)
    with Image.open(io.BytesIO(_jpeg_q75(squashed))) as reloaded:
        rgb = np.asarray(reloaded.convert("RGB"), dtype=np.float32)
    return np.ascontiguousarray(rgb[16:240, 16:240, ::-1] - np.array(_MEAN_BGR, dtype=np.float32))


def _jpeg_q75(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=75)
    return buffer.getvalue()


def _encode(picture: Image.Image, webp: bool) -> bytes:
    buffer = io.BytesIO()
    if webp:
        picture.save(buffer, format="WEBP", quality=90)
    else:
        picture.save(buffer, format="PNG")
    return buffer.getvalue()


def decisions(phashes: list[int], dhashes: list[int], scores: list[float], settings: Settings) -> list[str]:
    """`near_duplicate` and `nsfw_threshold` over a set of images in order, as the pipeline runs
    them: near-duplicate of an earlier kept image (by index), else the NSFW threshold, else keep."""
    keys = [f"{i:06d}" for i in range(len(phashes))]
    duplicates = NearDuplicateFilter(settings).run(
        keys, np.array(phashes, dtype=np.uint64), np.array(dhashes, dtype=np.uint64)
    )
    return [
        f"duplicate_of:{duplicate}" if duplicate else str(nsfw_decision(score, settings.nsfw_threshold))
        for duplicate, score in zip(duplicates, scores, strict=True)
    ]

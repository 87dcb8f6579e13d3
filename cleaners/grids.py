"""2×2 Midjourney grids cut into their four tiles (only with `grids = "split"`), and the bytes the
writer stores for a sample.

Tiles are numbered 1–4: top-left, top-right, bottom-left, bottom-right (tile 0 = the whole image,
as in `records.candidate_key`). An odd width or height gives the extra column/row to the right or
bottom tiles, so the four boxes always cover the image exactly once.

A tile sample stores `tile_bytes(grid, tile, max_image_pixels)`, a PNG made from the crop. Its
sha256 and size are computed once, from the same decode as the tile's other features
(`encode_tile` on the crop), and carried by the sample; `MediaReader` makes the same bytes again
when the shard is written.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import PIL
from PIL import Image, features

from midshard.cleaners.images import read_header
from midshard.records import Decision

if TYPE_CHECKING:  # the feature workers import this module: they need none of these
    from midshard.raw_store import RawStore
    from midshard.records import Rejection, Sample
    from midshard.settings import Settings

# Modes Pillow writes to PNG as they are; anything else (CMYK, YCbCr, ...) is stored as RGB.
_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"}
# What makes the tile bytes: the same pixels give the same bytes only under the same encoder
# (Pillow and its deflate library). Cached tile digests made by another one are recomputed.
TILE_ENCODER = "/".join(
    [f"png6/pillow-{PIL.__version__}"]
    + [f"{lib}-{features.version(lib)}" for lib in ("zlib", "zlib_ng") if features.check(lib)]
)


def tile_boxes(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """PIL crop boxes (left, upper, right, lower) of tiles 1..4."""
    mid_x, mid_y = width // 2, height // 2
    return [
        (0, 0, mid_x, mid_y),
        (mid_x, 0, width, mid_y),
        (0, mid_y, mid_x, height),
        (mid_x, mid_y, width, height),
    ]


def tile_size(width: int, height: int, tile: int) -> tuple[int, int]:
    """(width, height) of tile `tile` of an image of this size (tile 0: the whole image)."""
    if tile == 0:
        return width, height
    left, upper, right, lower = tile_boxes(width, height)[tile - 1]
    return right - left, lower - upper


def crop_tile(image: Image.Image, tile: int) -> Image.Image:
    """Tile `tile` of a decoded image (tile 0: the image itself)."""
    if tile == 0:
        return image
    if not 1 <= tile <= 4:
        raise ValueError(f"tile {tile} is not 0..4")
    return image.crop(tile_boxes(*image.size)[tile - 1])


def encode_tile(tile_image: Image.Image) -> bytes:
    """A decoded tile as the PNG a shard stores: lossless, byte-deterministic, and no metadata but
    a palette's transparency (Pillow would copy the grid's ICC profile otherwise: the bytes would
    then depend on which decoder produced the pixels)."""
    if tile_image.mode not in _PNG_MODES:
        tile_image = tile_image.convert("RGB")
    transparency = tile_image.info.get("transparency")
    out = io.BytesIO()
    if transparency is None:
        tile_image.save(out, format="PNG", compress_level=6, icc_profile=None)
    else:
        tile_image.save(out, format="PNG", compress_level=6, icc_profile=None, transparency=transparency)
    return out.getvalue()


def tile_bytes(data: bytes, tile: int, max_image_pixels: int) -> bytes:
    """The PNG the writer stores for tile `tile` of the grid `data`.

    Opened and decoded exactly as `image_features.image_features` does, so these are the bytes whose
    sha256 and size the tile's features recorded. Lossless, so the tile's pHash and NSFW score are
    those of these bytes too.
    """
    opened = read_header(data, max_image_pixels)
    if isinstance(opened, Decision):
        raise ValueError(f"not a grid image: {opened}")
    image = opened[0]
    with image:
        image.load()
        return encode_tile(crop_tile(image, tile))


class MediaReader:
    """The bytes of samples and rejections, for the writers (`write_dataset`'s two readers).

    A whole-image sample's bytes are its raw file. A tile sample's sha256 is that of its tile PNG,
    which is in no store: its grid is found through the attachment index (loaded per channel, once)
    and cut again.
    """

    def __init__(self, raw: RawStore, settings: Settings) -> None:
        self.raw = raw
        self.max_image_pixels = settings.max_image_pixels
        self._sources: dict[int, dict[int, str]] = {}  # channel -> attachment id -> raw sha256

    def sample(self, sample: Sample) -> bytes:
        """What the shard stores for `sample` (the writer checks it against its sha256 and size)."""
        if sample.tile == 0:
            return self.raw.read_media(sample.sha256)
        source = self._source(sample.channel_id, sample.attachment_id)
        if not source:
            raise ValueError(f"sample {sample.key}: the attachment index has no stored file for its grid")
        return tile_bytes(self.raw.read_media(source), sample.tile, self.max_image_pixels)

    def rejected(self, rejection: Rejection) -> bytes | None:
        """The stored file a rejected candidate came from (a tile's grid), or None (report thumbnails)."""
        sha256 = rejection.sha256
        if rejection.tile and rejection.attachment_id:
            sha256 = self._source(rejection.channel_id, rejection.attachment_id)
        if sha256 and self.raw.has_media(sha256):
            return self.raw.read_media(sha256)
        return None

    def _source(self, channel_id: int, attachment_id: int) -> str:
        if channel_id not in self._sources:
            results = self.raw.attachment_results(channel_id)
            self._sources[channel_id] = {aid: r.sha256 for aid, r in results.items() if r.sha256}
        return self._sources[channel_id].get(attachment_id, "")

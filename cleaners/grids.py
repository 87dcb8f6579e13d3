"""2×2 Midjourney grids cut into their four tiles (only with `grids = "split"`).

Tiles are numbered 1–4: top-left, top-right, bottom-left, bottom-right (tile 0 = the whole image,
as in `records.candidate_key`). An odd width or height gives the extra column/row to the right or
bottom tiles, so the four boxes always cover the image exactly once.
"""

from __future__ import annotations

import io

from PIL import Image

# Modes Pillow writes to PNG as they are; anything else (CMYK, YCbCr, ...) is stored as RGB.
_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"}


def tile_boxes(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """PIL crop boxes (left, upper, right, lower) of tiles 1..4."""
    mid_x, mid_y = width // 2, height // 2
    return [
        (0, 0, mid_x, mid_y),
        (mid_x, 0, width, mid_y),
        (0, mid_y, mid_x, height),
        (mid_x, mid_y, width, height),
    ]


def crop_tile(image: Image.Image, tile: int) -> Image.Image:
    """Tile `tile` of a decoded image (tile 0: the image itself)."""
    if tile == 0:
        return image
    if not 1 <= tile <= 4:
        raise ValueError(f"tile {tile} is not 0..4")
    return image.crop(tile_boxes(*image.size)[tile - 1])


def tile_bytes(data: bytes, tile: int) -> bytes:
    """The PNG the writer stores for a tile sample: lossless, no metadata, byte-deterministic.

    Lossless so that the tile's features (computed from the crop of the decoded grid) are exactly
    the features of these bytes.
    """
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        tile_image = crop_tile(image, tile)
        if tile_image.mode not in _PNG_MODES:
            tile_image = tile_image.convert("RGB")
        out = io.BytesIO()
        tile_image.save(out, format="PNG", compress_level=6)
    return out.getvalue()

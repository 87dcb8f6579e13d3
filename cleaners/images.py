"""Header-only image checks: what the bytes are, how large, how many frames — without decoding.

The facts behind the steps `non_empty_file` to `resolution` of docs/parsing-rules.md. Pillow's
`Image.open` parses headers lazily (pixel data is only read by `load()`), so everything here costs
microseconds and a hostile file is rejected before a single pixel is decoded. Only the formats
Midjourney and Discord serve are opened at all (`Image.open(formats=...)`), so no exotic Pillow
plugin ever parses untrusted bytes.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile

from midshard.records import KEEP, Decision, Reason, drop

FORMATS = ("PNG", "WEBP", "JPEG", "GIF")


@dataclass(frozen=True, slots=True)
class ImageHeader:
    format: str  # lower case: png | webp | jpeg | gif
    width: int
    height: int
    frames: int  # for GIF, 2 means "two or more" (counting GIF frames walks the whole file)
    file_size: int


def set_pil_limits(max_image_pixels: int) -> None:
    """Make Pillow's own bomb limit ours, explicitly (feature workers, before each job).

    Pillow warns above the limit and raises above twice it; both are caught by `read_header`, and
    our own `width * height > max_image_pixels` check decides. `LOAD_TRUNCATED_IMAGES` stays off,
    so truncated data raises instead of decoding as grey.
    """
    Image.MAX_IMAGE_PIXELS = max_image_pixels
    ImageFile.LOAD_TRUNCATED_IMAGES = False


def allow_pixels(max_image_pixels: int) -> None:
    """In a process we do not own, only ever raise Pillow's limit (up to ours), never lower it."""
    if Image.MAX_IMAGE_PIXELS is not None and max_image_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_image_pixels


def read_header(data: bytes, max_image_pixels: int) -> tuple[Image.Image, ImageHeader] | Decision:
    """Open `data` lazily (headers only): empty_file, then not_an_image (the open image is reused to
    decode).

    A header over twice Pillow's limit is refused by Pillow itself (decompression_bomb, size
    unknown); `source_decision` applies the exact limit.
    """
    if not data:
        return drop(Reason.EMPTY_FILE)
    allow_pixels(max_image_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            frames = _frames(image)
    except Image.DecompressionBombError:
        return drop(Reason.DECOMPRESSION_BOMB)
    except Exception:  # any header parser failure: the bytes are not an image we accept
        return drop(Reason.TRUNCATED_IMAGE if _truncated_riff(data) else Reason.NOT_AN_IMAGE)
    width, height = image.size
    return image, ImageHeader(image.format.lower(), width, height, frames, len(data))


def source_decision(pixels: int, frames: int, max_image_pixels: int) -> Decision:
    """The whole file's header: decompression_bomb (`pixel_limit`), then animated_image (`single_frame`)."""
    if pixels > max_image_pixels:
        return drop(Reason.DECOMPRESSION_BOMB)
    if frames > 1:
        return drop(Reason.ANIMATED_IMAGE)
    return KEEP


def probe_header(data: bytes, max_image_pixels: int) -> ImageHeader | Decision:
    """The header of `data`, or its drop: empty_file, not_an_image, decompression_bomb, animated_image.

    (A WebP cut short is refused by its header parser already, as truncated_image.)
    """
    opened = read_header(data, max_image_pixels)
    if isinstance(opened, Decision):
        return opened
    header = opened[1]
    decision = source_decision(header.width * header.height, header.frames, max_image_pixels)
    return header if decision.kept else decision


def resolution_decision(width: int, height: int, min_pixels: int, min_side: int | None) -> Decision:
    """`resolution`: area >= min_pixels by default; with `min_side`, the short side >= min_side instead."""
    ok = min(width, height) >= min_side if min_side is not None else width * height >= min_pixels
    return KEEP if ok else drop(Reason.TOO_SMALL)


def _frames(image: Image.Image) -> int:
    if image.format == "GIF":
        return 2 if image.is_animated else 1
    return int(getattr(image, "n_frames", 1))


def _truncated_riff(data: bytes) -> bool:
    """A WebP whose RIFF header promises more bytes than arrived (Pillow fails it at open)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return False
    (riff_size,) = struct.unpack("<I", data[4:8])
    return len(data) < riff_size + 8

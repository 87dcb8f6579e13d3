"""The files behind attachment URLs: what each one is (`Media`), building its bytes, and a cache.

A `Media` knows its exact byte length before anything is encoded: a message listing must declare
`size` without rendering the image. Real-looking sizes are declared (PNG ~1.6-1.9 bytes per pixel,
lossy WebP ~0.15) and the encoders pad the file up to that length (emulator/encoders.py); the pixels
come from emulator/pixels.py. Everything is byte-deterministic per seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFilter

from midshard.emulator import encoders
from midshard.emulator.determinism import draw
from midshard.emulator.pixels import render, render_small, tiles

IMAGE_TYPES = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}
FILE_TYPES = {
    "pdf": "application/pdf",
    "txt": "text/plain; charset=utf-8",
    "zip": "application/zip",
    "mp4": "video/mp4",
    "html": "text/html",
}


# -- what a file is ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Media:
    """Everything needed to produce one attachment's bytes, and their exact length.

    recipe: image | grid | preview | animation | truncated | corrupt | bomb | empty | html | file.
    `keys` name the pixel content (one key, or four grid tiles); `source` is the size the content
    is rendered at before it is resized to (width, height) — a near-duplicate of that rendering.
    """

    recipe: str
    fmt: str
    width: int
    height: int
    keys: tuple[str, ...] = ()
    source: tuple[int, int] | None = None
    size: int = 0
    frames: int = 1
    small: bool = False  # the `small_files` profile (`render_small`)

    @property
    def content_type(self) -> str:
        return IMAGE_TYPES.get(self.fmt) or FILE_TYPES[self.fmt]

    @property
    def identity(self) -> str | None:
        """Equal identities mean pHash-equal pixels (the same content at any size or encoding)."""
        if self.recipe == "image":
            return self.keys[0]
        return None

    @property
    def digest(self) -> str:
        return hashlib.sha256(repr(self).encode()).hexdigest()


def small(media: Media) -> Media:
    """The picture of the `small_files` profile: a small JPEG of the same content's lighting field
    (no shapes or lines: 30 ms to make instead of 240), so tens of thousands of images cost little
    CPU and disk. Same keys, so near-duplicates stay near-duplicates. Other files unchanged."""
    if media.recipe not in ("image", "grid"):
        return media
    low, high = 0.035, 0.05  # bytes per pixel: above what JPEG quality 75 needs for these fields
    size = int(media.width * media.height * _bytes_per_pixel("jpeg", media.keys[0], low, high)) + 4096
    return dataclasses.replace(media, fmt="jpeg", size=size, small=True)


def _bytes_per_pixel(fmt: str, key: str, low: float, high: float, frames: int = 1) -> float:
    return frames * (low + (high - low) * draw("bpp", fmt, key))


def _declared(fmt: str, width: int, height: int, key: str, frames: int = 1) -> int:
    """A realistic file size for this content (the encoder pads up to it)."""
    ranges = {"png": (1.55, 1.9), "webp": (0.12, 0.22), "jpeg": (0.45, 0.7)}
    low, high = ranges[fmt]
    size = int(width * height * _bytes_per_pixel(fmt, key, low, high, frames)) + 4096
    return size + (size & 1 if fmt == "webp" else 0)  # RIFF files always have an even length


def image(
    key: str, width: int, height: int, fmt: str = "png", source: tuple[int, int] | None = None
) -> Media:
    """One picture; with `source`, rendered at that size and resized (a near-duplicate)."""
    return Media("image", fmt, width, height, (key,), source, _declared(fmt, width, height, key))


def grid(tile_keys: tuple[str, str, str, str], width: int, height: int, fmt: str = "png") -> Media:
    """A 2x2 composite whose tile i is exactly `image(tile_keys[i], width // 2, height // 2)`."""
    return Media("grid", fmt, width, height, tile_keys, None, _declared(fmt, width, height, tile_keys[0]))


def preview(tile_keys: tuple[str, str, str, str], width: int, height: int) -> Media:
    """A blurry in-progress grid (`<uuid>_grid_0.webp`)."""
    return Media(
        "preview", "webp", width, height, tile_keys, None, _declared("webp", width, height, tile_keys[1])
    )


def animation(key: str, width: int, height: int, frames: int = 6) -> Media:
    """An animated WebP (Midjourney's Discord video results)."""
    size = _declared("webp", width, height, key, frames)
    return Media("animation", "webp", width, height, (key,), None, size, frames)


def truncated(key: str, width: int, height: int) -> Media:
    """A PNG cut off in the middle of its pixel data: the header is fine, decoding fails."""
    return Media(
        "truncated",
        "png",
        width,
        height,
        (key,),
        None,
        encoders.stored_png_length(width, height, 3) * 11 // 20,
    )


def corrupt(key: str, width: int, height: int) -> Media:
    """A complete PNG with valid chunk CRCs whose deflate stream is broken mid-way."""
    return Media("corrupt", "png", width, height, (key,), None, encoders.stored_png_length(width, height, 3))


def bomb(width: int = 30_000, height: int = 30_000) -> Media:
    """A small PNG whose header declares a huge 1-bit image (streamed zlib, so it is cheap)."""
    return Media("bomb", "png", width, height, (), None, len(encoders.bomb_bytes(width, height)))


def empty(fmt: str = "png") -> Media:
    return Media("empty", fmt, 0, 0, (), None, 0)


def html(key: str) -> Media:
    """An HTML error page (to be served as if it were an image)."""
    return Media("html", "html", 0, 0, (key,), None, len(encoders.html_bytes(key)))


def file(key: str, fmt: str) -> Media:
    """A small non-image file: pdf, txt, zip or mp4."""
    return Media("file", fmt, 0, 0, (key,), None, len(encoders.file_bytes(key, fmt)))


# -- building bytes ------------------------------------------------------------------------------


def build(media: Media) -> bytes:
    """The file's bytes; always exactly `media.size` long."""
    recipe, fmt, width, height = media.recipe, media.fmt, media.width, media.height
    paint = render_small if media.small else render
    if recipe == "image":
        src_w, src_h = media.source or (width, height)
        picture = paint(media.keys[0], src_w, src_h)
        if (src_w, src_h) != (width, height):
            picture = picture.resize((width, height), Image.Resampling.LANCZOS)
        data = encoders.encode_exact(picture, fmt, media.size)
    elif recipe == "grid":
        data = encoders.encode_exact(tiles(media.keys, width, height, paint), fmt, media.size)
    elif recipe == "preview":
        small = tiles(media.keys, width, height).filter(ImageFilter.GaussianBlur(width / 96))
        data = encoders.encode_exact(small, "webp", media.size)
    elif recipe == "animation":
        base = render(media.keys[0], width, height)
        frames = []
        for step in range(media.frames):
            inset = step * width // 80
            frames.append(base.crop((inset, inset, width - inset, height - inset)).resize((width, height)))
        data = encoders.exact_webp(frames, 70, media.size)
        if data is None:
            raise RuntimeError("animation does not fit its declared size")
    elif recipe == "truncated":
        data = encoders.stored_png(render(media.keys[0], width, height))[: media.size]
    elif recipe == "corrupt":
        blocks = -(-(width * 3 + 1) * height // encoders.STORED_BLOCK)
        data = encoders.stored_png(render(media.keys[0], width, height), break_block=blocks * 2 // 5)
    elif recipe == "bomb":
        data = encoders.bomb_bytes(width, height)
    elif recipe == "empty":
        data = b""
    elif recipe == "html":
        data = encoders.html_bytes(media.keys[0])
    else:
        data = encoders.file_bytes(media.keys[0], fmt)
    if len(data) != media.size:
        raise RuntimeError(f"{recipe} built {len(data)} bytes, declared {media.size}")
    return data


class MediaStore:
    """Bytes of generated files: a bounded in-memory LRU in front of an optional disk cache."""

    def __init__(self, max_bytes: int, cache_dir: Path | None = None) -> None:
        self.max_bytes = max_bytes
        self.cache_dir = cache_dir
        self._lru: OrderedDict[str, bytes] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()
        self.built = 0

    def get(self, media: Media) -> bytes:
        digest = media.digest
        with self._lock:
            if digest in self._lru:
                self._lru.move_to_end(digest)
                return self._lru[digest]
        data = self._from_disk(digest)
        if data is None or len(data) != media.size:
            data = build(media)
            self.built += 1
            self._to_disk(digest, data)
        self._remember(digest, data)
        return data

    def _remember(self, digest: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            if digest not in self._lru:
                self._lru[digest] = data
                self._held += len(data)
            while self._held > self.max_bytes:
                _, dropped = self._lru.popitem(last=False)
                self._held -= len(dropped)

    def _path(self, digest: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / digest[:2] / f"{digest}.bin"

    def _from_disk(self, digest: str) -> bytes | None:
        path = self._path(digest)
        try:
            return path.read_bytes() if path is not None else None
        except OSError:
            return None

    def _to_disk(self, digest: str, data: bytes) -> None:
        path = self._path(digest)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        temp.write_bytes(data)
        temp.replace(path)

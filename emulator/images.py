"""The files behind attachment URLs: generated on demand, byte-deterministic per seed, cached.

Pixels look like abstract art rather than flat colours (1/f colour noise, a random low-frequency
lighting field, geometric shapes and thin lines), so perceptual hashes behave as on real images:
unrelated images are ~32 pHash bits apart, a resized or re-encoded copy 0-2 bits.
Palettes avoid skin tones and the lines break up smooth regions, which keeps the open_nsfw score of
every generated image far below 0.5 (checked on thousands of samples; see docs/emulator.md).

A `Media` knows its exact byte length before anything is encoded: a message listing must declare
`size` without rendering the image. Real-looking sizes are declared (PNG ~1.6-1.9 bytes per pixel,
lossy WebP ~0.15) and the encoded file is padded up to that length with the format's own padding
mechanism (a private PNG chunk, XMP packet padding in WebP, JPEG comment segments). Broken files
(truncated, corrupt, decompression bomb) are written by hand with stored deflate blocks, so their
length is a formula too.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import threading
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from midshard.emulator.determinism import digest64, draw

# Colour schemes without skin tones (no oranges/peaches, no red mixed with white).
PALETTES = (
    ((18, 32, 74), (40, 110, 170), (120, 200, 220), (240, 240, 235), (10, 12, 20)),
    ((20, 60, 40), (70, 140, 80), (190, 210, 120), (30, 30, 35), (230, 235, 210)),
    ((40, 10, 70), (130, 40, 160), (90, 60, 220), (20, 220, 230), (8, 8, 16)),
    ((40, 50, 70), (90, 120, 150), (200, 210, 225), (20, 120, 200), (240, 200, 40)),
    ((10, 40, 60), (0, 130, 140), (240, 200, 60), (250, 250, 240), (30, 20, 40)),
    ((60, 8, 20), (150, 20, 40), (20, 20, 40), (40, 80, 170), (20, 160, 120)),
    ((5, 20, 30), (20, 90, 110), (250, 120, 30), (60, 200, 180), (15, 15, 20)),
    ((30, 30, 60), (70, 70, 140), (160, 200, 90), (240, 230, 100), (10, 10, 10)),
)
LOW_RES = 64  # the long side of the generated field before upscaling

IMAGE_TYPES = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}
FILE_TYPES = {
    "pdf": "application/pdf",
    "txt": "text/plain; charset=utf-8",
    "zip": "application/zip",
    "mp4": "video/mp4",
    "html": "text/html",
}


# -- pixels ------------------------------------------------------------------------------------


def _noise_field(rng: np.random.Generator, height: int, width: int, beta: float) -> np.ndarray:
    """Gaussian noise with a 1/f^beta amplitude spectrum (natural images have beta ~ 1-2), in [0, 1]."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    freq = np.sqrt(fx**2 + fy**2)
    freq[0, 0] = np.inf
    spectrum = (rng.normal(size=freq.shape) + 1j * rng.normal(size=freq.shape)) / freq**beta
    values = np.fft.irfft2(spectrum, s=(height, width))
    values -= values.min()
    return values / max(float(values.max()), 1e-9)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    return t * t * (3 - 2 * t)


def _base(rng: np.random.Generator, colours: np.ndarray, width: int, height: int) -> np.ndarray:
    """Low-resolution colour field: two noise fields mix three colours, a third modulates light."""
    beta = rng.uniform(1.6, 2.1)
    f0, f1, f2 = (_noise_field(rng, height, width, beta) for _ in range(3))
    img = colours[0] + (colours[1] - colours[0]) * _smoothstep(f0)[..., None]
    img = img + (colours[2] - img) * (0.8 * _smoothstep(f1) ** 2)[..., None]
    img *= (0.85 + 0.3 * f2)[..., None]
    # A random field over the 8x8 lowest cosine frequencies: exactly what pHash looks at, so its
    # bits are close to independent between images.
    xs = (np.arange(width) + 0.5) / width
    ys = (np.arange(height) + 0.5) / height
    cos_x = np.cos(np.pi * np.arange(8)[:, None] * xs[None, :])
    cos_y = np.cos(np.pi * np.arange(8)[:, None] * ys[None, :])
    weights = rng.normal(size=(8, 8))
    weights[0, 0] = 0.0
    light = cos_y.T @ weights @ cos_x
    img *= (1 + 0.25 * light / np.abs(light).max())[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _shapes(canvas: Image.Image, rng: np.random.Generator, colours: np.ndarray) -> Image.Image:
    """Bars, triangles, rings, a horizon band and thin lines on a transparent layer."""
    width, height = canvas.size
    layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    pen = ImageDraw.Draw(layer)

    def colour(first: int, alpha: tuple[int, int]) -> tuple[int, int, int, int]:
        rgb = colours[int(rng.integers(first, len(colours)))]
        return (int(rgb[0]), int(rgb[1]), int(rgb[2]), int(rng.integers(*alpha)))

    for _ in range(int(rng.integers(2, 6))):
        fill = colour(2, (120, 230))
        kind = int(rng.integers(4))
        cx, cy = rng.uniform(0.05, 0.95) * width, rng.uniform(0.05, 0.95) * height
        radius = rng.uniform(0.08, 0.3) * min(width, height)
        if kind == 0:
            angle = rng.uniform(0, np.pi)
            length, thick = radius * rng.uniform(1.5, 4), radius * rng.uniform(0.15, 0.6)
            dx, dy = np.cos(angle), np.sin(angle)
            corners = ((-1, -1), (1, -1), (1, 1), (-1, 1))
            pen.polygon(
                [
                    (cx + a * length * dx - b * thick * dy, cy + a * length * dy + b * thick * dx)
                    for a, b in corners
                ],
                fill=fill,
            )
        elif kind == 1:
            start = rng.uniform(0, 2 * np.pi)
            pen.polygon(
                [
                    (cx + radius * np.cos(start + k * 2.094), cy + radius * np.sin(start + k * 2.094))
                    for k in range(3)
                ],
                fill=fill,
            )
        elif kind == 2:
            ring = max(2, int(radius * rng.uniform(0.1, 0.3)))
            pen.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), outline=fill, width=ring)
        else:
            top = rng.uniform(0.3, 0.8) * height
            pen.rectangle((0, top, width, top + rng.uniform(0.03, 0.2) * height), fill=fill)
    for _ in range(int(rng.integers(10, 24))):
        x0, y0, x1, y1 = rng.uniform(-0.2, 1.2, 4) * (width, height, width, height)
        pen.line((x0, y0, x1, y1), fill=colour(0, (90, 200)), width=int(rng.integers(1, 4)))
    layer = layer.filter(ImageFilter.GaussianBlur(0.6))
    return Image.alpha_composite(canvas.convert("RGBA"), layer).convert("RGB")


def render(key: str, width: int, height: int) -> Image.Image:
    """The RGB image called `key` at this size (a pure function of its arguments)."""
    rng = np.random.default_rng(digest64("pixels", key))
    scale = LOW_RES / max(width, height)
    low_w, low_h = max(8, round(width * scale)), max(8, round(height * scale))
    palette = np.array(PALETTES[int(rng.integers(len(PALETTES)))], dtype=np.float64)
    colours = palette[rng.permutation(len(palette))]
    low = Image.fromarray(_base(rng, colours, low_w, low_h), "RGB")
    mid = low.resize((low_w * 4, low_h * 4), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(1.5))
    return _shapes(mid, rng, colours).resize((width, height), Image.Resampling.BICUBIC)


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
        "truncated", "png", width, height, (key,), None, _stored_png_length(width, height, 3) * 11 // 20
    )


def corrupt(key: str, width: int, height: int) -> Media:
    """A complete PNG with valid chunk CRCs whose deflate stream is broken mid-way."""
    return Media("corrupt", "png", width, height, (key,), None, _stored_png_length(width, height, 3))


def bomb(width: int = 30_000, height: int = 30_000) -> Media:
    """A small PNG whose header declares a huge 1-bit image (streamed zlib, so it is cheap)."""
    return Media("bomb", "png", width, height, (), None, len(_bomb_bytes(width, height)))


def empty(fmt: str = "png") -> Media:
    return Media("empty", fmt, 0, 0, (), None, 0)


def html(key: str) -> Media:
    """An HTML error page (to be served as if it were an image)."""
    return Media("html", "html", 0, 0, (key,), None, len(_html_bytes(key)))


def file(key: str, fmt: str) -> Media:
    """A small non-image file: pdf, txt, zip or mp4."""
    return Media("file", fmt, 0, 0, (key,), None, len(_file_bytes(key, fmt)))


# -- encoders that hit an exact length ----------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _pad_png(data: bytes, size: int) -> bytes | None:
    """Insert a private ancillary chunk before IEND so the file is exactly `size` bytes."""
    gap = size - len(data)
    if gap == 0:
        return data
    if gap < 12:
        return None
    return data[:-12] + _png_chunk(b"mjPd", bytes(gap - 12)) + data[-12:]


def _xmp_packet(length: int) -> bytes:
    """An empty XMP packet with whitespace padding (what XMP's padding is for)."""
    head = b"<?xpacket begin='' id='W5M0MpCehiHzreSzNTczkc9d'?><x:xmpmeta xmlns:x='adobe:ns:meta/'/>"
    tail = b"<?xpacket end='w'?>"
    return head + b" " * (length - len(head) - len(tail)) + tail


def _webp(frames: list[Image.Image], quality: int, size: int) -> bytes | None:
    def encode(xmp: bytes) -> bytes:
        out = io.BytesIO()
        if len(frames) == 1:
            frames[0].save(out, "WEBP", quality=quality, method=0, xmp=xmp)
        else:
            frames[0].save(
                out,
                "WEBP",
                save_all=True,
                append_images=frames[1:],
                duration=100,
                loop=0,
                quality=quality,
                method=0,
                xmp=xmp,
            )
        return out.getvalue()

    probe_len = 200
    probe = encode(_xmp_packet(probe_len))
    payload = probe_len + size - len(probe)
    if payload < probe_len // 2:
        return None
    data = encode(_xmp_packet(payload))
    return data if len(data) == size else None


def _pad_jpeg(data: bytes, size: int) -> bytes | None:
    """Insert comment (COM) segments after SOI so the file is exactly `size` bytes."""
    gap = size - len(data)
    if gap == 0:
        return data
    if gap < 4:
        return None
    segments = []
    while gap > 0:
        body = min(gap - 4, 65_533)
        if 0 < gap - 4 - body < 4:  # never leave a remainder too small for a segment
            body -= 4
        segments.append(b"\xff\xfe" + struct.pack(">H", body + 2) + bytes(body))
        gap -= body + 4
    return data[:2] + b"".join(segments) + data[2:]


def _png(pixels: Image.Image, level: int) -> bytes:
    """A plain RGB PNG: every row "Up"-filtered (numpy) and one zlib stream, in one IDAT chunk.
    Much faster than Pillow's adaptive filtering, and as deterministic."""
    rows = np.asarray(pixels.convert("RGB"), dtype=np.uint8).reshape(pixels.height, pixels.width * 3)
    filtered = rows.copy()
    filtered[1:] -= rows[:-1]  # uint8 arithmetic wraps modulo 256, as PNG's filter does
    raw = np.concatenate([np.full((pixels.height, 1), 2, np.uint8), filtered], axis=1).tobytes()
    header = _png_header(pixels.width, pixels.height, 8, 2)
    return header + _png_chunk(b"IDAT", zlib.compress(raw, level)) + _png_chunk(b"IEND", b"")


def _encode_exact(pixels: Image.Image, fmt: str, size: int) -> bytes:
    """Encode, padded to exactly `size` bytes; stronger compression only if the first try does not
    fit (deterministic: same inputs, same path)."""
    for effort in range(3):
        if fmt == "png":
            data = _pad_png(_png(pixels, (1, 6, 9)[effort]), size)
        elif fmt == "jpeg":
            out = io.BytesIO()
            pixels.save(out, "JPEG", quality=(88, 70, 50)[effort])
            data = _pad_jpeg(out.getvalue(), size)
        else:
            data = _webp([pixels], (80, 60, 40)[effort], size)
        if data is not None:
            return data
    raise RuntimeError(f"cannot fit a {pixels.size} {fmt} into {size} bytes")


# -- hand-written PNGs for broken files ----------------------------------------------------------

_STORED_BLOCK = 65_535


def _stored_png_length(width: int, height: int, channels: int) -> int:
    raw = (width * channels + 1) * height
    blocks = -(-raw // _STORED_BLOCK)
    zlib_len = 2 + raw + 5 * blocks + 4
    return 8 + 25 + 12 + zlib_len + 12


def _png_header(width: int, height: int, depth: int, colour: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)


def _stored_png(pixels: Image.Image, break_block: int | None = None) -> bytes:
    """An RGB PNG whose IDAT holds uncompressed deflate blocks; `break_block` gets a wrong NLEN."""
    width, height = pixels.size
    rows = np.asarray(pixels, dtype=np.uint8).reshape(height, width * 3)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()
    parts = [b"\x78\x01"]
    starts = range(0, len(raw), _STORED_BLOCK)
    for number, start in enumerate(starts):
        block = raw[start : start + _STORED_BLOCK]
        final = 1 if start + _STORED_BLOCK >= len(raw) else 0
        nlen = (~len(block)) & 0xFFFF
        if number == break_block:
            nlen ^= 0x5A5A
        parts.append(struct.pack("<BHH", final, len(block), nlen) + block)
    parts.append(struct.pack(">I", zlib.adler32(raw)))
    data = _png_header(width, height, 8, 2) + _png_chunk(b"IDAT", b"".join(parts)) + _png_chunk(b"IEND", b"")
    assert len(data) == _stored_png_length(width, height, 3)
    return data


@lru_cache(maxsize=2)
def _bomb_bytes(width: int, height: int) -> bytes:
    """All-zero 1-bit rows. A fully flushed deflate block has no back-references, so one block of
    1000 rows is compressed once and repeated: the whole file costs one 4 MB compression."""
    row = bytes(1 + -(-width // 8))  # filter byte + a row of 1-bit zeros
    block = row * 1000
    full, rest = divmod(height, 1000)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    repeated = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    tail = packer.compress(row * rest) + packer.flush()
    checksum = 1
    for _ in range(full):
        checksum = zlib.adler32(block, checksum)
    checksum = zlib.adler32(row * rest, checksum)
    stream = b"\x78\xda" + repeated * full + tail + struct.pack(">I", checksum)
    return _png_header(width, height, 1, 0) + _png_chunk(b"IDAT", stream) + _png_chunk(b"IEND", b"")


def _html_bytes(key: str) -> bytes:
    ray = hashlib.sha1(key.encode()).hexdigest()[:16]
    return (
        '<!DOCTYPE html>\n<html lang="en-US"><head><title>Just a moment...</title>'
        '<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">'
        '<meta name="robots" content="noindex,nofollow"></head><body>'
        '<div class="main-wrapper" role="main"><div class="main-content">'
        '<h1 class="zone-name-title h1">cdn.discordapp.com</h1>'
        '<h2 class="h2">Checking if the site connection is secure</h2></div></div>'
        f'<div class="footer">Ray ID: <code>{ray}</code> &bull; '
        "Performance &amp; security by Cloudflare</div>"
        "</body></html>\n"
    ).encode()


def _file_bytes(key: str, fmt: str) -> bytes:
    words = f"notes {key} prompt ideas: neon koi, brutalist library, foggy harbour at dawn\n"
    if fmt == "txt":
        return (words * 3).encode()
    if fmt == "pdf":
        body = f"BT /F1 12 Tf 72 720 Td ({key}) Tj ET".encode()
        return (
            b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
            b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
            b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Contents 4 0 R>>endobj\n"
            + f"4 0 obj<</Length {len(body)}>>stream\n".encode()
            + body
            + b"\nendstream endobj\n"
            b"trailer<</Root 1 0 R>>\n%%EOF\n"
        )
    if fmt == "zip":
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            info = zipfile.ZipInfo("prompts.txt", date_time=(2023, 5, 1, 12, 0, 0))
            archive.writestr(info, words * 5)
        return out.getvalue()
    if fmt == "mp4":
        ftyp = struct.pack(">I", 24) + b"ftypisom" + struct.pack(">I", 512) + b"isomiso2"
        mdat = hashlib.sha256(key.encode()).digest() * 64
        return ftyp + struct.pack(">I", 8 + len(mdat)) + b"mdat" + mdat
    raise ValueError(f"unknown file format {fmt!r}")


# -- building bytes ------------------------------------------------------------------------------


def _tiles(keys: tuple[str, ...], width: int, height: int) -> Image.Image:
    tile_w, tile_h = width // 2, height // 2
    canvas = Image.new("RGB", (width, height))
    for index, key in enumerate(keys):
        canvas.paste(render(key, tile_w, tile_h), ((index % 2) * tile_w, (index // 2) * tile_h))
    return canvas


def build(media: Media) -> bytes:
    """The file's bytes; always exactly `media.size` long."""
    recipe, fmt, width, height = media.recipe, media.fmt, media.width, media.height
    if recipe == "image":
        src_w, src_h = media.source or (width, height)
        picture = render(media.keys[0], src_w, src_h)
        if (src_w, src_h) != (width, height):
            picture = picture.resize((width, height), Image.Resampling.LANCZOS)
        data = _encode_exact(picture, fmt, media.size)
    elif recipe == "grid":
        data = _encode_exact(_tiles(media.keys, width, height), fmt, media.size)
    elif recipe == "preview":
        small = _tiles(media.keys, width, height).filter(ImageFilter.GaussianBlur(width / 96))
        data = _encode_exact(small, "webp", media.size)
    elif recipe == "animation":
        base = render(media.keys[0], width, height)
        frames = []
        for step in range(media.frames):
            inset = step * width // 80
            frames.append(base.crop((inset, inset, width - inset, height - inset)).resize((width, height)))
        data = _webp(frames, 70, media.size)
        if data is None:
            raise RuntimeError("animation does not fit its declared size")
    elif recipe == "truncated":
        data = _stored_png(render(media.keys[0], width, height))[: media.size]
    elif recipe == "corrupt":
        blocks = -(-(width * 3 + 1) * height // _STORED_BLOCK)
        data = _stored_png(render(media.keys[0], width, height), break_block=blocks * 2 // 5)
    elif recipe == "bomb":
        data = _bomb_bytes(width, height)
    elif recipe == "empty":
        data = b""
    elif recipe == "html":
        data = _html_bytes(media.keys[0])
    else:
        data = _file_bytes(media.keys[0], fmt)
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

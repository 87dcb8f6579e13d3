"""Encoders that hit an exact byte length, and hand-written bytes for broken and non-image files.

A message listing declares each file's `size` before anything is encoded, so every file here comes out
exactly that long: a PNG, JPEG or WebP is padded with the format's own padding mechanism (a private PNG
chunk, JPEG comment segments, XMP packet padding in WebP); broken PNGs (truncated, corrupt,
decompression bomb) are written by hand with stored deflate blocks, so their length is a formula too.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
import zlib
from functools import lru_cache

import numpy as np
from PIL import Image


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


def exact_webp(frames: list[Image.Image], quality: int, size: int) -> bytes | None:
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


def encode_exact(pixels: Image.Image, fmt: str, size: int) -> bytes:
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
            data = exact_webp([pixels], (80, 60, 40)[effort], size)
        if data is not None:
            return data
    raise RuntimeError(f"cannot fit a {pixels.size} {fmt} into {size} bytes")


# -- hand-written PNGs for broken files ----------------------------------------------------------

STORED_BLOCK = 65_535


def stored_png_length(width: int, height: int, channels: int) -> int:
    raw = (width * channels + 1) * height
    blocks = -(-raw // STORED_BLOCK)
    zlib_len = 2 + raw + 5 * blocks + 4
    return 8 + 25 + 12 + zlib_len + 12


def _png_header(width: int, height: int, depth: int, colour: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)


def stored_png(pixels: Image.Image, break_block: int | None = None) -> bytes:
    """An RGB PNG whose IDAT holds uncompressed deflate blocks; `break_block` gets a wrong NLEN."""
    width, height = pixels.size
    rows = np.asarray(pixels, dtype=np.uint8).reshape(height, width * 3)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()
    parts = [b"\x78\x01"]
    starts = range(0, len(raw), STORED_BLOCK)
    for number, start in enumerate(starts):
        block = raw[start : start + STORED_BLOCK]
        final = 1 if start + STORED_BLOCK >= len(raw) else 0
        nlen = (~len(block)) & 0xFFFF
        if number == break_block:
            nlen ^= 0x5A5A
        parts.append(struct.pack("<BHH", final, len(block), nlen) + block)
    parts.append(struct.pack(">I", zlib.adler32(raw)))
    data = _png_header(width, height, 8, 2) + _png_chunk(b"IDAT", b"".join(parts)) + _png_chunk(b"IEND", b"")
    assert len(data) == stored_png_length(width, height, 3)
    return data


@lru_cache(maxsize=2)
def bomb_bytes(width: int, height: int) -> bytes:
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


def html_bytes(key: str) -> bytes:
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


def file_bytes(key: str, fmt: str) -> bytes:
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

"""Shared fixtures: a data root with a raw store, settings sized for small generated images."""

from __future__ import annotations

import struct
import zlib

import pytest

from midshard.raw_store import RawStore
from midshard.settings import Settings
from midshard.store import Store

MAX_PIXELS = Settings.model_fields["max_image_pixels"].default  # the default pixel limit


@pytest.fixture
def root(tmp_path) -> str:
    return str(tmp_path / "data")


@pytest.fixture
def raw(root) -> RawStore:
    return RawStore(Store(root))


@pytest.fixture
def small_settings(root) -> Settings:
    """Test images are 96–160 px: the area rule scaled down accordingly."""
    return Settings(root=root, min_pixels=96 * 96, clean_workers=2, nsfw_batch=4)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of all-zero rows, compressed while streaming (no big buffer)."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row * 500) for _ in range(height // 500))
    idat += compressor.compress(row * (height % 500)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )

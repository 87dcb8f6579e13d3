"""Natural-looking generated images (1/f colour noise + a gradient + soft blobs), deterministic by seed.

Flat colours and pure noise make misleading hashes (pHash of a flat image is degenerate; white
noise has no low frequencies); 1/f noise has a natural image's spectrum (Field 1987, "Relations
between the statistics of natural images and the response properties of cortical cells").
The benchmarks reuse this module.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def natural_pixels(seed: int, width: int = 1024, height: int = 1024) -> np.ndarray:
    """An RGB uint8 array of shape (height, width, 3)."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    falloff = 1.0 / np.maximum(np.hypot(fx, fy), 1.0 / max(width, height))
    channels = []
    for _ in range(3):
        spectrum = (rng.normal(size=falloff.shape) + 1j * rng.normal(size=falloff.shape)) * falloff
        field = np.fft.irfft2(spectrum, s=(height, width))
        channels.append((field - field.mean()) / (field.std() + 1e-9))
    noise = np.stack(channels, axis=-1)
    y, x = np.mgrid[0:height, 0:width]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * x / width + np.sin(angle) * y / height)[..., None]
    colours = rng.uniform(0, 255, size=(2, 3))
    image = colours[0] + ramp * (colours[1] - colours[0]) + 28 * noise
    for _ in range(3):  # soft blobs
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.05, 0.25) * width
        weight = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))[..., None]
        image = image * (1 - 0.6 * weight) + 0.6 * weight * rng.uniform(0, 255, size=3)
    return np.clip(image, 0, 255).astype(np.uint8)


def encode(pixels: np.ndarray, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def natural_png(seed: int, width: int = 1024, height: int = 1024, compress_level: int = 1) -> bytes:
    return encode(natural_pixels(seed, width, height), "PNG", compress_level=compress_level)

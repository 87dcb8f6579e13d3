"""The pixels of generated pictures: a pure function of a key and a size.

They look like abstract art rather than flat colours (1/f colour noise, a random low-frequency
lighting field, geometric shapes and thin lines), so perceptual hashes behave as on real images:
unrelated images are ~32 pHash bits apart, a resized or re-encoded copy 0-2 bits.
Palettes avoid skin tones and the lines break up smooth regions, which keeps the open_nsfw score of
every generated image far below 0.5 (checked on thousands of samples; see docs/emulator.md).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from midshard.emulator.determinism import digest64

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
    rng, colours, low = _field(key, width, height)
    mid = low.resize((low.width * 4, low.height * 4), Image.Resampling.BICUBIC).filter(
        ImageFilter.GaussianBlur(1.5)
    )
    return _shapes(mid, rng, colours).resize((width, height), Image.Resampling.BICUBIC)


def render_small(key: str, width: int, height: int) -> Image.Image:
    """The `small_files` picture called `key`: its lighting field alone, scaled up."""
    return _field(key, width, height)[2].resize((width, height), Image.Resampling.BILINEAR)


def _field(key: str, width: int, height: int) -> tuple[np.random.Generator, np.ndarray, Image.Image]:
    """The random stream, colours and low-resolution base picture of the image called `key`."""
    rng = np.random.default_rng(digest64("pixels", key))
    scale = LOW_RES / max(width, height)
    low_w, low_h = max(8, round(width * scale)), max(8, round(height * scale))
    palette = np.array(PALETTES[int(rng.integers(len(PALETTES)))], dtype=np.float64)
    colours = palette[rng.permutation(len(palette))]
    return rng, colours, Image.fromarray(_base(rng, colours, low_w, low_h), "RGB")


def tiles(
    keys: tuple[str, ...], width: int, height: int, paint: Callable[[str, int, int], Image.Image] = render
) -> Image.Image:
    """A 2x2 composite: tile i is `paint(keys[i], width // 2, height // 2)`."""
    tile_w, tile_h = width // 2, height // 2
    canvas = Image.new("RGB", (width, height))
    for index, key in enumerate(keys):
        canvas.paste(paint(key, tile_w, tile_h), ((index % 2) * tile_w, (index // 2) * tile_h))
    return canvas

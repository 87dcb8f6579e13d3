"""Midjourney across time (version and parameter pages of docs.midjourney.com): which model versions,
features, mode tags and image sizes exist at a given date. The traffic generator asks this module instead of
hard-coding dates, so every message is consistent with its snowflake timestamp."""

from __future__ import annotations

import math

from midshard.emulator.snowflakes import date_ms

# The first day each feature can appear in a channel.
FEATURES: dict[str, int] = {
    "metered": date_ms(2022, 11, 1),  # "(metered, fast)" tags: late 2022 only (until "metered_end")
    "metered_end": date_ms(2023, 1, 1),
    "testp": date_ms(2022, 8, 1),
    "testp_end": date_ms(2022, 12, 15),
    "blend": date_ms(2022, 12, 1),
    "niji": date_ms(2022, 12, 20),
    "v5": date_ms(2023, 3, 15),
    "turbo": date_ms(2023, 4, 5),
    "describe": date_ms(2023, 4, 4),
    "style_raw": date_ms(2023, 5, 4),
    "vary_strong": date_ms(2023, 6, 22),  # 5.2: Vary (Strong/Subtle), "Variations (Strong) by"
    "shorten": date_ms(2023, 6, 22),
    "zoom": date_ms(2023, 6, 22),
    "pan": date_ms(2023, 7, 5),
    "weird": date_ms(2023, 7, 3),
    "open_on_website": date_ms(2023, 8, 1),  # "(Open on website for full quality)"
    "open_on_website_link": date_ms(
        2024, 3, 1
    ),  # "[(Open on website ...)](<https://midjourney.com/jobs/...>)"
    "upscale_2x": date_ms(2023, 10, 26),
    "v6": date_ms(2023, 12, 21),
    "upscale_subtle": date_ms(2023, 12, 21),  # "Upscaled (Subtle|Creative) by"
    "sref_url": date_ms(2024, 1, 31),
    "cref": date_ms(2024, 3, 12),
    "sref_code": date_ms(2024, 6, 10),
    "personalize": date_ms(2024, 6, 10),
    "v7": date_ms(2025, 4, 3),
    "draft": date_ms(2025, 4, 3),
    "oref": date_ms(2025, 5, 2),
    "footer": date_ms(2025, 6, 1),  # "-# Create, explore, and organize on midjourney.com"
    "exp": date_ms(2025, 6, 16),
    "video": date_ms(2025, 6, 19),  # Animate buttons, "--motion high --video 1"
}

# (first day, version as users type it); the last one before a date is the default model.
VERSIONS: tuple[tuple[int, str], ...] = (
    (date_ms(2022, 11, 5), "4"),
    (date_ms(2023, 3, 15), "5"),
    (date_ms(2023, 5, 4), "5.1"),
    (date_ms(2023, 6, 22), "5.2"),
    (date_ms(2023, 12, 21), "6"),
    (date_ms(2024, 7, 30), "6.1"),
    (date_ms(2025, 4, 3), "7"),
)

# Tile (= U-crop) sizes of v5+ grids, measured on real Midjourney attachments.
V5_TILES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "16:9": (1456, 816),
    "9:16": (816, 1456),
    "2:3": (896, 1344),
    "3:2": (1344, 896),
    "4:3": (1232, 928),
    "3:4": (928, 1232),
}
V4_TILES: dict[str, tuple[int, int]] = {
    "1:1": (512, 512),
    "2:3": (512, 768),
    "3:2": (768, 512),
    "16:9": (896, 512),
    "9:16": (512, 896),
    "4:5": (512, 640),
    "5:4": (640, 512),
    "1:2": (512, 1024),
    "2:1": (1024, 512),
}
TILE_AREA = 1_180_000  # about what Midjourney's v5+ tiles hold
TILE_LONG_SIDE = 1680  # extreme ratios hit this cap, so e.g. --ar 3:1 tiles fail a 1024x1024 area rule


def has(feature: str, ms: int) -> bool:
    if feature == "metered":
        return FEATURES["metered"] <= ms < FEATURES["metered_end"]
    if feature == "testp":
        return FEATURES["testp"] <= ms < FEATURES["testp_end"]
    return ms >= FEATURES[feature]


def versions_at(ms: int) -> list[str]:
    """Model versions users can pick at this date, newest last."""
    return [version for start, version in VERSIONS if start <= ms]


def default_version(ms: int) -> str:
    return versions_at(ms)[-1]


def major(version: str) -> int:
    return int(version.split(".")[0])


def parse_aspect(aspect: str) -> tuple[int, int]:
    width, _, height = aspect.partition(":")
    return int(width), int(height)


def tile_size(aspect: str, version: str) -> tuple[int, int]:
    """Size of one grid tile (= the U-crop) for this aspect ratio and model version."""
    if major(version) <= 4:
        return V4_TILES.get(aspect, (512, 512))
    if aspect in V5_TILES:
        return V5_TILES[aspect]
    width, height = parse_aspect(aspect)
    ratio = width / height
    tile_w, tile_h = math.sqrt(TILE_AREA * ratio), math.sqrt(TILE_AREA / ratio)
    shrink = min(1.0, TILE_LONG_SIDE / max(tile_w, tile_h))
    return 16 * round(tile_w * shrink / 16), 16 * round(tile_h * shrink / 16)


def grid_size(aspect: str, version: str) -> tuple[int, int]:
    tile_w, tile_h = tile_size(aspect, version)
    return 2 * tile_w, 2 * tile_h


def preview_size(aspect: str, version: str) -> tuple[int, int]:
    """The in-progress `_grid_0.webp` preview: a quarter of the grid's side."""
    grid_w, grid_h = grid_size(aspect, version)
    return max(64, grid_w // 4), max(64, grid_h // 4)


def video_size(aspect: str) -> tuple[int, int]:
    """Animated results are about 624x624 pixels of area, at the image's aspect ratio."""
    width, height = parse_aspect(aspect)
    scale = math.sqrt(624 * 624 / (width * height))
    return 16 * round(width * scale / 16), 16 * round(height * scale / 16)


def mode_tag(rng_value: float, ms: int) -> str:
    """The speed/visibility tag a finished job ends with: fast, relaxed, turbo, stealth, metered."""
    options = [("fast", 0.45), ("relaxed", 0.3), ("fast, stealth", 0.08), ("relaxed, stealth", 0.05)]
    if has("turbo", ms):
        options += [("turbo", 0.08), ("turbo, stealth", 0.02)]
    if has("metered", ms):
        options += [("metered, fast", 0.15)]
    total = sum(weight for _, weight in options)
    point = rng_value * total
    for tag, weight in options:
        point -= weight
        if point < 0:
            return tag
    return options[-1][0]

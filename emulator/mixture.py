"""Which kind message `i` of a stream is, and which earlier message it acts on.

Each index draws a kind from `MIXTURE` (weights, the date a feature appeared, what it needs
nearby). Kinds that act on an earlier result — a U-crop needs a grid, an upscale or a zoom needs a
crop — look back a few messages for one; if there is none they fall back to another kind. Whether
an earlier message is a grid or a crop is decided from its drawn kind alone, so looking back never
recurses far, and any message's kind is known without building the channel before it. Only
indices are handled here; the builders turn them into messages.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass
from functools import lru_cache

from midshard.emulator import eras
from midshard.emulator.determinism import draw, rng
from midshard.emulator.world import Stream, World


@dataclass(frozen=True, slots=True)
class KindSpec:
    name: str
    weight: float
    needs: str | None = None  # "grid" or "crop" within the look-back window
    fallback: str | None = None  # when the need is not met, or the feature does not exist yet
    feature: str | None = None  # eras.FEATURES key: the first date this kind can appear
    makes_grid: bool = False


MIXTURE: tuple[KindSpec, ...] = (
    # /imagine and other jobs that start from words
    KindSpec("imagine", 21, makes_grid=True),
    KindSpec("image_prompt", 2.5, makes_grid=True),
    KindSpec("reference", 1.5, fallback="image_prompt", feature="sref_url", makes_grid=True),
    KindSpec("blend", 1.0, fallback="image_prompt", feature="blend", makes_grid=True),
    # the same prompt again (new pixels): the reroll button, or the prompt pasted into /imagine
    KindSpec("rerun", 3, needs="grid", fallback="imagine", makes_grid=True),
    # jobs on an earlier result (all image-conditioned)
    KindSpec("variation", 4.5, needs="grid", fallback="imagine", makes_grid=True),
    KindSpec("remix", 1.2, needs="grid", fallback="imagine", makes_grid=True),
    KindSpec("zoom", 1.8, needs="crop", fallback="variation", feature="zoom", makes_grid=True),
    KindSpec("pan", 1.3, needs="crop", fallback="variation", feature="pan", makes_grid=True),
    KindSpec("video", 2.0, needs="crop", fallback="crop", feature="video"),
    # single images
    KindSpec("crop", 33, needs="grid", fallback="chatter"),
    KindSpec("upscale", 3.5, needs="crop", fallback="crop"),  # Subtle / 2x / Beta: a resized copy
    KindSpec("creative", 2, needs="crop", fallback="crop", feature="upscale_subtle"),
    KindSpec("recrop", 1.0, needs="crop", fallback="crop"),  # the same tile again, re-encoded
    # jobs still running
    KindSpec("progress", 4),
    # the bot, not generating
    KindSpec("describe", 0.9, fallback="notice", feature="describe"),
    KindSpec("shorten", 0.3, fallback="notice", feature="shorten"),
    KindSpec("rating", 0.5),
    KindSpec("notice", 0.8),
    KindSpec("animating", 1.0, fallback="notice", feature="video"),  # one per Animate job caught
    # people
    KindSpec("chatter", 4),
    KindSpec("chatter_image", 1.4),
    KindSpec("chatter_file", 0.4),
    # hostile input on otherwise normal U-crops
    KindSpec("hostile_name", 0.6, needs="grid", fallback="chatter"),
    KindSpec("broken", 1.8, needs="grid", fallback="chatter"),
)
KINDS = {spec.name: spec for spec in MIXTURE}
_CUMULATIVE = tuple(itertools.accumulate(spec.weight for spec in MIXTURE))
CROP_PREFERENCE = {"crop": 0.75, "hostile_name": 0.9, "broken": 0.9}  # chance to pick a text-only grid
GRID_LOOKBACK = 16
CROP_LOOKBACK = 24


class Mixture:
    """Kinds and parents of a seed's messages, by (stream, index); memoised."""

    def __init__(self, seed: int, world: World) -> None:
        self.seed = seed
        self.world = world
        self.drawn_kind = lru_cache(maxsize=131_072)(self._drawn_kind)
        self.kind = lru_cache(maxsize=65_536)(self._effective_kind)
        self.window = lru_cache(maxsize=65_536)(self._nearby)
        self.parent = lru_cache(maxsize=65_536)(self._choose_parent)

    def _drawn_kind(self, stream: Stream, index: int) -> str:
        """The kind message `index` drew from the mixture, after date gating."""
        ms = self.world.message_ms(stream, index)
        point = draw(self.seed, "kind", stream.index, index) * _CUMULATIVE[-1]
        name = MIXTURE[min(bisect.bisect_right(_CUMULATIVE, point), len(MIXTURE) - 1)].name
        while (feature := KINDS[name].feature) is not None and not eras.has(feature, ms):
            name = KINDS[name].fallback or "imagine"
        return name

    def _effective_kind(self, stream: Stream, index: int) -> str:
        """The kind message `index` really is, once its need for a nearby grid or crop is checked."""
        name = self.drawn_kind(stream, index)
        while (need := KINDS[name].needs) is not None and not self.window(stream, index, need):
            name = KINDS[name].fallback or "imagine"
        return name

    def _is(self, stream: Stream, index: int, need: str) -> bool:
        if need == "grid":  # grid makers never fall back to a non-grid kind
            return KINDS[self.drawn_kind(stream, index)].makes_grid
        return self.kind(stream, index) == "crop"

    def _nearby(self, stream: Stream, index: int, need: str) -> tuple[int, ...]:
        """Earlier messages (nearest first) that satisfy `need`."""
        lookback = GRID_LOOKBACK if need == "grid" else CROP_LOOKBACK
        return tuple(
            j for j in range(index - 1, max(-1, index - 1 - lookback), -1) if self._is(stream, j, need)
        )

    def _choose_parent(self, stream: Stream, index: int, need: str, prefer_imagine: float = 0.0) -> int:
        """Which earlier message (one of the nearest four that fit) a message acts on. It has its own
        random stream, so other messages can tell which grid a U-crop came from without building it."""
        found = self.window(stream, index, need)
        choose = rng(self.seed, "parent", stream.index, index, need)
        if prefer_imagine and choose.random() < prefer_imagine:
            found = tuple(j for j in found if self.drawn_kind(stream, j) == "imagine") or found
        return choose.choice(found[:4])

    def crop_grid(self, stream: Stream, index: int) -> int | None:
        """The grid a U-crop-like message (crop, hostile name, broken file) is cut from."""
        kind = self.kind(stream, index)
        if kind not in CROP_PREFERENCE:
            return None
        return self.parent(stream, index, "grid", CROP_PREFERENCE[kind])

    def tile_for(self, stream: Stream, index: int, grid: int) -> int:
        """People upscale different tiles of a grid: the k-th crop of a grid takes the next tile."""
        earlier = sum(1 for j in range(grid + 1, index) if self.crop_grid(stream, j) == grid)
        return 1 + (earlier + int(4 * draw(self.seed, "tile", self.world.message_id(stream, grid)))) % 4

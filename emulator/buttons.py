"""The buttons under Midjourney results, as they changed with every model generation (Midjourney docs,
docs.midjourney.com: upscalers, variations, zoom, pan, video): U1-U4, reroll and V1-V4 under grids;
Vary / Upscale / Zoom / Pan / Animate under single images, per era."""

from __future__ import annotations

from midshard.emulator import eras
from midshard.emulator.model import Button

Rows = tuple[tuple[Button, ...], ...]


def button_rows(*rows: tuple[Button, ...]) -> Rows:
    """Action rows, empty ones left out."""
    return tuple(row for row in rows if row)


def grid_buttons(job: str) -> Rows:
    """U1-U4 + reroll, V1-V4."""
    upscale = tuple(Button(f"U{n}", f"MJ::JOB::upsample::{n}::{job}") for n in range(1, 5))
    reroll = Button(None, f"MJ::JOB::reroll::0::{job}::SOLO", "🔄")
    vary = tuple(Button(f"V{n}", f"MJ::JOB::variation::{n}::{job}") for n in range(1, 5))
    return button_rows((*upscale, reroll), vary)


def single_buttons(job: str, version: str, ms: int, upscaled: bool = False) -> Rows:
    """The buttons under one image: they changed with every model generation."""
    v = eras.major(version)
    web = Button("Web", url=f"https://www.midjourney.com/jobs/{job}?index=0")
    favourite = Button(None, f"MJ::BOOKMARK::{job}", "❤️")
    if v <= 4:
        return button_rows(
            (
                Button("Make Variations", f"MJ::JOB::variation::1::{job}::SOLO", "🪄"),
                Button("Light Upscale Redo", f"MJ::JOB::upsample_light::1::{job}::SOLO"),
                Button("Beta Upscale Redo", f"MJ::JOB::upsample_beta::1::{job}::SOLO"),
            ),
            (favourite, web),
        )
    if not eras.has("vary_strong", ms) or version in ("5", "5.1"):
        return button_rows(
            (Button("Make Variations", f"MJ::JOB::variation::1::{job}::SOLO", "🪄"), favourite, web)
        )
    vary = (
        Button("Vary (Strong)", f"MJ::JOB::high_variation::1::{job}::SOLO", "🪄"),
        Button("Vary (Subtle)", f"MJ::JOB::low_variation::1::{job}::SOLO", "🪄"),
    )
    if upscaled:
        return button_rows(vary, (favourite, web))
    region = Button("Vary (Region)", f"MJ::Inpaint::1::{job}::SOLO", "🖌️")
    zooms = (
        Button("Zoom Out 2x", f"MJ::Outpaint::50::1::{job}::SOLO", "🔍"),
        Button("Zoom Out 1.5x", f"MJ::Outpaint::75::1::{job}::SOLO", "🔍"),
        Button("Custom Zoom", f"MJ::CustomZoom::{job}", "🔍"),
    )
    pans = tuple(
        Button(None, f"MJ::JOB::pan_{side}::1::{job}::SOLO", arrow)
        for side, arrow in (("left", "⬅️"), ("right", "➡️"), ("up", "⬆️"), ("down", "⬇️"))
    )
    animate = ()
    if eras.has("video", ms) and v >= 7:
        animate = (
            Button("Animate (High motion)", f"MJ::JOB::animate_high::1::{job}::SOLO", "🎞️"),
            Button("Animate (Low motion)", f"MJ::JOB::animate_low::1::{job}::SOLO", "🎞️"),
        )
    return button_rows(_upscales(job, version, ms), (*vary, region), zooms, pans, animate, (favourite, web))


def _upscales(job: str, version: str, ms: int) -> tuple[Button, ...]:
    v = eras.major(version)
    if v >= 6:
        tag = {"6.1": "v6r1", "7": "v7"}.get(version, "v6") if v < 7 else "v7"
        return (
            Button("Upscale (Subtle)", f"MJ::JOB::upsample_{tag}_2x_subtle::1::{job}::SOLO"),
            Button("Upscale (Creative)", f"MJ::JOB::upsample_{tag}_2x_creative::1::{job}::SOLO"),
        )
    if eras.has("upscale_2x", ms):
        return (
            Button("Upscale (2x)", f"MJ::JOB::upsample_v5_2x::1::{job}::SOLO"),
            Button("Upscale (4x)", f"MJ::JOB::upsample_v5_4x::1::{job}::SOLO"),
        )
    return ()

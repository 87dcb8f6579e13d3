"""The message generator: what message `i` of a stream is, as a pure function of (seed, stream, i).

Each index draws a kind from `MIXTURE` (weights, the date a feature appeared, what it needs nearby).
Kinds that act on an earlier result — a U-crop needs a grid, an upscale or a zoom needs a crop — look
back a few messages for one; if there is none they fall back to another kind. Whether an earlier
message is a grid or a crop is decided from its drawn kind alone, so looking back never recurses
far, and any message can be produced without producing the channel before it.

A `Message` holds content, not JSON (`messages.py` renders it), plus the `Truth` the emulator knows
because it wrote the message: the kind, whether the pixels depend on an image, the clean prompt,
the parameters and image URLs (docs/parsing-rules.md).
"""

from __future__ import annotations

import bisect
import itertools
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from random import Random

from midshard.emulator import eras, images, prompts
from midshard.emulator.config import EmulatorConfig
from midshard.emulator.determinism import draw, rng
from midshard.emulator.images import Media
from midshard.emulator.prompts import Param, Prompt
from midshard.emulator.snowflakes import make
from midshard.emulator.world import MIDJOURNEY, Stream, User, World

# -- what a message is -----------------------------------------------------------------------------

ATTACHMENT_ANIMATED = 1 << 5
TYPE_DEFAULT, TYPE_REPLY, TYPE_COMMAND = 0, 19, 20
FOOTER = (
    "\n-# Create, explore, and organize on [midjourney.com](<https://midjourney.com/imagine?from_discord=1>)"
)


@dataclass(frozen=True, slots=True)
class Attachment:
    id: int
    filename: str
    media: Media
    content_type: str  # as declared in the JSON (a mislabelled file lies here)
    declared: tuple[int, int] | None  # width/height in the JSON; None for non-images
    flags: int = 0


@dataclass(frozen=True, slots=True)
class Button:
    label: str | None = None
    custom_id: str | None = None
    emoji: str | None = None
    url: str | None = None  # link buttons (style 5) have a url instead of a custom_id


@dataclass(frozen=True, slots=True)
class Embed:
    title: str | None = None
    description: str | None = None
    image_url: str | None = None
    footer: str | None = None
    color: int = 0


@dataclass(frozen=True, slots=True)
class Interaction:
    id: int
    type: int  # 2 slash command, 3 button
    name: str
    user: User
    target_id: int | None = None  # the message whose button was pressed


@dataclass(frozen=True, slots=True)
class Truth:
    """What midshard must read from the message (kind, conditioning, clean prompt, params, URLs)."""

    kind: str
    image_conditioned: bool = False
    prompt: str = ""
    params: tuple[tuple[str, str], ...] = ()
    image_urls: tuple[str, ...] = ()

    @classmethod
    def of(cls, kind: str, conditioned: bool, prompt: Prompt) -> Truth:
        params = tuple(prompt.canonical_params.items())
        return cls(kind, conditioned, prompt.clean, params, prompt.image_urls)


@dataclass(frozen=True, slots=True)
class Job:
    """A Midjourney job, for the messages that act on its result later."""

    uuid: str
    user: User
    prompt: Prompt
    version: str
    conditioned: bool  # the pixels depend on an image (here or in an ancestor)
    tiles: tuple[str, str, str, str] | None = None  # grid jobs: the four tile contents
    tile_size: tuple[int, int] = (0, 0)
    image: str | None = None  # single-image jobs: the content key ...
    image_size: tuple[int, int] = (0, 0)  # ... and the size of its file
    grid: Message | None = None  # U-crops: the grid and tile they come from
    tile_number: int = 0


@dataclass(frozen=True, slots=True)
class Message:
    stream: Stream
    index: int
    id: int
    ms: int
    author: User
    type: int
    content: str
    truth: Truth
    attachments: tuple[Attachment, ...] = ()
    embeds: tuple[Embed, ...] = ()
    components: tuple[tuple[Button, ...], ...] = ()
    parent: Message | None = None
    interaction: Interaction | None = None
    edited_ms: int | None = None
    mentions: tuple[User, ...] = ()
    job: Job | None = field(default=None, repr=False)


# -- the mixture ------------------------------------------------------------------------------------


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
    # jobs on an earlier result (all image-conditioned)
    KindSpec("variation", 4.5, needs="grid", fallback="imagine", makes_grid=True),
    KindSpec("remix", 1.2, needs="grid", fallback="imagine", makes_grid=True),
    KindSpec("zoom", 1.8, needs="crop", fallback="variation", feature="zoom", makes_grid=True),
    KindSpec("pan", 1.3, needs="crop", fallback="variation", feature="pan", makes_grid=True),
    KindSpec("video", 2.0, needs="crop", fallback="upscale", feature="video"),
    # single images
    KindSpec("crop", 33, needs="grid", fallback="chatter"),
    KindSpec("upscale", 5, needs="crop", fallback="crop"),  # Subtle / 2x / Beta: a resized copy
    KindSpec("creative", 2, needs="crop", fallback="upscale", feature="upscale_subtle"),
    KindSpec("recrop", 1.5, needs="crop", fallback="crop"),  # the same tile again, re-encoded
    # jobs still running
    KindSpec("progress", 4),
    # the bot, not generating
    KindSpec("describe", 0.9, fallback="notice", feature="describe"),
    KindSpec("shorten", 0.3, fallback="notice", feature="shorten"),
    KindSpec("rating", 0.5),
    KindSpec("notice", 0.8),
    KindSpec("animating", 0.3, fallback="notice", feature="video"),
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
BROKEN_VARIANTS = ("corrupt", "truncated", "empty", "bomb", "not_image", "mislabelled", "no_attachment")
HOSTILE_NAMES = (
    "../../../etc/passwd.png",
    "..\\..\\windows\\system32\\evil.png",
    "unicode 猫 ✨ émoji 🐉 file.png",
    "name with  spaces & symbols #1 (final) [v2].png",
    ".hidden.png",
    "CON.png",
    "file%2F..%2Fescape.png",
    "tab\there.png",
    "very_long_" + "abcdefghij" * 22 + ".png",
)
CHATTER = (
    "anyone know why my --ar gets ignored?",
    "wow",
    "U3 please 🙏",
    "this is insane 🔥",
    "lol",
    "how do you get such clean text in v6?",
    "can someone explain --sref?",
    "情绪很到位",
    "すごい！",
    "relax mode is so slow today",
    "try --style raw, it helps a lot",
    "gm",
    "that lighting though",
    "is there a way to get the full res png?",
    "my jobs keep failing with invalid parameter",
    "same",
    "what's the difference between subtle and creative upscale",
    "used --chaos 80 for this one",
    "the hands are still cursed 😂",
    "posting my favourite from today",
    "this channel moves so fast",
    "prompt pls?",
    "does --tile work with v6?",
    "beautiful",
    "nice one!",
    "ok this is my new wallpaper",
    "Can you share the seed?",
    "나도 해봐야겠다",
    "check the pinned messages for the faq",
)
PHOTO_NAMES = (
    "IMG_2041.jpg",
    "image.png",
    "unknown.png",
    "photo_2023-07-03_18.22.41.jpeg",
    "Screenshot_1.png",
)
FILE_NAMES = (("prompts.txt", "txt"), ("moodboard.pdf", "pdf"), ("refs.zip", "zip"), ("timelapse.mp4", "mp4"))
NOTICES = (
    Embed("Job queued", "Your job will start shortly. You have 3 jobs running.", color=16_776_960),
    Embed("Queue full", "You have reached the maximum allowed number of concurrent jobs.", color=16_711_680),
    Embed("Slow Down!", "You are sending jobs too quickly, please wait a moment.", color=16_711_680),
    Embed("Invalid parameter", "Unrecognized parameter(s): `--fastt`", color=16_711_680),
    Embed("Sorry! Something went wrong", "This job failed, no fast hours were used.", color=16_711_680),
    Embed(
        "Banned prompt detected",
        "Our AI moderator thinks this prompt is probably against our community standards.",
    ),
    Embed(None, "No match found. Progress images have been disabled for this job.", color=5_793_266),
)


def _button_rows(*rows: tuple[Button, ...]) -> tuple[tuple[Button, ...], ...]:
    return tuple(row for row in rows if row)


def grid_buttons(job: str) -> tuple[tuple[Button, ...], ...]:
    """U1-U4 + reroll, V1-V4 (reference §7)."""
    upscale = tuple(Button(f"U{n}", f"MJ::JOB::upsample::{n}::{job}") for n in range(1, 5))
    reroll = Button(None, f"MJ::JOB::reroll::0::{job}::SOLO", "🔄")
    vary = tuple(Button(f"V{n}", f"MJ::JOB::variation::{n}::{job}") for n in range(1, 5))
    return _button_rows((*upscale, reroll), vary)


def single_buttons(job: str, version: str, ms: int, upscaled: bool = False) -> tuple[tuple[Button, ...], ...]:
    """The buttons under one image: they changed with every model generation."""
    v = eras.major(version)
    web = Button("Web", url=f"https://www.midjourney.com/jobs/{job}?index=0")
    favourite = Button(None, f"MJ::BOOKMARK::{job}", "❤️")
    if v <= 4:
        return _button_rows(
            (
                Button("Make Variations", f"MJ::JOB::variation::1::{job}::SOLO", "🪄"),
                Button("Light Upscale Redo", f"MJ::JOB::upsample_light::1::{job}::SOLO"),
                Button("Beta Upscale Redo", f"MJ::JOB::upsample_beta::1::{job}::SOLO"),
            ),
            (favourite, web),
        )
    if not eras.has("vary_strong", ms) or version in ("5", "5.1"):
        return _button_rows(
            (Button("Make Variations", f"MJ::JOB::variation::1::{job}::SOLO", "🪄"), favourite, web)
        )
    vary = (
        Button("Vary (Strong)", f"MJ::JOB::high_variation::1::{job}::SOLO", "🪄"),
        Button("Vary (Subtle)", f"MJ::JOB::low_variation::1::{job}::SOLO", "🪄"),
    )
    if upscaled:
        return _button_rows(vary, (favourite, web))
    if v >= 6:
        tag = {"6.1": "v6r1", "7": "v7"}.get(version, "v6") if v < 7 else "v7"
        upscales: tuple[Button, ...] = (
            Button("Upscale (Subtle)", f"MJ::JOB::upsample_{tag}_2x_subtle::1::{job}::SOLO"),
            Button("Upscale (Creative)", f"MJ::JOB::upsample_{tag}_2x_creative::1::{job}::SOLO"),
        )
    elif eras.has("upscale_2x", ms):
        upscales = (
            Button("Upscale (2x)", f"MJ::JOB::upsample_v5_2x::1::{job}::SOLO"),
            Button("Upscale (4x)", f"MJ::JOB::upsample_v5_4x::1::{job}::SOLO"),
        )
    else:
        upscales = ()
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
    return _button_rows(upscales, (*vary, region), zooms, pans, animate, (favourite, web))


# -- the generator ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Slot:
    """Where a message goes: the facts every builder starts from."""

    stream: Stream
    index: int
    id: int
    ms: int
    r: Random


class Traffic:
    """Messages of the emulated guild, built on demand and memoised."""

    def __init__(self, cfg: EmulatorConfig, world: World | None = None) -> None:
        self.cfg = cfg
        self.world = world or World(cfg)
        self.seed = cfg.seed
        self.message = lru_cache(maxsize=32_768)(self._build)
        self.drawn_kind = lru_cache(maxsize=131_072)(self._drawn_kind)
        self._effective = lru_cache(maxsize=65_536)(self._effective_kind)
        self._window = lru_cache(maxsize=65_536)(self._nearby)
        self._parent_index = lru_cache(maxsize=65_536)(self._choose_parent)

    # -- kinds --------------------------------------------------------------------------------

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
        while (need := KINDS[name].needs) is not None and not self._window(stream, index, need):
            name = KINDS[name].fallback or "imagine"
        return name

    def _is(self, stream: Stream, index: int, need: str) -> bool:
        if need == "grid":  # grid makers never fall back to a non-grid kind
            return KINDS[self.drawn_kind(stream, index)].makes_grid
        return self._effective(stream, index) == "crop"

    def _nearby(self, stream: Stream, index: int, need: str) -> tuple[int, ...]:
        """Earlier messages (nearest first) that satisfy `need`."""
        lookback = GRID_LOOKBACK if need == "grid" else CROP_LOOKBACK
        return tuple(
            j for j in range(index - 1, max(-1, index - 1 - lookback), -1) if self._is(stream, j, need)
        )

    def _choose_parent(self, stream: Stream, index: int, need: str, prefer_imagine: float = 0.0) -> int:
        """Which earlier message (one of the nearest four that fit) a message acts on. It has its own
        random stream, so other messages can tell which grid a U-crop came from without building it."""
        found = self._window(stream, index, need)
        choose = rng(self.seed, "parent", stream.index, index, need)
        if prefer_imagine and choose.random() < prefer_imagine:
            found = tuple(j for j in found if self.drawn_kind(stream, j) == "imagine") or found
        return choose.choice(found[:4])

    def _pick_parent(self, slot: _Slot, need: str, prefer_imagine: float = 0.0) -> Message:
        return self.message(slot.stream, self._parent_index(slot.stream, slot.index, need, prefer_imagine))

    def _crop_grid(self, stream: Stream, index: int) -> int | None:
        """The grid a U-crop-like message (crop, hostile name, broken file) is cut from."""
        kind = self._effective(stream, index)
        if kind not in CROP_PREFERENCE:
            return None
        return self._parent_index(stream, index, "grid", CROP_PREFERENCE[kind])

    # -- building ---------------------------------------------------------------------------------

    def _build(self, stream: Stream, index: int) -> Message:
        ms = self.world.message_ms(stream, index)
        slot = _Slot(
            stream, index, self.world.message_id(stream, index), ms, rng(self.seed, stream.index, index)
        )
        kind = self._effective(stream, index)
        return getattr(self, f"_{kind}")(slot)

    def _uuid(self, slot: _Slot, salt: str = "") -> str:
        return str(
            uuid.UUID(
                int=rng(self.seed, "job", slot.stream.index, slot.index, salt).getrandbits(128), version=4
            )
        )

    def _requester(self, slot: _Slot, parent: Message | None = None) -> User:
        if parent is not None and parent.job is not None and slot.r.random() < 0.9:
            return parent.job.user
        return slot.r.choice(self.world.humans)

    def _attachment(
        self, slot: _Slot, number: int, filename: str, media: Media, lie: str | None = None, flags: int = 0
    ) -> Attachment:
        """An upload a few hundred ms older than its message (same stream bits, increment 1+n).
        `lie` is a content type to declare instead of the real one (with no dimensions)."""
        upload_ms = slot.ms - 20 - int(380 * draw(self.seed, "upload", slot.stream.index, slot.index, number))
        attachment_id = make(upload_ms, *slot.stream.worker_process, 1 + number)
        declared = (media.width, media.height) if media.width and lie is None else None
        return Attachment(attachment_id, filename, media, lie or media.content_type, declared, flags)

    def _filename(self, user: User, prompt: Prompt, job: str, ext: str = "png") -> str:
        """`<username>_<prompt slug>` cut to 63 characters, then `_<job uuid>.<ext>` (reference §6)."""
        return f"{(user.username + '_' + prompts.slug(prompt.text))[:63]}_{job}.{ext}"

    def _finish(self, slot: _Slot, prompt: Prompt, action: str, user: User, tags: str) -> str:
        """The content of a finished result, with the 2025 footer when it existed."""
        footer = FOOTER if eras.has("footer", slot.ms) else ""
        return f"**{prompt.raw}** - {action}<@{user.id}>{tags}{footer}"

    def _mode(self, slot: _Slot) -> str:
        return f" ({eras.mode_tag(slot.r.random(), slot.ms)})"

    def _open_on_website(self, slot: _Slot, job: str) -> str:
        if eras.has("open_on_website_link", slot.ms):
            return f" [(Open on website for full quality)](<https://midjourney.com/jobs/{job}>)"
        return " (Open on website for full quality)"

    def _tiles(self, slot: _Slot) -> tuple[str, str, str, str]:
        base = f"{self.seed}/{slot.stream.index}/{slot.index}"
        return (f"{base}/1", f"{base}/2", f"{base}/3", f"{base}/4")

    def _grid_message(
        self,
        slot: _Slot,
        prompt: Prompt,
        kind: str,
        conditioned: bool,
        user: User,
        action: str = "",
        parent: Message | None = None,
    ) -> Message:
        """A finished 2x2 grid: imagine, image prompt, blend, variation, remix, zoom or pan (those
        run the model of the job they act on)."""
        version = parent.job.version if parent is not None and parent.job else prompt.version(slot.ms)
        job = self._uuid(slot)
        tile = eras.tile_size(prompt.aspect, version)
        tiles = self._tiles(slot)
        media = images.grid(tiles, 2 * tile[0], 2 * tile[1])
        attachment = self._attachment(slot, 0, self._filename(user, prompt, job), media)
        return Message(
            slot.stream,
            slot.index,
            slot.id,
            slot.ms,
            MIDJOURNEY,
            TYPE_REPLY if parent is not None else TYPE_DEFAULT,
            self._finish(slot, prompt, action, user, self._mode(slot)),
            Truth.of(kind, conditioned, prompt),
            attachments=(attachment,),
            components=grid_buttons(job),
            parent=parent,
            mentions=(user,),
            job=Job(job, user, prompt, version, conditioned, tiles, tile),
        )

    # -- jobs that start from words -------------------------------------------------------------------

    def _imagine(self, slot: _Slot) -> Message:
        prompt = prompts.fresh(slot.r, slot.ms)
        return self._grid_message(slot, prompt, "grid", False, self._requester(slot))

    def _image_prompt(self, slot: _Slot) -> Message:
        prompt = prompts.fresh(slot.r, slot.ms)
        iw = (Param("iw", slot.r.choice(("0.5", "1", "1.5", "2", ".25"))),) if slot.r.random() < 0.3 else ()
        prompt = Prompt(prompt.text, prompt.params + iw, prompts.image_prompt_lead(slot.r), prompt.marker)
        return self._grid_message(slot, prompt, "grid", True, self._requester(slot))

    def _reference(self, slot: _Slot) -> Message:
        """--sref / --cref / --oref with image URLs (v6+), sometimes several, sometimes ::weighted."""
        r = slot.r
        options = ["sref"] + (["cref"] if eras.has("cref", slot.ms) and not eras.has("v7", slot.ms) else [])
        options += ["oref"] if eras.has("oref", slot.ms) else []
        name = r.choice(options)
        urls = [prompts.s_mj_run(r) for _ in range(r.choice((1, 1, 2)))]
        if name == "sref" and r.random() < 0.2:
            urls[0] += "::2"
        extra = {
            "sref": Param("sw", str(r.choice((50, 100, 250)))),
            "cref": Param("cw", str(r.choice((0, 50, 100)))),
        }
        extra["oref"] = Param("ow", str(r.choice((100, 250, 400))))
        prompt = prompts.fresh(r, slot.ms).with_params(Param(name, " ".join(urls)))
        if r.random() < 0.4:
            prompt = prompt.with_params(extra[name])
        return self._grid_message(slot, prompt, "grid", True, self._requester(slot))

    def _blend(self, slot: _Slot) -> Message:
        r = slot.r
        lead = tuple(f"<{prompts.s_mj_run(r)}>" for _ in range(r.randint(2, 4)))
        params = tuple(
            param for param in prompts.make_params(r, slot.ms) if param.canonical in ("aspect", "version")
        )
        return self._grid_message(slot, Prompt("", params, lead), "blend", True, self._requester(slot))

    # -- jobs on an earlier result ----------------------------------------------------------------

    def _variation(self, slot: _Slot) -> Message:
        parent = self._parent_for_variation(slot)
        assert parent.job is not None
        strength = slot.r.choice(("Strong", "Strong", "Subtle"))
        if not eras.has("vary_strong", slot.ms):
            action = "Variations by "
        elif parent.job.grid is not None and slot.r.random() < 0.1:
            action = "Variations (Region) by "
        else:
            action = f"Variations ({strength}) by "
        user = self._requester(slot, parent)
        return self._grid_message(slot, parent.job.prompt, "variation", True, user, action, parent)

    def _parent_for_variation(self, slot: _Slot) -> Message:
        """V1-V4 under a grid, or Vary (Strong/Subtle/Region) under a single image (5.2+)."""
        if (
            eras.has("vary_strong", slot.ms)
            and slot.r.random() < 0.4
            and self._window(slot.stream, slot.index, "crop")
        ):
            return self._pick_parent(slot, "crop")
        return self._pick_parent(slot, "grid")

    def _remix(self, slot: _Slot) -> Message:
        parent = self._parent_for_variation(slot)
        assert parent.job is not None
        old = parent.job.prompt
        words = (
            f"{old.text.rstrip(', ')}, {slot.r.choice(prompts.STYLES)}"
            if old.text
            else slot.r.choice(prompts.STYLES)
        )
        prompt = Prompt(words, old.params, old.lead, old.marker)
        action = (
            f"Remix ({slot.r.choice(('Strong', 'Subtle'))}) by "
            if eras.has("vary_strong", slot.ms)
            else "Remix by "
        )
        return self._grid_message(slot, prompt, "remix", True, self._requester(slot, parent), action, parent)

    def _zoom(self, slot: _Slot) -> Message:
        parent = self._pick_parent(slot, "crop")
        assert parent.job is not None
        prompt = parent.job.prompt
        if slot.r.random() < 0.2:  # Custom Zoom shows its factor
            prompt = prompt.with_params(Param("zoom", slot.r.choice(("1.5", "1.8", "2"))))
        return self._grid_message(
            slot, prompt, "zoom", True, self._requester(slot, parent), "Zoom Out by ", parent
        )

    def _pan(self, slot: _Slot) -> Message:
        parent = self._pick_parent(slot, "crop")
        assert parent.job is not None
        side = slot.r.choice(("Left", "Right", "Up", "Down"))
        old = parent.job.prompt.aspect
        if old == "1:1":
            aspect = "3:2" if side in ("Left", "Right") else "2:3"
        else:
            aspect = slot.r.choice(("45:103", "17:31", "7:4", "2:1", "5:3"))
        prompt = parent.job.prompt.with_aspect(aspect)
        return self._grid_message(
            slot, prompt, "pan", True, self._requester(slot, parent), f"Pan {side} by ", parent
        )

    def _video(self, slot: _Slot) -> Message:
        """Animate (2025): Midjourney rewrites the whole tail; the result is an animated WebP."""
        parent = self._pick_parent(slot, "crop")
        assert parent.job is not None
        old = parent.job.prompt
        tail = (Param("raw"), Param("motion", slot.r.choice(("high", "low"))), Param("video", "1"))
        prompt = Prompt(old.text, (*tail, Param("aspect", old.aspect)), old.lead, old.marker)
        user = self._requester(slot, parent)
        job = self._uuid(slot)
        width, height = eras.video_size(old.aspect)
        media = images.animation(f"{self.seed}/{slot.stream.index}/{slot.index}/video", width, height)
        attachment = self._attachment(
            slot, 0, self._filename(user, prompt, job, "webp"), media, flags=ATTACHMENT_ANIMATED
        )
        buttons = _button_rows(
            (
                Button("Extend (High motion)", f"MJ::JOB::animate_high_extend::1::{job}::SOLO"),
                Button("Extend (Low motion)", f"MJ::JOB::animate_low_extend::1::{job}::SOLO"),
            )
        )
        return Message(
            slot.stream,
            slot.index,
            slot.id,
            slot.ms,
            MIDJOURNEY,
            TYPE_REPLY,
            self._finish(slot, prompt, "", user, self._mode(slot)),
            Truth.of("video", True, prompt),
            attachments=(attachment,),
            components=buttons,
            parent=parent,
            mentions=(user,),
            job=Job(job, user, prompt, parent.job.version, True),
        )

    # -- single images ----------------------------------------------------------------------------------

    def _single(
        self,
        slot: _Slot,
        parent: Message,
        action: str,
        tags: str,
        media: Media | None,
        job: Job,
        filename: str | None = None,
        upscaled: bool = False,
        lie: str | None = None,
    ) -> Message:
        attached = ()
        if media is not None:
            name = filename or self._filename(job.user, job.prompt, job.uuid, media.fmt)
            attached = (self._attachment(slot, 0, name, media, lie),)
        return Message(
            slot.stream,
            slot.index,
            slot.id,
            slot.ms,
            MIDJOURNEY,
            TYPE_REPLY,
            self._finish(slot, job.prompt, action, job.user, tags),
            Truth.of("upscale", job.conditioned, job.prompt),
            attachments=attached,
            components=single_buttons(job.uuid, job.version, slot.ms, upscaled),
            parent=parent,
            mentions=(job.user,),
            job=job,
        )

    def _crop_job(self, slot: _Slot, grid: Message, tile_number: int, salt: str = "") -> Job:
        """U-button result: `Image #N` (v5+, the tile's exact pixels) or `Upscaled by` (v4, 2x)."""
        assert grid.job is not None and grid.job.tiles is not None
        tile_w, tile_h = grid.job.tile_size
        size = (2 * tile_w, 2 * tile_h) if eras.major(grid.job.version) <= 4 else (tile_w, tile_h)
        return Job(
            self._uuid(slot, salt),
            self._requester(slot, grid),
            grid.job.prompt,
            grid.job.version,
            grid.job.conditioned,
            image=grid.job.tiles[tile_number - 1],
            image_size=size,
            grid=grid,
            tile_number=tile_number,
            tile_size=grid.job.tile_size,
        )

    def _tile_for(self, slot: _Slot, grid: Message) -> int:
        """People upscale different tiles of a grid: the k-th crop of a grid takes the next tile."""
        earlier = sum(
            1 for j in range(grid.index + 1, slot.index) if self._crop_grid(slot.stream, j) == grid.index
        )
        return 1 + (earlier + int(4 * draw(self.seed, "tile", grid.id))) % 4

    def _crop_action(self, slot: _Slot, job: Job) -> tuple[str, str]:
        if eras.major(job.version) <= 4:
            return "Upscaled by ", self._mode(slot)
        return f"Image #{job.tile_number} ", ""

    def _crop_media(self, job: Job, fmt: str = "png") -> Media:
        assert job.image is not None
        return images.image(job.image, *job.image_size, fmt=fmt, source=job.tile_size)

    def _crop(self, slot: _Slot) -> Message:
        grid = self._pick_parent(slot, "grid", CROP_PREFERENCE["crop"])
        job = self._crop_job(slot, grid, self._tile_for(slot, grid))
        action, tags = self._crop_action(slot, job)
        fmt = "png"
        if eras.has("open_on_website", slot.ms) and slot.r.random() < 0.12:
            fmt, tags = "webp", self._open_on_website(slot, job.uuid) + tags
        return self._single(slot, grid, action, tags, self._crop_media(job, fmt), job)

    def _recrop(self, slot: _Slot) -> Message:
        """The same tile upscaled again later: the same pixels, re-encoded (a planted near-duplicate)."""
        earlier = self._pick_parent(slot, "crop")
        assert earlier.job is not None and earlier.job.grid is not None
        job = self._crop_job(slot, earlier.job.grid, earlier.job.tile_number, "again")
        action, tags = self._crop_action(slot, job)
        fmt = "png"
        if eras.has("open_on_website", slot.ms):
            fmt, tags = "webp", self._open_on_website(slot, job.uuid) + tags
        return self._single(slot, earlier.job.grid, action, tags, self._crop_media(job, fmt), job)

    def _upscale(self, slot: _Slot) -> Message:
        """Upscale (Subtle) / (2x) / Beta redo of a crop: a resized copy, so a near-duplicate."""
        crop = self._pick_parent(slot, "crop")
        assert crop.job is not None
        v = eras.major(crop.job.version)
        if v >= 6 and eras.has("upscale_subtle", slot.ms):
            action = "Upscaled (Subtle) by "
        elif crop.job.version == "5.2" and eras.has("upscale_2x", slot.ms):
            action = "Upscaled (2x) by "
        elif v <= 4:
            action = "Upscaled (Beta) by "
        else:
            return self._recrop(slot)  # v5.0/5.1 had no upscaler: people pressed U again
        width, height = crop.job.image_size
        job = Job(
            self._uuid(slot),
            self._requester(slot, crop),
            crop.job.prompt,
            crop.job.version,
            crop.job.conditioned,
            image=crop.job.image,
            image_size=(2 * width, 2 * height),
            tile_size=crop.job.tile_size,
        )
        return self._single(slot, crop, action, self._mode(slot), self._crop_media(job), job, upscaled=True)

    def _creative(self, slot: _Slot) -> Message:
        """Upscale (Creative): re-imagined details, so new pixels (not a near-duplicate)."""
        crop = self._pick_parent(slot, "crop")
        assert crop.job is not None
        if eras.major(crop.job.version) < 6:
            return self._upscale(slot)
        width, height = crop.job.image_size
        key = f"{self.seed}/{slot.stream.index}/{slot.index}/creative"
        job = Job(
            self._uuid(slot),
            self._requester(slot, crop),
            crop.job.prompt,
            crop.job.version,
            crop.job.conditioned,
            image=key,
            image_size=(2 * width, 2 * height),
            tile_size=(2 * width, 2 * height),
        )
        tags = self._mode(slot)
        fmt = "png"
        if eras.has("open_on_website", slot.ms) and slot.r.random() < 0.1:
            fmt, tags = "webp", self._open_on_website(slot, job.uuid) + tags
        return self._single(
            slot, crop, "Upscaled (Creative) by ", tags, self._crop_media(job, fmt), job, upscaled=True
        )

    def _hostile_name(self, slot: _Slot) -> Message:
        """A normal U-crop whose file name is hostile (path traversal, unicode, very long...)."""
        grid = self._pick_parent(slot, "grid", CROP_PREFERENCE["hostile_name"])
        job = self._crop_job(slot, grid, self._tile_for(slot, grid))
        action, tags = self._crop_action(slot, job)
        name = slot.r.choice(HOSTILE_NAMES)
        return self._single(slot, grid, action, tags, self._crop_media(job), job, filename=name)

    def _broken(self, slot: _Slot) -> Message:
        """A U-crop whose attachment is broken: corrupt, truncated, empty, a bomb, not an image..."""
        grid = self._pick_parent(slot, "grid", CROP_PREFERENCE["broken"])
        job = self._crop_job(slot, grid, self._tile_for(slot, grid))
        action, tags = self._crop_action(slot, job)
        key = f"{self.seed}/{slot.stream.index}/{slot.index}/broken"
        width, height = job.image_size
        variant = slot.r.choice(BROKEN_VARIANTS)
        media: Media | None = {
            "corrupt": lambda: images.corrupt(key, width, height),
            "truncated": lambda: images.truncated(key, width, height),
            "empty": lambda: images.empty(),
            "bomb": lambda: images.bomb(),
            "not_image": lambda: images.file(key, "mp4"),
            "mislabelled": lambda: images.html(key),
            "no_attachment": lambda: None,
        }[variant]()
        lie = "image/png" if variant in ("empty", "mislabelled") else None
        name = self._filename(job.user, job.prompt, job.uuid, "mp4" if variant == "not_image" else "png")
        return self._single(slot, grid, action, tags, media, job, filename=name, lie=lie)

    # -- jobs still running ----------------------------------------------------------------------

    def _progress(self, slot: _Slot) -> Message:
        """A job's interaction response, caught while it waits, runs, stopped or is paused."""
        r = slot.r
        grids, crops = (
            self._window(slot.stream, slot.index, "grid"),
            self._window(slot.stream, slot.index, "crop"),
        )
        variant = r.choices(("imagine", "variation", "upscale", "video"), weights=(6, 2, 1.5, 0.5))[0]
        if variant == "video" and not (crops and eras.has("video", slot.ms)):
            variant = "imagine"
        if variant in ("variation", "upscale") and not grids:
            variant = "imagine"
        parent = (
            None
            if variant == "imagine"
            else self._pick_parent(slot, "crop" if variant == "video" else "grid")
        )
        if parent is not None and parent.job is not None:
            prompt, user, conditioned = (
                parent.job.prompt,
                self._requester(slot, parent),
                parent.job.conditioned,
            )
        else:
            prompt, user, conditioned = prompts.fresh(r, slot.ms), self._requester(slot), False
        status = r.choices(("waiting", "percent", "stopped", "paused"), weights=(3, 5, 1.2, 0.8))[0]
        percent = r.choice((0, 15, 31, 46, 62, 78, 93))
        tags = {
            "waiting": " (Waiting to start)",
            "percent": f" ({percent}%){self._mode(slot)}",
            "stopped": " (Stopped)",
            "paused": " (paused) (relaxed)",
        }[status]
        prefix, action = "", ""
        tile = r.randint(1, 4)
        if variant == "variation":
            conditioned = True
            if status == "waiting":
                prefix = f"Making variations for image #{tile} with prompt "
            else:
                action = "Variations (Strong) by " if eras.has("vary_strong", slot.ms) else "Variations by "
        elif variant == "upscale":
            prefix, tags = f"Upscaling image #{tile} with ", " (Waiting to start)"
        elif variant == "video":
            conditioned, prefix, tags = True, "Creating video with prompt ", " (Waiting to start)"
        content = f"{prefix}**{prompt.raw}** - {action}<@{user.id}>{tags}"
        job = self._uuid(slot)
        attachments: tuple[Attachment, ...] = ()
        if (status == "percent" and percent >= 15) or status == "stopped":
            size = eras.preview_size(prompt.aspect, prompt.version(slot.ms))
            media = images.preview(self._tiles(slot), *size)
            attachments = (self._attachment(slot, 0, f"{job}_grid_0.webp", media),)
        interaction = Interaction(
            make(slot.ms - 900, *slot.stream.worker_process, 4000),
            3 if parent is not None else 2,
            "imagine" if parent is None else "",
            user,
            parent.id if parent is not None else None,
        )
        edited = slot.ms + r.randint(2_000, 60_000) if status != "waiting" else None
        buttons = (
            _button_rows((Button("Cancel Job", f"MJ::CancelJob::ByJobid::{job}", "✖️"),))
            if eras.has("v6", slot.ms) and status == "percent"
            else ()
        )
        return Message(
            slot.stream,
            slot.index,
            slot.id,
            slot.ms,
            MIDJOURNEY,
            TYPE_REPLY if parent is not None else TYPE_COMMAND,
            content,
            Truth.of("progress", conditioned or prompt.has_image_reference, prompt),
            attachments=attachments,
            components=buttons,
            parent=parent,
            interaction=interaction,
            edited_ms=edited,
            mentions=(user,),
        )

    # -- the bot, not generating -----------------------------------------------------------------

    def _bot_message(
        self,
        slot: _Slot,
        kind: str,
        content: str = "",
        embed: Embed | None = None,
        buttons: tuple[tuple[Button, ...], ...] = (),
        command: str | None = None,
        mention: User | None = None,
    ) -> Message:
        """A bot message that is not a generation; `command` makes it a slash-command response."""
        interaction = None
        if command is not None and mention is not None:
            interaction = Interaction(
                make(slot.ms - 500, *slot.stream.worker_process, 4000), 2, command, mention
            )
        return Message(
            slot.stream,
            slot.index,
            slot.id,
            slot.ms,
            MIDJOURNEY,
            TYPE_COMMAND if command else TYPE_DEFAULT,
            content,
            Truth(kind),
            embeds=(embed,) if embed else (),
            components=buttons,
            interaction=interaction,
            mentions=(mention,) if mention and f"<@{mention.id}>" in content else (),
        )

    def _describe(self, slot: _Slot) -> Message:
        """/describe: four prompts for an uploaded image, in an embed; the content is empty."""
        r = slot.r
        lines = []
        for emoji in ("1️⃣", "2️⃣", "3️⃣", "4️⃣"):
            words = prompts.clean_words(prompts.fresh(r, slot.ms).text)
            lines.append(f"{emoji} {words} --ar {r.choice(('1:1', '3:2', '4:5'))}")
        image_url = (
            f"https://cdn.discordapp.com/ephemeral-attachments/{r.randrange(10**18, 10**19)}/upload.png"
        )
        numbers = tuple(Button(str(n), f"MJ::Job::PicReader::{n}") for n in range(1, 5))
        buttons = _button_rows(
            (*numbers, Button(None, "MJ::Picreader::Reroll", "🔄")),
            (Button("Imagine all", "MJ::Job::PicReader::all", "🎉"),),
        )
        embed = Embed(None, "\n\n".join(lines), image_url, color=3_092_790)
        return self._bot_message(slot, "describe", "", embed, buttons, "describe", self._requester(slot))

    def _shorten(self, slot: _Slot) -> Message:
        r = slot.r
        user = self._requester(slot)
        words = prompts.clean_words(prompts.fresh(r, slot.ms).text).split(", ")
        options = [", ".join(words[: max(1, len(words) - k)]) for k in range(5)]
        description = "**Shortened prompts**\n" + "\n".join(
            f"{n}️⃣ {text}" for n, text in enumerate(options, 1)
        )
        embed = Embed(
            "Here are the most important tokens in your prompt",
            description,
            footer="Click on a button to imagine one of the shortened prompts",
            color=3_092_790,
        )
        buttons = _button_rows(
            tuple(Button(str(n), f"MJ::ShortenPrompt::{n}") for n in range(1, 6)),
            (Button("Show Details", "MJ::ShortenPrompt::Details"),),
        )
        return self._bot_message(slot, "describe", "", embed, buttons, "shorten", user)

    def _rating(self, slot: _Slot) -> Message:
        emoji = slot.r.choice(("😍", "🙂", "😖", "😒"))
        job = self._uuid(slot)
        return self._bot_message(
            slot,
            "other",
            f"You have successfully rated [this job](<https://midjourney.com/jobs/{job}>) with {emoji}",
        )

    def _notice(self, slot: _Slot) -> Message:
        user = self._requester(slot)
        content = f"<@{user.id}>" if slot.r.random() < 0.4 else ""
        return self._bot_message(slot, "other", content, slot.r.choice(NOTICES), mention=user)

    def _animating(self, slot: _Slot) -> Message:
        return self._bot_message(slot, "other", "Animating...")

    # -- people ------------------------------------------------------------------------------------

    def _human(self, slot: _Slot, content: str, attachments: tuple[Attachment, ...] = ()) -> Message:
        r = slot.r
        author = r.choice(self.world.humans)
        parent = None
        if r.random() < 0.2 and slot.index > 0:
            parent = self.message(slot.stream, slot.index - 1 - r.randrange(min(slot.index, 5)))
        return Message(
            slot.stream,
            slot.index,
            slot.id,
            slot.ms,
            author,
            TYPE_REPLY if parent is not None else TYPE_DEFAULT,
            content,
            Truth("not_midjourney"),
            attachments=attachments,
            parent=parent,
        )

    def _chatter(self, slot: _Slot) -> Message:
        return self._human(slot, slot.r.choice(CHATTER))

    def _chatter_image(self, slot: _Slot) -> Message:
        r = slot.r
        attachments = []
        for number in range(r.choice((1, 1, 1, 2))):
            fmt = r.choice(("jpeg", "png"))
            width, height = r.choice(((1280, 960), (1080, 1350), (750, 1334), (1920, 1080), (640, 640)))
            key = f"{self.seed}/{slot.stream.index}/{slot.index}/photo{number}"
            name = r.choice(PHOTO_NAMES) if r.random() < 0.9 else r.choice(HOSTILE_NAMES)
            name = name.rsplit(".", 1)[0] + (".jpg" if fmt == "jpeg" else ".png")
            attachments.append(self._attachment(slot, number, name, images.image(key, width, height, fmt)))
        text = r.choice(
            ("use this as a reference", "my photo vs the mj version", "", "original sketch", "lol look")
        )
        return self._human(slot, text, tuple(attachments))

    def _chatter_file(self, slot: _Slot) -> Message:
        name, fmt = slot.r.choice(FILE_NAMES)
        media = images.file(f"{self.seed}/{slot.stream.index}/{slot.index}/file", fmt)
        return self._human(slot, "here are my prompts", (self._attachment(slot, 0, name, media),))

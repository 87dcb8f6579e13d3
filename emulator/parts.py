"""The pieces every message builder uses: ids and uploads, who asked, file names, the finished
content line, the 2x2 grid result and the single-image result.

`MessageParts` is the base of the builders (`jobs.py`, `singles.py`, `chatter.py`); `Traffic`
combines them. Each builder turns a `Slot` (where the message goes and its own random stream) into
a `Message`; messages that act on an earlier one ask `pick_parent` for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from midshard.emulator import eras, images, prompts
from midshard.emulator.buttons import grid_buttons, single_buttons
from midshard.emulator.config import EmulatorConfig
from midshard.emulator.determinism import draw, rng
from midshard.emulator.images import Media
from midshard.emulator.mixture import Mixture
from midshard.emulator.model import (
    TYPE_DEFAULT,
    TYPE_REPLY,
    Attachment,
    Job,
    Message,
    Slot,
    Truth,
)
from midshard.emulator.prompts import Prompt
from midshard.emulator.snowflakes import make
from midshard.emulator.world import MIDJOURNEY, Stream, User, World

FOOTER = (
    "\n-# Create, explore, and organize on [midjourney.com](<https://midjourney.com/imagine?from_discord=1>)"
)


class MessageParts:
    """Shared state (config, world, mixture, the memoised `message`) and the shared pieces."""

    cfg: EmulatorConfig
    world: World
    seed: int
    mixture: Mixture
    message: Callable[[Stream, int], Message]

    def pick_parent(self, slot: Slot, need: str, prefer_imagine: float = 0.0) -> Message:
        return self.message(slot.stream, self.mixture.parent(slot.stream, slot.index, need, prefer_imagine))

    def job_uuid(self, slot: Slot, salt: str = "") -> str:
        return str(
            uuid.UUID(
                int=rng(self.seed, "job", slot.stream.index, slot.index, salt).getrandbits(128), version=4
            )
        )

    def requester(self, slot: Slot, parent: Message | None = None) -> User:
        if parent is not None and parent.job is not None and slot.r.random() < 0.9:
            return parent.job.user
        return slot.r.choice(self.world.humans)

    def attachment(
        self, slot: Slot, number: int, filename: str, media: Media, lie: str | None = None, flags: int = 0
    ) -> Attachment:
        """An upload a few hundred ms older than its message (same stream bits, increment 1+n).
        `lie` is a content type to declare instead of the real one (with no dimensions)."""
        upload_ms = slot.ms - 20 - int(380 * draw(self.seed, "upload", slot.stream.index, slot.index, number))
        attachment_id = make(upload_ms, *slot.stream.worker_process, 1 + number)
        declared = (media.width, media.height) if media.width and lie is None else None
        return Attachment(attachment_id, filename, media, lie or media.content_type, declared, flags)

    def filename(self, user: User, prompt: Prompt, job: str, ext: str = "png") -> str:
        """`<username>_<prompt slug>` cut to 63 characters, then `_<job uuid>.<ext>`: Midjourney's names."""
        return f"{(user.username + '_' + prompts.slug(prompt.text))[:63]}_{job}.{ext}"

    def finish(self, slot: Slot, prompt: Prompt, action: str, user: User, tags: str) -> str:
        """The content of a finished result, with the 2025 footer when it existed."""
        footer = FOOTER if eras.has("footer", slot.ms) else ""
        return f"**{prompt.raw}** - {action}<@{user.id}>{tags}{footer}"

    def mode(self, slot: Slot) -> str:
        return f" ({eras.mode_tag(slot.r.random(), slot.ms)})"

    def open_on_website(self, slot: Slot, job: str) -> str:
        if eras.has("open_on_website_link", slot.ms):
            return f" [(Open on website for full quality)](<https://midjourney.com/jobs/{job}>)"
        return " (Open on website for full quality)"

    def tiles(self, slot: Slot) -> tuple[str, str, str, str]:
        base = f"{self.seed}/{slot.stream.index}/{slot.index}"
        return (f"{base}/1", f"{base}/2", f"{base}/3", f"{base}/4")

    def grid_message(
        self,
        slot: Slot,
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
        job = self.job_uuid(slot)
        tile = eras.tile_size(prompt.aspect, version)
        tiles = self.tiles(slot)
        media = images.grid(tiles, 2 * tile[0], 2 * tile[1])
        attachment = self.attachment(slot, 0, self.filename(user, prompt, job), media)
        return slot.message(
            MIDJOURNEY,
            TYPE_REPLY if parent is not None else TYPE_DEFAULT,
            self.finish(slot, prompt, action, user, self.mode(slot)),
            Truth.of(kind, conditioned, prompt),
            attachments=(attachment,),
            components=grid_buttons(job),
            parent=parent,
            mentions=(user,),
            job=Job(job, user, prompt, version, conditioned, tiles, tile),
        )

    def single(
        self,
        slot: Slot,
        parent: Message,
        action: str,
        tags: str,
        media: Media | None,
        job: Job,
        filename: str | None = None,
        upscaled: bool = False,
        lie: str | None = None,
    ) -> Message:
        """A finished single image (U-crop, upscale, or one of their broken variants)."""
        attached = ()
        if media is not None:
            name = filename or self.filename(job.user, job.prompt, job.uuid, media.fmt)
            attached = (self.attachment(slot, 0, name, media, lie),)
        return slot.message(
            MIDJOURNEY,
            TYPE_REPLY,
            self.finish(slot, job.prompt, action, job.user, tags),
            Truth.of("upscale", job.conditioned, job.prompt),
            attachments=attached,
            components=single_buttons(job.uuid, job.version, slot.ms, upscaled),
            parent=parent,
            mentions=(job.user,),
            job=job,
        )

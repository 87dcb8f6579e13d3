"""Builders of single-image results: U-crops (`Image #N`, v4 `Upscaled by`), upscales of a crop
(Subtle / 2x / Beta: a resized copy, so a near-duplicate; Creative: new pixels), the same tile
upscaled again, and U-crops carrying hostile input (odd file names, broken files)."""

from __future__ import annotations

from midshard.emulator import eras, images
from midshard.emulator.images import Media
from midshard.emulator.mixture import CROP_PREFERENCE
from midshard.emulator.model import Job, Message, Slot
from midshard.emulator.parts import MessageParts

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


class Singles(MessageParts):
    def _crop_job(self, slot: Slot, grid: Message, tile_number: int, salt: str = "") -> Job:
        """U-button result: `Image #N` (v5+, the tile's exact pixels) or `Upscaled by` (v4, 2x)."""
        assert grid.job is not None and grid.job.tiles is not None
        tile_w, tile_h = grid.job.tile_size
        size = (2 * tile_w, 2 * tile_h) if eras.major(grid.job.version) <= 4 else (tile_w, tile_h)
        return Job(
            self.job_uuid(slot, salt),
            self.requester(slot, grid),
            grid.job.prompt,
            grid.job.version,
            grid.job.conditioned,
            image=grid.job.tiles[tile_number - 1],
            image_size=size,
            grid=grid,
            tile_number=tile_number,
            tile_size=grid.job.tile_size,
        )

    def _cropped(self, slot: Slot, kind: str) -> Job:
        """The job of a U-crop-like message: a tile of a nearby grid."""
        grid = self.pick_parent(slot, "grid", CROP_PREFERENCE[kind])
        return self._crop_job(slot, grid, self.mixture.tile_for(slot.stream, slot.index, grid.index))

    def _crop_action(self, slot: Slot, job: Job) -> tuple[str, str]:
        if eras.major(job.version) <= 4:
            return "Upscaled by ", self.mode(slot)
        return f"Image #{job.tile_number} ", ""

    def _crop_media(self, job: Job, fmt: str = "png") -> Media:
        assert job.image is not None
        return images.image(job.image, *job.image_size, fmt=fmt, source=job.tile_size)

    def _crop(self, slot: Slot) -> Message:
        job = self._cropped(slot, "crop")
        assert job.grid is not None
        action, tags = self._crop_action(slot, job)
        fmt = "png"
        if eras.has("open_on_website", slot.ms) and slot.r.random() < 0.12:
            fmt, tags = "webp", self.open_on_website(slot, job.uuid) + tags
        return self.single(slot, job.grid, action, tags, self._crop_media(job, fmt), job)

    def _recrop(self, slot: Slot) -> Message:
        """The same tile upscaled again later: the same pixels, re-encoded (a planted near-duplicate)."""
        earlier = self.pick_parent(slot, "crop")
        assert earlier.job is not None and earlier.job.grid is not None
        job = self._crop_job(slot, earlier.job.grid, earlier.job.tile_number, "again")
        action, tags = self._crop_action(slot, job)
        fmt = "png"
        if eras.has("open_on_website", slot.ms):
            fmt, tags = "webp", self.open_on_website(slot, job.uuid) + tags
        return self.single(slot, earlier.job.grid, action, tags, self._crop_media(job, fmt), job)

    def _upscale(self, slot: Slot) -> Message:
        """Upscale (Subtle) / (2x) / Beta redo of a crop: a resized copy, so a near-duplicate."""
        crop = self.pick_parent(slot, "crop")
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
        job = self._upscaled_job(slot, crop, crop.job.image, crop.job.tile_size)
        return self.single(slot, crop, action, self.mode(slot), self._crop_media(job), job, upscaled=True)

    def _creative(self, slot: Slot) -> Message:
        """Upscale (Creative): re-imagined details, so new pixels (not a near-duplicate)."""
        crop = self.pick_parent(slot, "crop")
        assert crop.job is not None
        if eras.major(crop.job.version) < 6:
            return self._upscale(slot)
        width, height = crop.job.image_size
        key = f"{self.seed}/{slot.stream.index}/{slot.index}/creative"
        job = self._upscaled_job(slot, crop, key, (2 * width, 2 * height))
        tags = self.mode(slot)
        fmt = "png"
        if eras.has("open_on_website", slot.ms) and slot.r.random() < 0.1:
            fmt, tags = "webp", self.open_on_website(slot, job.uuid) + tags
        return self.single(
            slot, crop, "Upscaled (Creative) by ", tags, self._crop_media(job, fmt), job, upscaled=True
        )

    def _upscaled_job(self, slot: Slot, crop: Message, image: str | None, source: tuple[int, int]) -> Job:
        """An upscale of a crop: twice its size, from the pixels of `image` at `source` size."""
        assert crop.job is not None
        width, height = crop.job.image_size
        return Job(
            self.job_uuid(slot),
            self.requester(slot, crop),
            crop.job.prompt,
            crop.job.version,
            crop.job.conditioned,
            image=image,
            image_size=(2 * width, 2 * height),
            tile_size=source,
        )

    def _hostile_name(self, slot: Slot) -> Message:
        """A normal U-crop whose file name is hostile (path traversal, unicode, very long...)."""
        job = self._cropped(slot, "hostile_name")
        assert job.grid is not None
        action, tags = self._crop_action(slot, job)
        name = slot.r.choice(HOSTILE_NAMES)
        return self.single(slot, job.grid, action, tags, self._crop_media(job), job, filename=name)

    def _broken(self, slot: Slot) -> Message:
        """A U-crop whose attachment is broken: corrupt, truncated, empty, a bomb, not an image..."""
        job = self._cropped(slot, "broken")
        assert job.grid is not None
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
        name = self.filename(job.user, job.prompt, job.uuid, "mp4" if variant == "not_image" else "png")
        return self.single(slot, job.grid, action, tags, media, job, filename=name, lie=lie)

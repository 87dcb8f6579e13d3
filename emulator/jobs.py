"""Builders of Midjourney jobs: grids that start from words (/imagine, image prompts, references,
blend), jobs on an earlier result (variations, remixes, zooms, pans, animate), and jobs still
running (their progress messages)."""

from __future__ import annotations

from midshard.emulator import eras, images, prompts
from midshard.emulator.buttons import button_rows
from midshard.emulator.model import (
    ATTACHMENT_ANIMATED,
    TYPE_COMMAND,
    TYPE_REPLY,
    Attachment,
    Button,
    Interaction,
    Job,
    Message,
    Slot,
    Truth,
)
from midshard.emulator.parts import MessageParts
from midshard.emulator.prompts import Param, Prompt
from midshard.emulator.snowflakes import make
from midshard.emulator.vocabulary import STYLES
from midshard.emulator.world import MIDJOURNEY


class Jobs(MessageParts):
    # -- jobs that start from words -------------------------------------------------------------------

    def _imagine(self, slot: Slot) -> Message:
        prompt = prompts.fresh(slot.r, slot.ms)
        return self.grid_message(slot, prompt, "grid", False, self.requester(slot))

    def _image_prompt(self, slot: Slot) -> Message:
        prompt = prompts.fresh(slot.r, slot.ms)
        iw = (Param("iw", slot.r.choice(("0.5", "1", "1.5", "2", ".25"))),) if slot.r.random() < 0.3 else ()
        prompt = Prompt(prompt.text, prompt.params + iw, prompts.image_prompt_lead(slot.r), prompt.marker)
        return self.grid_message(slot, prompt, "grid", True, self.requester(slot))

    def _reference(self, slot: Slot) -> Message:
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
        return self.grid_message(slot, prompt, "grid", True, self.requester(slot))

    def _blend(self, slot: Slot) -> Message:
        r = slot.r
        lead = tuple(f"<{prompts.s_mj_run(r)}>" for _ in range(r.randint(2, 4)))
        params = tuple(
            param for param in prompts.make_params(r, slot.ms) if param.canonical in ("aspect", "version")
        )
        return self.grid_message(slot, Prompt("", params, lead), "blend", True, self.requester(slot))

    def _rerun(self, slot: Slot) -> Message:
        """The same prompt again, new pixels: the 🔄 reroll button under a nearby grid (a reply, as
        conditioned as that grid), or its prompt pasted into /imagine (a new text-only job)."""
        parent = self.pick_parent(slot, "grid", prefer_imagine=1.0)
        assert parent.job is not None
        user = self.requester(slot, parent)
        pasted = self.mixture.kind(parent.stream, parent.index) == "imagine" and slot.r.random() < 0.5
        if pasted:
            return self.grid_message(slot, parent.job.prompt, "grid", False, user)
        return self.grid_message(slot, parent.job.prompt, "grid", parent.job.conditioned, user, parent=parent)

    # -- jobs on an earlier result ----------------------------------------------------------------

    def _variation(self, slot: Slot) -> Message:
        parent = self._parent_for_variation(slot)
        assert parent.job is not None
        strength = slot.r.choice(("Strong", "Strong", "Subtle"))
        if not eras.has("vary_strong", slot.ms):
            action = "Variations by "
        elif parent.job.grid is not None and slot.r.random() < 0.1:
            action = "Variations (Region) by "
        else:
            action = f"Variations ({strength}) by "
        user = self.requester(slot, parent)
        return self.grid_message(slot, parent.job.prompt, "variation", True, user, action, parent)

    def _parent_for_variation(self, slot: Slot) -> Message:
        """V1-V4 under a grid, or Vary (Strong/Subtle/Region) under a single image (5.2+)."""
        if (
            eras.has("vary_strong", slot.ms)
            and slot.r.random() < 0.4
            and self.mixture.window(slot.stream, slot.index, "crop")
        ):
            return self.pick_parent(slot, "crop")
        return self.pick_parent(slot, "grid")

    def _remix(self, slot: Slot) -> Message:
        parent = self._parent_for_variation(slot)
        assert parent.job is not None
        old = parent.job.prompt
        words = f"{old.text.rstrip(', ')}, {slot.r.choice(STYLES)}" if old.text else slot.r.choice(STYLES)
        prompt = Prompt(words, old.params, old.lead, old.marker)
        action = (
            f"Remix ({slot.r.choice(('Strong', 'Subtle'))}) by "
            if eras.has("vary_strong", slot.ms)
            else "Remix by "
        )
        return self.grid_message(slot, prompt, "remix", True, self.requester(slot, parent), action, parent)

    def _zoom(self, slot: Slot) -> Message:
        parent = self.pick_parent(slot, "crop")
        assert parent.job is not None
        prompt = parent.job.prompt
        if slot.r.random() < 0.2:  # Custom Zoom shows its factor
            prompt = prompt.with_params(Param("zoom", slot.r.choice(("1.5", "1.8", "2"))))
        return self.grid_message(
            slot, prompt, "zoom", True, self.requester(slot, parent), "Zoom Out by ", parent
        )

    def _pan(self, slot: Slot) -> Message:
        parent = self.pick_parent(slot, "crop")
        assert parent.job is not None
        side = slot.r.choice(("Left", "Right", "Up", "Down"))
        old = parent.job.prompt.aspect
        if old == "1:1":
            aspect = "3:2" if side in ("Left", "Right") else "2:3"
        else:
            aspect = slot.r.choice(("45:103", "17:31", "7:4", "2:1", "5:3"))
        prompt = parent.job.prompt.with_aspect(aspect)
        return self.grid_message(
            slot, prompt, "pan", True, self.requester(slot, parent), f"Pan {side} by ", parent
        )

    def _video(self, slot: Slot) -> Message:
        """Animate (2025): Midjourney rewrites the whole tail; the result is an animated WebP."""
        parent = self.pick_parent(slot, "crop")
        assert parent.job is not None
        old = parent.job.prompt
        tail = (Param("raw"), Param("motion", slot.r.choice(("high", "low"))), Param("video", "1"))
        prompt = Prompt(old.text, (*tail, Param("aspect", old.aspect)), old.lead, old.marker)
        user = self.requester(slot, parent)
        job = self.job_uuid(slot)
        width, height = eras.video_size(old.aspect)
        media = images.animation(f"{self.seed}/{slot.stream.index}/{slot.index}/video", width, height)
        attachment = self.attachment(
            slot, 0, self.filename(user, prompt, job, "webp"), media, flags=ATTACHMENT_ANIMATED
        )
        buttons = button_rows(
            (
                Button("Extend (High motion)", f"MJ::JOB::animate_high_extend::1::{job}::SOLO"),
                Button("Extend (Low motion)", f"MJ::JOB::animate_low_extend::1::{job}::SOLO"),
            )
        )
        return slot.message(
            MIDJOURNEY,
            TYPE_REPLY,
            self.finish(slot, prompt, "", user, self.mode(slot)),
            Truth.of("video", True, prompt),
            attachments=(attachment,),
            components=buttons,
            parent=parent,
            mentions=(user,),
            job=Job(job, user, prompt, parent.job.version, True),
        )

    # -- jobs still running ----------------------------------------------------------------------

    def _progress(self, slot: Slot) -> Message:
        """A job's interaction response, caught while it waits, runs, stopped or is paused."""
        r = slot.r
        grids = self.mixture.window(slot.stream, slot.index, "grid")
        crops = self.mixture.window(slot.stream, slot.index, "crop")
        variant = r.choices(("imagine", "variation", "upscale", "video"), weights=(6, 2, 1.5, 0.5))[0]
        if variant == "video" and not (crops and eras.has("video", slot.ms)):
            variant = "imagine"
        if variant in ("variation", "upscale") and not grids:
            variant = "imagine"
        parent = (
            None if variant == "imagine" else self.pick_parent(slot, "crop" if variant == "video" else "grid")
        )
        if parent is not None and parent.job is not None:
            prompt, user, conditioned = (
                parent.job.prompt,
                self.requester(slot, parent),
                parent.job.conditioned,
            )
        else:
            prompt, user, conditioned = prompts.fresh(r, slot.ms), self.requester(slot), False
        status = r.choices(("waiting", "percent", "stopped", "paused"), weights=(3, 5, 1.2, 0.8))[0]
        percent = r.choice((0, 15, 31, 46, 62, 78, 93))
        tags = {
            "waiting": " (Waiting to start)",
            "percent": f" ({percent}%){self.mode(slot)}",
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
        job = self.job_uuid(slot)
        attachments: tuple[Attachment, ...] = ()
        if (status == "percent" and percent >= 15) or status == "stopped":
            size = eras.preview_size(prompt.aspect, prompt.version(slot.ms))
            media = images.preview(self.tiles(slot), *size)
            attachments = (self.attachment(slot, 0, f"{job}_grid_0.webp", media),)
        interaction = Interaction(
            make(slot.ms - 900, *slot.stream.worker_process, 4000),
            3 if parent is not None else 2,
            "imagine" if parent is None else "",
            user,
            parent.id if parent is not None else None,
        )
        edited = slot.ms + r.randint(2_000, 60_000) if status != "waiting" else None
        buttons = (
            button_rows((Button("Cancel Job", f"MJ::CancelJob::ByJobid::{job}", "✖️"),))
            if eras.has("v6", slot.ms) and status == "percent"
            else ()
        )
        return slot.message(
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
